package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/testenv/audit"
	"github.com/labplatform/platform/testenv/issuer"
)

// ScaleOptions shape a scale measurement: the same backlog of raw files
// drained by 1, 2, 4... process workers, each their own OS process on the
// one subscription.
type ScaleOptions struct {
	// Stack configures the robots that make the backlog (default 10 robots
	// writing for 20 s at 1,800 files an hour each, 1,000 rows a file: about
	// 100 files, 100,000 rows). Workers is ignored; Dir gets one folder per
	// step.
	Stack Options
	// Workers are the worker counts measured (default 1, 2, 4).
	Workers []int
	// Timeout bounds each step (default 10 minutes).
	Timeout time.Duration
	// Poll is how often a step looks at the platform (default 200 ms).
	Poll time.Duration
}

// ScaleStep is one worker count's measurement.
type ScaleStep struct {
	Workers int   `json:"workers"`
	Files   int   `json:"files"`
	Rows    int64 `json:"rows"`
	// Took is from the workers' start to the last lineage document done.
	Took       time.Duration `json:"took_ns"`
	FilesPerS  float64       `json:"files_per_s"`
	RowsPerS   float64       `json:"rows_per_s"`
	Violations int           `json:"violations"`
	Report     *audit.Report `json:"report"`
}

// Scale measures, for each worker count, how fast that many process
// workers drain the same backlog, and audits the result: summaries must be
// exact whatever the number of workers sharing the subscription.
// newPlatform provisions a fresh platform per step (testenv's
// Env.NewPlatform). It returns an error wrapping ErrInvariant when an audit
// fails.
func Scale(ctx context.Context, newPlatform func(ctx context.Context, name string) (config.Platform, error), iss *issuer.Issuer, opts ScaleOptions, w io.Writer) ([]ScaleStep, error) {
	if len(opts.Workers) == 0 {
		opts.Workers = []int{1, 2, 4}
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.Poll == 0 {
		opts.Poll = 200 * time.Millisecond
	}
	o := opts.Stack
	if o.RobotsFor == 0 {
		o.RobotsFor = 20 * time.Second
	}
	if o.FilesPerHour == 0 {
		o.FilesPerHour = 1800
	}
	if o.Rows == 0 {
		o.Rows = 1000
	}
	if o.RobotArgs == nil {
		o.RobotArgs = []string{"-malformed=0.005"}
	}
	o.Workers = -1
	dir := o.Dir
	var steps []ScaleStep
	var errs []error
	for _, n := range opts.Workers {
		o.Dir = filepath.Join(dir, fmt.Sprintf("workers-%d", n))
		step, err := scaleStep(ctx, newPlatform, iss, o, n, opts, w)
		if err != nil && !errors.Is(err, ErrInvariant) {
			return steps, err
		}
		errs = append(errs, err)
		steps = append(steps, step)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "workers  files  rows     drain     files/s  rows/s    violations")
	for _, s := range steps {
		fmt.Fprintf(w, "%7d  %5d  %7d  %7.1fs  %7.1f  %8.0f  %d\n", s.Workers, s.Files, s.Rows, s.Took.Seconds(), s.FilesPerS, s.RowsPerS, s.Violations)
	}
	return steps, errors.Join(errs...)
}

func scaleStep(ctx context.Context, newPlatform func(context.Context, string) (config.Platform, error), iss *issuer.Issuer, o Options, n int, opts ScaleOptions, w io.Writer) (step ScaleStep, err error) {
	step.Workers = n
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	p, err := newPlatform(ctx, fmt.Sprintf("scale-%d", n))
	if err != nil {
		return step, err
	}
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(w, "[%d workers %5.1fs] %s\n", n, time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	s, err := Start(ctx, p, iss, o)
	if err != nil {
		return step, err
	}
	defer func() { err = errors.Join(err, s.Stop()) }()
	d := &demo{s: s, p: p, poll: opts.Poll, say: say}
	if err := d.waitRobots(ctx); err != nil {
		return step, d.explain(err)
	}
	if err := d.waitIngest(ctx); err != nil {
		return step, d.explain(err)
	}
	raw, err := d.countRaw(ctx)
	if err != nil {
		return step, err
	}
	say("the backlog: %d raw files waiting on process-raw; starting %d workers", raw, n)
	t0 := time.Now()
	if err := s.StartWorkers(ctx, n); err != nil {
		return step, err
	}
	if err := d.waitLineage(ctx); err != nil {
		return step, d.explain(err)
	}
	step.Took = time.Since(t0)
	rep, err := d.settleAndAudit(ctx)
	if err != nil {
		return step, err
	}
	step.Report, step.Files, step.Rows, step.Violations = rep, rep.Files, rep.RowsIn, len(rep.Violations)
	step.FilesPerS = float64(step.Files) / step.Took.Seconds()
	step.RowsPerS = float64(step.Rows) / step.Took.Seconds()
	say("drained in %.1fs: %.1f files/s, %.0f rows/s; %d violations", step.Took.Seconds(), step.FilesPerS, step.RowsPerS, step.Violations)
	if !rep.OK() {
		if werr := rep.Write(w); werr != nil {
			return step, werr
		}
		return step, fmt.Errorf("%w: %d violations with %d workers", ErrInvariant, len(rep.Violations), n)
	}
	return step, nil
}
