// Package runner carries out the lifecycle module's three jobs — apply the
// policies to the buckets, enforce them on objects, report storage cost — for
// a platform. The `lifecycle` command and orchestrate's lifecycle DAG both
// call it; each job returns a one-paragraph summary for logs and task output.
package runner

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/lifecycle/apply"
	"github.com/labplatform/platform/lifecycle/cost"
	"github.com/labplatform/platform/lifecycle/enforce"
	"github.com/labplatform/platform/lifecycle/policy"
)

// Config are the runner's settings.
type Config struct {
	// Prefix names the platform's buckets.
	Prefix string
	// Policies default to the shipped policies.json.
	Policies *policy.File
	// Prices default to the shipped prices.json.
	Prices *cost.Prices
	// Months of cost projection (default 12).
	Months int
	// GrowthThreshold is the day-over-day growth of a bucket that raises a
	// storage_growth alert (default 0.2, +20%).
	GrowthThreshold float64
	// AllRules makes Enforce carry out the rules GCS's native lifecycle
	// would too: set it where no native lifecycle runs (the emulator). On
	// GCP leave it off: `apply` installed those rules on the buckets and
	// the enforcer carries out only the data-aware ones. With AllRules the
	// noncurrent versions are left alone, because the emulator cannot delete
	// one without deleting the live object.
	AllRules bool
	Logger   *slog.Logger
}

// Runner runs the lifecycle jobs of one platform.
type Runner struct {
	gcs     *storage.Client
	fs      *firestore.Client
	alerter cost.Alerter
	cfg     Config
}

// New returns a runner. alerter receives storage growth anomalies.
func New(gcs *storage.Client, fs *firestore.Client, alerter cost.Alerter, cfg Config) (*Runner, error) {
	if cfg.Policies == nil {
		cfg.Policies = policy.Default()
	}
	if cfg.Prices == nil {
		p, err := cost.DefaultPrices()
		if err != nil {
			return nil, err
		}
		cfg.Prices = &p
	}
	if cfg.Months <= 0 {
		cfg.Months = 12
	}
	if cfg.GrowthThreshold <= 0 {
		cfg.GrowthThreshold = 0.2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Policies.Validate(); err != nil {
		return nil, fmt.Errorf("lifecycle policies: %w", err)
	}
	return &Runner{gcs: gcs, fs: fs, alerter: alerter, cfg: cfg}, nil
}

// Plan compares each bucket's lifecycle configuration with the policies.
func (r *Runner) Plan(ctx context.Context) ([]apply.BucketPlan, error) {
	return apply.Plan(ctx, r.gcs, r.cfg.Policies, r.cfg.Prefix)
}

// Apply plans and, unless dryRun, writes the buckets that differ.
func (r *Runner) Apply(ctx context.Context, dryRun bool) (string, error) {
	plans, err := r.Plan(ctx)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	if err := apply.WriteText(&out, plans); err != nil {
		return "", err
	}
	changed := 0
	for _, p := range plans {
		if !p.InSync {
			changed++
		}
	}
	if dryRun || changed == 0 {
		return fmt.Sprintf("%d of %d buckets differ from the policies (not written)\n%s", changed, len(plans), out.String()), nil
	}
	if err := apply.Apply(ctx, r.gcs, plans); err != nil {
		return out.String(), err
	}
	return fmt.Sprintf("lifecycle written to %d of %d buckets\n%s", changed, len(plans), out.String()), nil
}

// Enforce carries out the policies on objects as of now (dryRun: plans only).
func (r *Runner) Enforce(ctx context.Context, now time.Time, dryRun bool) (string, error) {
	rep, err := r.EnforceReport(ctx, now, dryRun)
	if err != nil {
		return "", err
	}
	return rep.Summary(), nil
}

// EnforceReport is Enforce with the whole report.
func (r *Runner) EnforceReport(ctx context.Context, now time.Time, dryRun bool) (*enforce.Report, error) {
	return enforce.Run(ctx, enforce.Clients{Storage: r.gcs, Firestore: r.fs}, r.cfg.Policies, r.cfg.Prefix, enforce.Options{
		Now: func() time.Time { return now }, DryRun: dryRun, EnforcerOnly: !r.cfg.AllRules, SkipNoncurrent: r.cfg.AllRules, Logger: r.cfg.Logger,
	})
}

// CostReport takes the inventory and builds the cost report as of now.
func (r *Runner) CostReport(ctx context.Context, now time.Time, opts cost.Options) (*cost.Report, *cost.Inventory, error) {
	inv, err := cost.TakeInventory(ctx, r.gcs, r.cfg.Policies, r.cfg.Prefix, now)
	if err != nil {
		return nil, nil, err
	}
	return cost.NewReport(inv, r.cfg.Policies, *r.cfg.Prices, now, r.cfg.Months, opts), inv, nil
}

// ReportPrefix is where Cost stores each day's report in the curated
// bucket: <ReportPrefix><YYYY-MM-DD>.json and .svg.
const ReportPrefix = "reports/storage-cost/"

// Cost builds the cost report, stores it (JSON and SVG) in the curated
// bucket, records today's storage snapshot and alerts when a bucket grew
// beyond the threshold since yesterday.
func (r *Runner) Cost(ctx context.Context, now time.Time) (string, error) {
	rep, inv, err := r.CostReport(ctx, now, cost.Options{})
	if err != nil {
		return "", err
	}
	day := now.UTC().Format(time.DateOnly)
	bucket := names.CuratedBucket(r.cfg.Prefix)
	var js, svg bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		return "", err
	}
	if err := rep.WriteSVG(&svg); err != nil {
		return "", err
	}
	for _, o := range []struct {
		name, contentType string
		data              []byte
	}{
		{ReportPrefix + day + ".json", "application/json", js.Bytes()},
		{ReportPrefix + day + ".svg", "image/svg+xml", svg.Bytes()},
	} {
		w := r.gcs.Bucket(bucket).Object(o.name).NewWriter(ctx)
		w.ContentType = o.contentType
		if _, err := w.Write(o.data); err != nil {
			_ = w.Close()
			return "", fmt.Errorf("write gs://%s/%s: %w", bucket, o.name, err)
		}
		if err := w.Close(); err != nil {
			return "", fmt.Errorf("write gs://%s/%s: %w", bucket, o.name, err)
		}
	}
	anomaly, err := r.Watch(ctx, inv)
	if err != nil {
		return "", err
	}
	with, without := total(rep.WithPolicies), total(rep.WithoutPolicies)
	msg := fmt.Sprintf("monthly at-rest cost now %.2f %s; next %d months %.2f with the policies, %.2f without; report gs://%s/%s%s.{json,svg}",
		rep.Current.Total, r.cfg.Prices.Currency, rep.Months, with, without, bucket, ReportPrefix, day)
	if anomaly != nil {
		msg += "; storage growth alert: " + anomaly.Message()
	}
	return msg, nil
}

// Watch records the inventory's storage snapshot for its day and alerts when
// a bucket grew beyond the threshold since the day before.
func (r *Runner) Watch(ctx context.Context, inv *cost.Inventory) (*cost.Anomaly, error) {
	return cost.Watch(ctx, r.fs, r.alerter, inv.Snapshot(), r.cfg.GrowthThreshold)
}

func total(p cost.Projection) float64 { return p.Total.Total }
