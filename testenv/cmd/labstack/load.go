package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/labplatform/platform/testenv"
	"github.com/labplatform/platform/testenv/issuer"
	"github.com/labplatform/platform/testenv/stack"
)

// loadFlags are the flags of `labstack load` (and of the load section of
// `labstack reliability`) beside the shared ones.
type loadFlags struct {
	multiple float64
	fileSize int64
	dur      time.Duration
	steps    []float64
	bound    time.Duration
	drain    time.Duration
	audit    time.Duration
	out      string
}

// registerLoad declares the load flags; dur is -for's default.
func (l *loadFlags) register(fs *flag.FlagSet, dur time.Duration) {
	fs.Float64Var(&l.multiple, "multiple", 10, "load: each robot exports 4 x multiple files an hour (the case's rate times multiple)")
	l.fileSize = 1_000_000
	fs.Func("file-size", "load: size of each export, e.g. 1MB, 100MB, 64KiB (default 1MB; the case has 100MB)", func(v string) error {
		n, err := parseSize(v)
		l.fileSize = n
		return err
	})
	fs.DurationVar(&l.dur, "for", dur, "load: how long the robots write")
	fs.Func("steps", "load: breaking-point search: multiples to run in rising order, comma-separated (e.g. 1,2,5,10); stops after the first not sustained", func(v string) error {
		l.steps = nil
		for f := range strings.SplitSeq(v, ",") {
			m, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || m <= 0 {
				return fmt.Errorf("steps %q: want positive multiples like 1,2,5", v)
			}
			if len(l.steps) > 0 && m <= l.steps[len(l.steps)-1] {
				return fmt.Errorf("steps %q: want rising multiples", v)
			}
			l.steps = append(l.steps, m)
		}
		return nil
	})
	fs.DurationVar(&l.bound, "latency-bound", time.Minute, "load: the p95 latency beyond which a load is not sustained")
	fs.DurationVar(&l.drain, "drain", 0, "load: bound on the wait for every file to be visible after the robots stop (default -for, at least 2m)")
	fs.DurationVar(&l.audit, "audit-timeout", 0, "load: bound on the settling (BigQuery loads) and the audit after the drain (default 3 x -for, at least 10m)")
}

// parseSize reads 1000, 64KB, 1MB, 64KiB, 1GiB.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := strings.TrimSpace(s), 1.0
	for _, u := range units {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n*mult < 1 {
		return 0, fmt.Errorf("size %q: want a positive size like 1MB or 64KiB", s)
	}
	return int64(n * mult), nil
}

// options turns the flags into the stack's load options.
func (l *loadFlags) options(s stack.Options) stack.LoadOptions {
	return stack.LoadOptions{Stack: s, Multiple: l.multiple, FileSize: l.fileSize, For: l.dur, LatencyBound: l.bound, Drain: l.drain, AuditTimeout: l.audit}
}

// parseLoad reads the flags of `labstack load`.
func parseLoad(args []string, stderr io.Writer) (c settings, l loadFlags, err error) {
	fs := flag.NewFlagSet("labstack load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.register(fs, ".labstack-load")
	l.register(fs, 10*time.Minute)
	fs.StringVar(&l.out, "out", "LOAD.md", "the report written (reliability: RELIABILITY.md; empty: none)")
	if err := fs.Parse(args); err != nil {
		return c, l, err
	}
	if fs.NArg() > 0 {
		return c, l, fmt.Errorf("load: unexpected argument %q", fs.Arg(0))
	}
	robots := false
	var ignored []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "robots":
			robots = true
		case "files-per-hour", "rows", "robot-flags":
			ignored = append(ignored, "-"+f.Name)
		}
	})
	if len(ignored) > 0 {
		return c, l, fmt.Errorf("load: %s do not apply: the rate is -multiple, the size -file-size, and the robots write without faults so every row can be probed", strings.Join(ignored, ", "))
	}
	if !robots {
		c.stack.Robots = stack.CaseRobots
	}
	if c.opts.DataDir == "" || l.multiple <= 0 || l.dur <= 0 {
		return c, l, errors.New("load: -data-dir, a positive -multiple and a positive -for are required")
	}
	return c, l, nil
}

