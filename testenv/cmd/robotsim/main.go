// Command robotsim runs the robot simulator: a fleet of organizer robots
// writing CSV exports into <root>/<robot>/ folders, as the NFS shares the
// ingest host mounts, with the faults real robots have. It prints what it
// wrote every report interval and stops cleanly on Ctrl-C or SIGTERM.
//
//	robotsim -root /tmp/robots -robots 10 -files-per-hour 60 -duration 10m
//	robotsim -root /tmp/robots -once -malformed 0.01 -db
//	robotsim -generate-file big.csv -rows 800000 -version v2 -malformed 0.001
//
// See testenv/robotsim/README.md for every flag.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/labplatform/platform/testenv/robotsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "robotsim:", err)
		os.Exit(1)
	}
}

type config struct {
	sim      robotsim.Options
	once     bool
	duration time.Duration
	report   time.Duration
	manifest string
	// generate is the single-file generator's output path ("-": stdout).
	generate string
	gen      robotsim.GenerateOptions
}

// byteSize is a size flag: 1000, 64KB, 100MB, 1GiB.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("want a size like 1000, 64KB or 100MB")
	}
	*b = byteSize(n * float64(mult))
	return nil
}

func parse(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("robotsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	o, f := &c.sim, &c.sim.Faults
	var versions, kinds string
	var size byteSize
	var corrected, altUnits float64
	fs.StringVar(&o.Root, "root", "", "directory the robots' export folders <root>/<robot>/ are made in (required)")
	fs.IntVar(&o.Robots, "robots", 100, "number of robots, R001 upwards (at most 999)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed: the same seed and flags write the same files")
	fs.Float64Var(&o.FilesPerHour, "files-per-hour", 4, "mean exports per robot and hour (negative: none)")
	fs.IntVar(&o.RowsPerFile, "rows", 1000, "data rows per export (and per file with -generate-file)")
	fs.Var(&size, "file-size", "export size, e.g. 100MB; overrides -rows")
	fs.StringVar(&versions, "versions", "v1,v2,v3", "firmware mix: robot i runs the i-th version, cycling (repeat one to weight it)")
	fs.IntVar(&o.Patients, "patients", 10000, "size of the patient population")
	fs.Uint64Var(&o.SampleBase, "sample-base", 0, "sample numbers start after this (a restarted simulator writing into the same platform takes one above what it used)")
	fs.Float64Var(&altUnits, "alternate-units", 0.25, "share of robots reporting in alternate units")
	fs.Float64Var(&corrected, "corrected", 0.05, "share of v3 results re-sent later as corrected")
	fs.DurationVar(&o.Tick, "tick", time.Second, "simulation step")
	fs.TextVar(&o.Start, "start", time.Time{}, "simulated start time, RFC 3339 (default now); a past start is caught up at full speed, and with it the output is reproducible")
	fs.DurationVar(&c.duration, "duration", 0, "how long to run (0: until Ctrl-C)")
	fs.DurationVar(&c.report, "report", 10*time.Second, "how often to print what was written")
	fs.BoolVar(&c.once, "once", false, "every robot writes one file (and one database append), then exit")
	fs.StringVar(&c.manifest, "manifest", "", "write the manifest as JSON to this file on exit")
	fs.Float64Var(&f.Malformed, "malformed", 0, "probability that a row is malformed")
	fs.StringVar(&kinds, "malformed-kinds", "", "comma-separated kinds of malformed rows (default all): "+kindList())
	fs.Float64Var(&f.TruncatedLastLine, "truncate-last-line", 0, "probability that a file's last line is cut short")
	fs.Float64Var(&f.SlowWrite, "slow-write", 0, "probability that a file is written in place slowly")
	fs.DurationVar(&f.SlowWriteDuration, "slow-write-duration", 30*time.Second, "how long a slow write takes")
	fs.Float64Var(&f.TempRename, "temp-rename", 0, "share of robots that write .<name>.tmp and rename it")
	fs.Float64Var(&f.DoneMarker, "done-marker", 0, "share of robots that write <name>.done after a file")
	fs.Float64Var(&f.Reexport, "reexport", 0, "probability that a file is exported again under a new name")
	fs.Float64Var(&f.Empty, "empty", 0, "probability that a file is empty")
	fs.Float64Var(&f.Large, "large", 0, "probability that a file is very large")
	fs.IntVar(&f.LargeRows, "large-rows", 200000, "rows of a very large file")
	fs.BoolVar(&o.DB.Enabled, "db", false, "keep an append-only database <root>/<robot>/db/results.db.csv")
	fs.Float64Var(&o.DB.VisitsPerHour, "db-visits-per-hour", 120, "mean database appends per robot and hour")
	fs.Float64Var(&o.DB.Rotate, "db-rotate", 0, "probability per append that the database is rotated first")
	fs.Float64Var(&o.DB.Truncate, "db-truncate", 0, "probability per append that the database is truncated first")
	fs.StringVar(&c.generate, "generate-file", "", `write one export to this path ("-": stdout) and exit`)
	fs.StringVar(&c.gen.Version, "version", "v2", "version of -generate-file")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.TargetBytes = int64(size)
	o.Versions = splitList(versions)
	for _, k := range splitList(kinds) {
		f.MalformedKinds = append(f.MalformedKinds, robotsim.MalformedKind(k))
	}
	// The simulator reads 0 as "default"; the flags mean it literally.
	o.Corrected, o.AlternateUnitRobots = literal(corrected), literal(altUnits)
	if c.report <= 0 {
		return config{}, fmt.Errorf("report interval %v: want more than 0", c.report)
	}
	if c.duration < 0 {
		return config{}, fmt.Errorf("duration %v is negative", c.duration)
	}
	if c.generate != "" {
		c.gen.Rows, c.gen.Seed, c.gen.Patients = o.RowsPerFile, o.Seed, o.Patients
		c.gen.Corrected, c.gen.AlternateUnits = o.Corrected, altUnits >= 1
		c.gen.Malformed, c.gen.MalformedKinds = f.Malformed, f.MalformedKinds
		c.gen.TruncatedLastLine = f.TruncatedLastLine >= 1
		return c, nil
	}
	if o.Root == "" {
		return config{}, errors.New("-root is required")
	}
	return c, nil
}

func literal(p float64) float64 {
	if p == 0 {
		return -1
	}
	return p
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func kindList() string {
	var s []string
	for _, k := range robotsim.MalformedKinds() {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.generate != "" {
		return generate(c, stdout)
	}
	rep := &reporter{out: stdout, every: c.report}
	c.sim.Progress = rep.add
	s, err := robotsim.New(c.sim)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "robotsim: %d robots writing into %s (seed %d)\n", c.sim.Robots, c.sim.Root, c.sim.Seed)
	if c.once {
		w, err := s.Once(ctx)
		rep.add(w)
		rep.flush()
		if err != nil {
			return err
		}
	} else {
		if c.duration > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.duration)
			defer cancel()
		}
		err := s.Run(ctx)
		rep.flush()
		if err != nil {
			return err
		}
	}
	m := s.Manifest()
	fmt.Fprintf(stdout, "robotsim: done: %d files, %d database series, %d files left in flight\n", len(m.Files), len(m.DB), len(m.InFlight))
	if c.manifest != "" {
		b, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		if err := os.WriteFile(c.manifest, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
	}
	return nil
}

func generate(c config, stdout io.Writer) error {
	w, report := stdout, io.Discard
	var fh *os.File
	if c.generate != "-" {
		var err error
		if fh, err = os.Create(c.generate); err != nil {
			return err
		}
		w, report = fh, stdout
	}
	start := time.Now()
	st, err := robotsim.Generate(w, c.gen)
	if fh != nil {
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(report, "robotsim: wrote %s: %s, %d rows (%d malformed, %d corrected), %d bytes in %.2fs (%.0f MB/s)\n",
		c.generate, c.gen.Version, st.Rows, st.Malformed, st.Corrected, st.Bytes, secs, float64(st.Bytes)/1e6/secs)
	return nil
}

// reporter sums what the simulator wrote and prints it once per interval
// of simulated time.
type reporter struct {
	out          io.Writer
	every        time.Duration
	since, at    time.Time
	files, rows  int
	malformed    int
	started      int
	inflight     int
	dbLines      int
	dbEnds       int
	bytesWritten int64
}

func (r *reporter) add(w robotsim.Written) {
	if r.since.IsZero() {
		r.since = w.At
	}
	r.at = w.At
	r.started += w.Started
	r.inflight = w.InFlight
	r.dbLines += w.DBLines
	r.dbEnds += w.DBRotations + w.DBTruncations
	for _, f := range w.Files {
		r.files++
		r.rows += f.Rows
		r.malformed += f.Malformed
		r.bytesWritten += f.Size
	}
	if w.At.Sub(r.since) >= r.every {
		r.flush()
	}
}

func (r *reporter) flush() {
	if r.at.IsZero() {
		return
	}
	fmt.Fprintf(r.out, "%s  files %d done, %d started, %d in flight (%d rows, %d malformed, %.1f MB)  db lines %d, rotated/truncated %d\n",
		r.at.UTC().Format(time.RFC3339), r.files, r.started, r.inflight, r.rows, r.malformed, float64(r.bytesWritten)/1e6, r.dbLines, r.dbEnds)
	*r = reporter{out: r.out, every: r.every, since: r.at, inflight: r.inflight}
}
