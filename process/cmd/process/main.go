// Command process cleans raw robot CSV: "process worker" is the Pub/Sub
// service, "process clean" runs the same core on local files with no cloud
// at all. See the module README.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"

	"cloud.google.com/go/civil"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/ops"
	"github.com/labplatform/platform/process/internal/clean"
	"github.com/labplatform/platform/process/internal/parquetout"
	"github.com/labplatform/platform/process/internal/quarantine"
	"github.com/labplatform/platform/process/internal/summary"
	"github.com/labplatform/platform/process/internal/worker"
)

const usage = `process cleans raw robot CSV into curated Parquet.

  process worker [flags]   receive raw-object notifications from process-raw and process them
  process clean  [flags]   clean one local file: --in file.csv|- --out out.parquet
                           [--quarantine q.csv] [--report report.json]

Run "process <command> -h" for the flags.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "process:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	switch args[0] {
	case "worker":
		return runWorker(ctx, args[1:], getenv, stdout, stderr)
	case "clean":
		return runClean(ctx, args[1:], getenv, stdin, stdout, stderr)
	}
	return fmt.Errorf("unknown command %q\n\n%s", args[0], usage)
}

func parse(fs *flag.FlagSet, args []string, stdout io.Writer) (help bool, err error) {
	fs.SetOutput(stdout)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return false, nil
}

func runWorker(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("process worker", flag.ContinueOnError)
	var p config.Platform
	p.RegisterFlags(fs, getenv)
	listen := fs.String("listen", envOr(getenv, "PROCESS_LISTEN", ":9102"), "address of /healthz, /readyz and /metrics (empty: none) [PROCESS_LISTEN]")
	id := fs.String("id", getenv("PROCESS_WORKER_ID"), "worker id in lineage and logs (default host-pid) [PROCESS_WORKER_ID]")
	maxMsgs := fs.Int("max-outstanding", 1, "files processed at once (Pub/Sub flow control); each uses every core and about 150 MB")
	maxBytes := fs.Int("max-outstanding-bytes", 512<<20, "total size of the files processed at once")
	runBytes := fs.Int("run-bytes", 48<<20, "memory for sorting one file's rows before spilling to -tmp")
	tmp := fs.String("tmp", os.TempDir(), "directory for spilled sort runs")
	memLimit := fs.Int64("memory-limit", defaultMemoryLimit, "soft memory limit in bytes for the Go runtime (GOMEMLIMIT wins when set)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if help, err := parse(fs, args, stdout); help || err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	setMemoryLimit(*memLimit, getenv)
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	st, err := gcp.NewStorage(ctx, p)
	if err != nil {
		return err
	}
	defer st.Close()
	fsc, err := gcp.NewFirestore(ctx, p)
	if err != nil {
		return err
	}
	defer fsc.Close()
	ps, err := gcp.NewPubSub(ctx, p)
	if err != nil {
		return err
	}
	defer ps.Close()

	reg, wm, sm := newMetrics()
	w := worker.New(st, fsc, ps, p.Prefix, worker.Options{
		ID: *id, MaxOutstandingMessages: *maxMsgs, MaxOutstandingBytes: *maxBytes,
		Clean:   clean.Options{RunBytes: *runBytes, TempDir: *tmp},
		Summary: summary.Options{Metrics: sm},
		Logger:  log, Metrics: wm,
	})

	g, gctx := errgroup.WithContext(ctx)
	if *listen != "" {
		ready := []ops.Check{
			ops.StorageCheck(st, names.RawBucket(p.Prefix)),
			ops.FirestoreCheck(fsc),
			ops.PubSubCheck(ps, names.SubscriptionProcessRaw),
		}
		g.Go(func() error { return ops.Serve(gctx, *listen, ops.Handler(reg, ready...), log) })
	}
	g.Go(func() error { return w.Run(gctx) })
	return g.Wait()
}

// defaultMemoryLimit keeps the process under its 200 MB budget: the live
// heap of one file is about 80-100 MB (a sort run, a few batches, a Parquet
// row group), and without a limit the collector lets the heap double
// before it runs.
const defaultMemoryLimit = 150 << 20

// setMemoryLimit sets the runtime's soft memory limit unless the operator
// set GOMEMLIMIT, which the runtime has applied already.
func setMemoryLimit(limit int64, getenv func(string) string) {
	if getenv("GOMEMLIMIT") == "" && limit > 0 {
		debug.SetMemoryLimit(limit)
	}
}

// newMetrics registers every metric the worker serves on one registry.
func newMetrics() (*prometheus.Registry, *worker.Metrics, *summary.Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, worker.NewMetrics(reg), summary.NewMetrics(reg)
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// fileSink writes one local Parquet file (every day together) and the
// quarantine CSV.
type fileSink struct {
	pq *parquetout.Writer
	q  *quarantine.Writer
}

func (s *fileSink) Curated(_ civil.Date, rec arrow.RecordBatch) error { return s.pq.Write(rec) }
func (s *fileSink) Quarantine(q *clean.Quarantined) error {
	if s.q == nil {
		return nil
	}
	return s.q.Write(q)
}
func (s *fileSink) Result(*clean.Result) error { return nil }

func runClean(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("process clean", flag.ContinueOnError)
	in := fs.String("in", "", "robot CSV file to clean, - for standard input (required)")
	out := fs.String("out", "", "Parquet file to write (required)")
	qPath := fs.String("quarantine", "", "CSV file for rejected and superseded lines (default: not written)")
	reportPath := fs.String("report", "", "JSON report (default: printed to standard output)")
	robot := fs.String("robot", "R000", "robot id written in robot_id")
	source := fs.String("source", "", "source_object written on every row (default: the input path)")
	runBytes := fs.Int("run-bytes", 48<<20, "memory for sorting rows before spilling to -tmp")
	tmp := fs.String("tmp", os.TempDir(), "directory for spilled sort runs")
	memLimit := fs.Int64("memory-limit", defaultMemoryLimit, "soft memory limit in bytes for the Go runtime (GOMEMLIMIT wins when set)")
	if help, err := parse(fs, args, stdout); help || err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return errors.New("clean needs --in and --out")
	}
	setMemoryLimit(*memLimit, getenv)
	var r io.Reader = stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if *source == "" {
		*source = *in
	}
	outFile, err := create(*out)
	if err != nil {
		return err
	}
	defer outFile.Close()
	pq, err := parquetout.New(outFile, parquetout.Options{})
	if err != nil {
		return err
	}
	sink := &fileSink{pq: pq}
	var qFile *os.File
	if *qPath != "" {
		if qFile, err = create(*qPath); err != nil {
			return err
		}
		defer qFile.Close()
		if sink.q, err = quarantine.NewWriter(qFile); err != nil {
			return err
		}
	}
	rep, err := clean.Clean(ctx, r, clean.Source{Object: *source, Generation: 1, Robot: *robot}, sink, clean.Options{RunBytes: *runBytes, TempDir: *tmp})
	if err != nil {
		return err
	}
	if err := pq.Close(); err != nil {
		return err
	}
	if err := outFile.Close(); err != nil {
		return fmt.Errorf("close %s: %w", *out, err)
	}
	if sink.q != nil {
		if err := sink.q.Flush(); err != nil {
			return err
		}
		if err := qFile.Close(); err != nil {
			return fmt.Errorf("close %s: %w", *qPath, err)
		}
	}
	report := struct {
		*clean.Report
		GOMAXPROCS int `json:"gomaxprocs"`
	}{rep, runtime.GOMAXPROCS(0)}
	data, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if *reportPath == "" {
		_, err = stdout.Write(data)
		return err
	}
	if err := os.WriteFile(*reportPath, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s: %d rows in, %d valid, %d quarantined, %d superseded in %.2fs\n",
		*in, rep.RowsIn, rep.RowsValid, rep.RowsQuarantined, rep.RowsSuperseded, rep.Timings.Total)
	return nil
}

func create(path string) (*os.File, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	return os.Create(path)
}