// load runs `labstack load`: one load, or a breaking-point search with
// -steps, on a fresh data directory; the report goes to stdout and -out.
func load(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, l, err := parseLoad(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.RemoveAll(c.opts.DataDir); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	env, iss, stop, err := startLocal(ctx, &c, stderr)
	if err != nil {
		return err
	}
	defer stop()
	c.stack.Dir = filepath.Join(c.opts.DataDir, "load")
	began := time.Now()
	var log1 bytes.Buffer
	res, runErr := runLoad(ctx, env, iss, c, l, io.MultiWriter(stdout, &log1))
	if res == nil {
		return runErr
	}
	if l.out != "" {
		var md bytes.Buffer
		fmt.Fprintf(&md, "# Load\n\n")
		writeLoad(&md, began, l, res, runErr, log1.String())
		if err := os.WriteFile(l.out, md.Bytes(), 0o644); err != nil {
			return errors.Join(runErr, fmt.Errorf("load: %w", err))
		}
		fmt.Fprintf(stdout, "\nwrote %s\n", l.out)
	}
	return runErr
}

// runLoad runs one load on the default platform, or the breaking-point
// search of l.steps on fresh platforms.
func runLoad(ctx context.Context, env *testenv.Env, iss *issuer.Issuer, c settings, l loadFlags, w io.Writer) (*stack.BreakResult, error) {
	opts := l.options(c.stack)
	if len(l.steps) > 0 {
		return stack.BreakingPoint(ctx, env.NewPlatform, iss, stack.BreakOptions{Load: opts, Multiples: l.steps}, w)
	}
	r, err := stack.Load(ctx, env.Platform, iss, opts, w)
	if r == nil {
		return nil, err
	}
	res := &stack.BreakResult{Steps: []*stack.LoadResult{r}}
	if r.Sustained() {
		res.LastSustained = r.Multiple
	} else {
		res.FirstFailing = r.Multiple
	}
	return res, err
}

// writeLoad writes the Markdown body of a load report: what was run, the
// numbers, the breaking point, CPU and memory.
func writeLoad(w io.Writer, began time.Time, l loadFlags, res *stack.BreakResult, runErr error, log string) {
	fmt.Fprintf(w, "Measured on %s, %d CPUs (GOMAXPROCS %d), %s/%s, %s; the run took %s.\n\n",
		began.UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version(), time.Since(began).Round(time.Second))
	if len(res.Steps) == 0 {
		fmt.Fprintf(w, "No step finished: %v.\n", runErr)
		return
	}
	s0 := res.Steps[0]
	fmt.Fprintf(w, "**What ran.** %d simulated robots, each exporting 4 x *multiple* files an hour of %s (the case: 100 robots, 4 files of 100 MB an hour, %.1f MB/s), for %v per run, into the whole platform (every service its real command, %d process workers, the emulators in the labstack process), %d simulated patients. ",
		s0.Robots, stack.FormatBytes(s0.FileSize), stack.CaseBytesPerSecond/1e6, s0.For, s0.Workers, s0.Patients)
	if len(res.Steps) > 1 || len(l.steps) > 0 {
		fmt.Fprintf(w, "Breaking-point search over the multiples %s, each on a fresh platform, stopping after the first not sustained. ", fmtMultiples(l.steps))
	}
	fmt.Fprintf(w, "A run is **sustained** when every file became visible, p95 latency stayed within %v, the backlog did not grow over the second half of the writing, and every invariant of `testenv/audit` held once the platform settled.\n\n", s0.LatencyBound)
	fmt.Fprintf(w, "**Latency** is per file, from the moment the robot renamed the complete file into place (its mtime) to the first mobile-api answer showing it: `GET /v1/me/results/{test}` with a token of the patient of each of the file's last rows (3 rows of distinct patients), polled every second, until every probe row's sample is in its test's recent results (the Firestore summary). It includes ingest's 3 s stability window and mobile-api's 5 s summary cache, which users see too. Files never seen are counted with a lower bound (≥).\n\n")
	fmt.Fprintf(w, "| multiple | × case files | × case bytes | files | rows | p50 | p95 | p99 | max | files/s | rows/s | MB/s | offered MB/s | sustained |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range res.Steps {
		ge := ""
		if s.Latency.Censored > 0 {
			ge = "≥"
		}
		sus := "yes"
		if !s.Sustained() {
			sus = "no: " + strings.Join(s.Reasons, "; ")
		}
		fmt.Fprintf(w, "| %g | %.3g | %.3g | %d | %d | %.1f s | %s%.1f s | %s%.1f s | %s%.1f s | %.2f | %.0f | %.2f | %.2f | %s |\n",
			s.Multiple, s.FileMultiple, s.ByteMultiple, s.Files, s.Rows, s.Latency.P50.Seconds(), ge, s.Latency.P95.Seconds(), ge, s.Latency.P99.Seconds(), ge, s.Latency.Max.Seconds(),
			s.FilesPerS, s.RowsPerS, s.MBPerS, s.OfferedMBPerS, sus)
	}
	fmt.Fprintln(w)
	last := res.Steps[len(res.Steps)-1]
	switch {
	case res.FirstFailing == 0:
		fmt.Fprintf(w, "**Breaking point:** above %gx (%.3gx the case's bytes): every run was sustained.\n\n", res.LastSustained, last.ByteMultiple)
	case res.LastSustained == 0:
		fmt.Fprintf(w, "**Breaking point:** below %gx (%.3gx the case's bytes): the first run was not sustained.\n\n", res.FirstFailing, last.ByteMultiple)
	default:
		prev := res.Steps[len(res.Steps)-2]
		fmt.Fprintf(w, "**Breaking point:** sustained at %gx (%.3gx the case's file rate, %.3gx its bytes), not at %gx (%.3gx, %.3gx).\n\n",
			res.LastSustained, prev.FileMultiple, prev.ByteMultiple, res.FirstFailing, last.FileMultiple, last.ByteMultiple)
	}
	for _, s := range res.Steps {
		fmt.Fprintf(w, "**CPU and memory at %gx** (CPU seconds over the run of %s, and as a share of one core; peak resident memory; `emulators` is the labstack process: the four emulators, the issuer and the harness):\n\n", s.Multiple, s.Took.Round(time.Second))
		fmt.Fprintf(w, "| process | CPU | cores | peak RSS | processes |\n|---|---|---|---|---|\n")
		for _, u := range s.Usage {
			fmt.Fprintf(w, "| %s | %.1f s | %.2f | %s | %d |\n", u.Name, u.CPUSeconds, u.CPUSeconds/s.Took.Seconds(), stack.FormatBytes(u.PeakRSS), u.Processes)
		}
		fmt.Fprintf(w, "\nBacklog (files complete, not yet visible) over time: ")
		for _, b := range s.Backlog {
			fmt.Fprintf(w, "%.0fs %d · ", b.At.Seconds(), b.Backlog)
		}
		fmt.Fprintf(w, "end.\n\n")
	}
	if runErr != nil {
		fmt.Fprintf(w, "**Error:** %v\n\n", runErr)
	}
	fmt.Fprintf(w, "<details><summary>log</summary>\n\n```\n%s```\n</details>\n\n", log)
}

func fmtMultiples(ms []float64) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = strconv.FormatFloat(m, 'g', -1, 64) + "x"
	}
	return strings.Join(parts, ", ")
}
