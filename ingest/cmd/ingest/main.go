// Command ingest ships robot exports from NFS folders to the raw bucket:
// "ingest run" (daemon), "ingest once" (one pass) and "ingest status".
// See the module README.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/ops"
	"github.com/labplatform/platform/ingest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := ingest.Load(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		if err == flag.ErrHelp { //nolint:errorlint // bare: "ingest -h"
			fmt.Fprintln(stdout, ingest.Usage)
		} else {
			fmt.Fprintln(stdout, err) // "ingest <command> -h": the flags
		}
		return nil
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	clock := ingest.SystemClock{}
	if cfg.Command == ingest.CmdStatus {
		return status(cfg, clock, stdout)
	}

	svc, cleanup, err := setup(ctx, cfg, clock, log)
	if err != nil {
		return err
	}
	defer cleanup()
	if cfg.Command == ingest.CmdOnce {
		res, err := svc.shipper.Pass(ctx)
		if err != nil {
			return err
		}
		log.Info("pass", "shipped", res.Shipped, "deduplicated", res.Deduplicated, "chunks", res.Chunks, "failed", res.Failed, "waiting", res.Waiting)
		if res.Failed > 0 {
			return fmt.Errorf("%d files or databases failed; they are retried on the next run", res.Failed)
		}
		return nil
	}
	return svc.serve(ctx, cfg, clock, log)
}

type service struct {
	shipper *ingest.Shipper
	reg     *prometheus.Registry
	// ready are the checks of /readyz: the raw bucket answers.
	ready []ops.Check
}

// setup builds the shipper and returns it with one cleanup.
func setup(ctx context.Context, cfg ingest.Config, clock ingest.Clock, log *slog.Logger) (*service, func(), error) {
	gcs, err := gcp.NewStorage(ctx, cfg.Platform)
	if err != nil {
		return nil, nil, err
	}
	ckpt, err := ingest.OpenCheckpoint(cfg.Checkpoint, ingest.CheckpointOptions{})
	if err != nil {
		gcs.Close()
		return nil, nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts := cfg.Shipper
	opts.Clock, opts.Logger, opts.Metrics = clock, log, ingest.NewMetrics(reg)
	raw := names.RawBucket(cfg.Platform.Prefix)
	sh := ingest.NewShipper(cfg.Root, ingest.OS{}, gcs.Bucket(raw), ckpt, opts)
	cleanup := func() {
		if err := ckpt.Close(); err != nil {
			log.Error("close checkpoint", "err", err)
		}
		gcs.Close()
	}
	return &service{shipper: sh, reg: reg, ready: []ops.Check{ops.StorageCheck(gcs, raw)}}, cleanup, nil
}

// serve runs passes every interval and the HTTP endpoints until ctx ends.
func (s *service) serve(ctx context.Context, cfg ingest.Config, clock ingest.Clock, log *slog.Logger) error {
	health := ingest.NewHealth(clock, 3*cfg.Interval+cfg.Shipper.UploadTimeout)
	g, ctx := errgroup.WithContext(ctx)
	if cfg.Listen != "" {
		lis, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
		srv := &http.Server{Handler: ingest.Handler(health, s.reg, s.ready...), ReadHeaderTimeout: 10 * time.Second}
		log.Info("serving", "addr", lis.Addr().String())
		g.Go(func() error {
			if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", cfg.Listen, err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	g.Go(func() error {
		for {
			res, err := s.shipper.Pass(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				log.Error("pass", "err", err)
			} else {
				health.PassEnded()
				if res.Shipped+res.Deduplicated+res.Chunks+res.Failed > 0 {
					log.Info("pass", "shipped", res.Shipped, "deduplicated", res.Deduplicated, "chunks", res.Chunks, "failed", res.Failed, "waiting", res.Waiting)
				}
			}
			select {
			case <-ctx.Done():
				return nil
			case <-clock.After(cfg.Interval):
			}
		}
	})
	return g.Wait()
}

func status(cfg ingest.Config, clock ingest.Clock, stdout io.Writer) error {
	ckpt, err := ingest.OpenCheckpoint(cfg.Checkpoint, ingest.CheckpointOptions{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("%w (a running ingest holds it: read its /metrics instead)", err)
	}
	defer ckpt.Close()
	sts, err := ingest.Status(ingest.OS{}, cfg.Root, ckpt, clock.Now())
	if err != nil {
		return err
	}
	return ingest.WriteStatus(stdout, sts, cfg.JSON)
}
