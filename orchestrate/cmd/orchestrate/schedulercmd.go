package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/ops"
	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/dags"
	"github.com/labplatform/platform/orchestrate/notify"
	"github.com/labplatform/platform/orchestrate/scheduler"
)

func (a *app) scheduler(ctx context.Context, args []string) error {
	var c common
	fs := a.flagSet("scheduler", &c)
	workers := fs.Int("workers", 32, "task attempts executing at once in this process")
	lease := fs.Duration("lease", 30*time.Second, "how long a claimed task stays owned without renewal")
	poll := fs.Duration("poll", time.Second, "how often the state store is read in full")
	grace := fs.Duration("grace", 30*time.Second, "on shutdown, how long running tasks may finish before they are cancelled")
	pools := poolsFlag{}
	fs.Var(pools, "pool", "pool name=slots, shared by every scheduler (repeatable; pools not listed are unlimited)")
	metricsAddr := fs.String("metrics-addr", envOr(a.getenv, "ORCHESTRATE_METRICS_ADDR", ":9464"), "address of /metrics, /healthz and /readyz, empty for none (env ORCHESTRATE_METRICS_ADDR)")
	owner := fs.String("owner", a.getenv("ORCHESTRATE_OWNER"), "this scheduler's name in task leases (default host-pid; env ORCHESTRATE_OWNER)")
	webhook := fs.String("webhook", a.getenv("ORCHESTRATE_WEBHOOK"), "also send alerts as JSON POSTs to this URL (env ORCHESTRATE_WEBHOOK)")
	topic := fs.String("alert-topic", a.getenv("ORCHESTRATE_ALERT_TOPIC"), "also publish alerts to this Pub/Sub topic of the project (env ORCHESTRATE_ALERT_TOPIC)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if _, err := a.parse(fs, &c, args, "[flags]", 0, 0); err != nil {
		return err
	}
	if *workers <= 0 || *lease <= 0 || *poll <= 0 || *grace <= 0 {
		return usageErrorf("--workers, --lease, --poll and --grace must be positive")
	}
	if *webhook != "" {
		if u, err := url.Parse(*webhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageErrorf("--webhook %q: want an http(s) URL", *webhook)
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return usageErrorf("--log-level: %v", err)
	}
	log := slog.New(slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: lvl}))

	notifier, closeNotifier, err := a.notifier(ctx, &c, log, *webhook, *topic)
	if err != nil {
		return err
	}
	defer closeNotifier()
	s, err := a.open(ctx, &c, needs{store: true, clients: true, notifier: notifier})
	if err != nil {
		return err
	}
	defer func() {
		if err := s.Close(); err != nil {
			log.Error("close the state store and clients", "err", err)
		}
	}()

	if c.demo {
		logDemo(log, s.dags)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sch, err := scheduler.New(s.store, s.dags, scheduler.Options{
		Owner: *owner, Workers: *workers, Lease: *lease, PollInterval: *poll, Pools: pools, Grace: *grace,
		Now: a.now, Logger: log, Notifier: notifier, Registerer: reg,
	})
	if err != nil {
		return fmt.Errorf("build the scheduler: %w", err)
	}

	g, gctx := errgroup.WithContext(ctx)
	if *metricsAddr != "" {
		g.Go(func() error { return ops.Serve(gctx, *metricsAddr, ops.Handler(reg, readiness(&c, s)...), log) })
	}
	g.Go(func() error {
		err := sch.Run(gctx)
		log.Info("scheduler stopped")
		return err
	})
	return g.Wait()
}

// readiness lists what the scheduler's tasks and state need to answer:
// Cloud Storage (the curated bucket the loads read), BigQuery (the lab
// dataset; missing counts as up) and Firestore (lineage and load records,
// and the state with --state firestore). A bolt state file is local: it
// has no check.
func readiness(c *common, s *session) []ops.Check {
	return []ops.Check{
		ops.StorageCheck(s.storage, names.CuratedBucket(c.platform.Prefix)),
		ops.BigQueryCheck(s.bigquery, names.Dataset),
		ops.FirestoreCheck(s.firestore),
	}
}

// logDemo says, once at start, that the scheduler runs the DAGs on demo
// schedules, and which.
func logDemo(log *slog.Logger, list []*dag.DAG) {
	var schedules []any
	for _, d := range list {
		if slices.Contains(d.Tags, dags.DemoTag) {
			schedules = append(schedules, slog.String(d.ID, d.Schedule))
		}
	}
	log.Info(fmt.Sprintf("demo mode: time is compressed %dx (an hour becomes a minute): DAGs run on demo schedules, waits and deadlines are divided, task timeouts are not", dags.DemoFactor),
		"factor", dags.DemoFactor, slog.Group("schedules", schedules...))
}

// notifier builds the alert notifier: the log always, plus a webhook and a
// Pub/Sub topic when configured. The returned cleanup stops the publisher.
func (a *app) notifier(ctx context.Context, c *common, log *slog.Logger, webhook, topic string) (notify.Notifier, func(), error) {
	ns := notify.Multi{notify.Log{Logger: log}}
	cleanup := func() {}
	if webhook != "" {
		ns = append(ns, notify.Webhook{URL: webhook, Client: &http.Client{Timeout: 10 * time.Second}, Retries: 3})
	}
	if topic != "" {
		ps, err := gcp.NewPubSub(ctx, c.platform)
		if err != nil {
			return nil, nil, err
		}
		pub := ps.Publisher(topic)
		ns = append(ns, notify.PubSub{Publisher: pub})
		cleanup = func() {
			pub.Stop()
			if err := ps.Close(); err != nil {
				log.Warn("close the Pub/Sub client", "err", err)
			}
		}
	}
	return ns, cleanup, nil
}
