// Command labstack runs the whole lab platform on one machine, in the
// foreground: the local Google Cloud (Cloud Storage, Pub/Sub, BigQuery and
// Firestore emulators on fixed loopback ports, provisioned for the default
// platform), the local token issuer, and the platform's services as child
// processes: the robot simulator, ingest, process workers, the orchestrate
// scheduler in demo mode and mobile-api with its web page. State is kept in
// a data directory across restarts. Ctrl-C stops everything cleanly.
//
//	labstack [flags]             the platform until Ctrl-C (make run)
//	labstack demo [flags]        a bounded run ending with a report (make demo)
//	labstack sql [flags] 'SQL'   a query on the BigQuery emulator of a running labstack
//	labstack reliability [flags] scale, chaos, outage and load runs, written to RELIABILITY.md (make reliability)
//	labstack load [flags]        a load at a multiple of the case's rate, or a breaking-point search: end-to-end latency, throughput, CPU and memory
//
// With -services=false it runs only the local GCP and the issuer, for
// running the services by hand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/labplatform/platform/testenv"
	"github.com/labplatform/platform/testenv/issuer"
	"github.com/labplatform/platform/testenv/stack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "labstack:", err)
		os.Exit(1)
	}
}

type settings struct {
	opts       testenv.Options
	issuerPort int
	logLevel   slog.Level
	services   bool
	stack      stack.Options
	status     time.Duration
	tokenTTL   time.Duration
}

// register declares the flags run and demo share.
func (c *settings) register(fs *flag.FlagSet, dataDir string) {
	fs.StringVar(&c.opts.Project, "project", "lab-local", "project id of the default platform")
	fs.StringVar(&c.opts.Prefix, "prefix", "lab", "bucket prefix of the default platform")
	fs.StringVar(&c.opts.Host, "host", "127.0.0.1", "address the emulators listen on")
	fs.IntVar(&c.opts.StoragePort, "storage-port", 4443, "Cloud Storage emulator port (0: any free port)")
	fs.IntVar(&c.opts.PubSubPort, "pubsub-port", 8085, "Pub/Sub emulator port (0: any free port)")
	fs.IntVar(&c.opts.FirestorePort, "firestore-port", 8086, "Firestore emulator port (0: any free port)")
	fs.IntVar(&c.opts.BigQueryPort, "bigquery-port", 9050, "BigQuery emulator port (0: any free port)")
	fs.IntVar(&c.issuerPort, "issuer-port", 8090, "local token issuer port: JWKS and dev-only token minting for mobile-api (0: any free port; -1: none, and no services)")
	fs.StringVar(&c.opts.DataDir, "data-dir", dataDir, "directory that keeps objects, tables, documents, robot folders and logs across restarts (empty: memory only, and no services)")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "log level of labstack's own messages: debug, info, warn, error")
	fs.BoolVar(&c.services, "services", true, "run the platform's services (false: only the local GCP and the issuer)")
	// Pub/Sub redelivers a nacked message after the subscription's retry
	// backoff, as GCP does, not at once as pstest would: a worker's failures
	// during a dependency's outage must not use up its delivery attempts.
	c.opts.PubSubRetryBackoff = true
	fs.StringVar(&c.stack.Bin, "bin", defaultBin(), "directory holding the ingest, process, orchestrate, mobile-api and robotsim commands")
	fs.IntVar(&c.stack.Robots, "robots", 10, "simulated robots (the case study has 100)")
	fs.Float64Var(&c.stack.FilesPerHour, "files-per-hour", 0, "export files per robot and hour (default 60; demo 360; the case study has 4)")
	fs.IntVar(&c.stack.Rows, "rows", 0, "data rows per export file (default 200; demo 250; 100 MB files have about 1.1 million)")
	fs.IntVar(&c.stack.Patients, "patients", 0, "simulated patients (default 20000; demo 200; load 100000); the most frequent patient gets about 1/sqrt(patients) of the visits")
	fs.IntVar(&c.stack.Workers, "workers", 2, "process workers")
	fs.Func("robot-flags", `more robotsim flags, space-separated (default "-malformed=0.005 -truncate-last-line=0.02 -reexport=0.02"; demo "-malformed=0.01 -truncate-last-line=0.03 -reexport=0.03")`, func(v string) error {
		c.stack.RobotArgs = strings.Fields(v)
		if c.stack.RobotArgs == nil {
			c.stack.RobotArgs = []string{}
		}
		return nil
	})
	fs.StringVar(&c.stack.APIAddr, "api-addr", "127.0.0.1:8080", "mobile-api's listen address")
	fs.IntVar(&c.stack.MetricsPort, "metrics-port", 9100, "first port of the services' /metrics: ingest on it, orchestrate +1, process workers +10 on (0: free ports)")
}

// defaultBin is the directory labstack's own executable is in: make run
// builds every command into ./bin.
func defaultBin() string {
	exe, err := os.Executable()
	if err != nil {
		return "bin"
	}
	return filepath.Dir(exe)
}

// parse reads the flags of the default command (run the platform).
func parse(args []string, stderr io.Writer) (settings, error) {
	fs := flag.NewFlagSet("labstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c settings
	c.register(fs, ".labstack")
	fs.DurationVar(&c.status, "status", 30*time.Second, "how often to print what the platform has done (0: never)")
	fs.DurationVar(&c.tokenTTL, "token-ttl", 12*time.Hour, "lifetime of the demo tokens printed at start")
	if err := fs.Parse(args); err != nil {
		return settings{}, err
	}
	if fs.NArg() > 0 {
		return settings{}, fmt.Errorf("unexpected argument %q (commands: demo, sql, reliability, load)", fs.Arg(0))
	}
	return c, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "demo":
			return demo(ctx, args[1:], stdout, stderr)
		case "sql":
			return sql(ctx, args[1:], getenv, stdout, stderr)
		case "reliability":
			return reliability(ctx, args[1:], stdout, stderr)
		case "load":
			return load(ctx, args[1:], stdout, stderr)
		}
	}
	c, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.stack.RobotArgs == nil {
		c.stack.RobotArgs = []string{"-malformed=0.005", "-truncate-last-line=0.02", "-reexport=0.02"}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	c.opts.Logger = log
	c.stack.Logger = log
	withServices := c.services && c.issuerPort >= 0 && c.opts.DataDir != ""

	env, err := testenv.Start(ctx, c.opts)
	if err != nil {
		return err
	}
	var iss *issuer.Issuer
	if c.issuerPort >= 0 {
		if iss, err = issuer.Start(ctx, net.JoinHostPort(c.opts.Host, strconv.Itoa(c.issuerPort)), issuer.Options{}); err != nil {
			return errors.Join(fmt.Errorf("token issuer: %w", err), env.Close())
		}
		defer iss.Close()
	}
	var s *stack.Stack
	if withServices {
		c.stack.Dir = c.opts.DataDir
		if s, err = stack.Start(ctx, env.Platform, iss, c.stack); err != nil {
			return errors.Join(err, env.Close())
		}
	}
	if err := welcome(stdout, c, env, iss, s); err != nil {
		_ = stopAll(stdout, s, env)
		return err
	}
	if s != nil && c.status > 0 {
		go status(ctx, stdout, s, c.status, log)
	}
	<-ctx.Done()
	return stopAll(stdout, s, env)
}

func stopAll(stdout io.Writer, s *stack.Stack, env *testenv.Env) error {
	fmt.Fprintln(stdout, "Stopping...")
	var errs []error
	if s != nil {
		errs = append(errs, s.Stop())
	}
	if err := env.Close(); err != nil {
		errs = append(errs, fmt.Errorf("stop: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Stopped.")
	return nil
}

// welcome prints where everything is.
func welcome(w io.Writer, c settings, env *testenv.Env, iss *issuer.Issuer, s *stack.Stack) error {
	p := env.Platform
	if s != nil {
		patientToken, err := s.PatientToken(c.tokenTTL)
		if err != nil {
			return err
		}
		clinicianToken, err := s.ClinicianToken(c.tokenTTL)
		if err != nil {
			return err
		}
		patientFile, clinicianFile := filepath.Join(c.opts.DataDir, "patient.token"), filepath.Join(c.opts.DataDir, "clinician.token")
		for path, tok := range map[string]string{patientFile: patientToken, clinicianFile: clinicianToken} {
			if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
				return fmt.Errorf("write a demo token: %w", err)
			}
		}
		fmt.Fprintf(w, "The lab platform is running: %d robots, ingest, %d process workers, the scheduler (demo mode: hourly loads every minute), mobile-api.\n", c.stack.Robots, c.stack.Workers)
		fmt.Fprintf(w, "State is kept in %s (Pub/Sub messages are not); each service logs to %s.\n\n", c.opts.DataDir, s.LogDir())
		fmt.Fprintf(w, "Open the web page, signed in as the demo patient %s (token valid %v):\n\n", s.DemoPatient(), c.tokenTTL)
		fmt.Fprintf(w, "  %s/#token=%s\n\n", s.APIURL(), patientToken)
		fmt.Fprintln(w, "Call the API:")
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  export TOKEN=$(cat %s)\n", patientFile)
		fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $TOKEN\" %s/v1/me/summary\n", s.APIURL())
		fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $TOKEN\" %s/v1/me/score\n", s.APIURL())
		fmt.Fprintf(w, "  # clinician %s, whose care team has the %d most frequent patients:\n", stack.DemoClinician, stack.CareTeamSize)
		fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $(cat %s)\" %s/v1/patients/%s/summary\n", clinicianFile, s.APIURL(), s.Patients()[1])
		fmt.Fprintf(w, "  # more tokens: curl -s %s/token -d role=patient -d patient_id=%s\n\n", iss.URL(), s.Patients()[2])
		fmt.Fprintln(w, "Query BigQuery (lab.results fills up at the first load, a minute or two from now):")
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  %s sql 'SELECT DATE(collected_at) AS day, COUNT(*) AS results, COUNT(DISTINCT patient_id) AS patients FROM lab.results GROUP BY day ORDER BY day'\n", filepath.Join(c.stack.Bin, "labstack"))
		fmt.Fprintf(w, "  %s sql 'SELECT * FROM lab.daily_test_stats ORDER BY day DESC, test_code LIMIT 10'\n\n", filepath.Join(c.stack.Bin, "labstack"))
		fmt.Fprintln(w, "Drive the orchestrator and the services from another shell after the exports below:")
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  %s runs list --state firestore --dag bq_load\n", filepath.Join(c.stack.Bin, "orchestrate"))
		fmt.Fprintf(w, "  %s status -root %s/robots -checkpoint %s/ingest/checkpoint.db\n", filepath.Join(c.stack.Bin, "ingest"), c.opts.DataDir, c.opts.DataDir)
		fmt.Fprintf(w, "  metrics: ingest http://%s/metrics, orchestrate http://%s/metrics, process-1 http://%s/metrics, mobile-api %s/metrics\n\n",
			s.MetricsAddr(stack.Ingest), s.MetricsAddr(stack.Orchestrate), s.MetricsAddr(stack.Process+"-1"), s.APIURL())
	} else {
		fmt.Fprintf(w, "The lab platform's local GCP is up (project %s, buckets %s-*).\n", p.Project, p.Prefix)
		if c.opts.DataDir != "" {
			fmt.Fprintf(w, "State is kept in %s; Pub/Sub messages are not.\n", c.opts.DataDir)
		}
	}
	fmt.Fprintln(w, "Point clients at it with:")
	fmt.Fprintln(w)
	for _, kv := range env.Environ() {
		fmt.Fprintf(w, "  export %s\n", kv)
	}
	if iss != nil {
		fmt.Fprintf(w, "  export MOBILE_API_JWKS_URL=%s\n", iss.JWKSURL())
		fmt.Fprintf(w, "  export MOBILE_API_ISSUER=%s\n", iss.URL())
		fmt.Fprintf(w, "  export ORCHESTRATE_STATE=firestore\n")
		if s != nil {
			fmt.Fprintf(w, "  export ORCHESTRATE_DEMO=true   # the scheduler's compressed schedules, for the orchestrate CLI\n")
		}
		if s == nil {
			fmt.Fprintln(w)
			fmt.Fprintln(w, "A token for mobile-api (dev-only issuer; its keys change at every start):")
			fmt.Fprintf(w, "  curl -s %s/token -d role=patient -d patient_id=<id>\n", iss.URL())
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
	return nil
}

// status prints what the platform has done, every period.
func status(ctx context.Context, w io.Writer, s *stack.Stack, period time.Duration, log *slog.Logger) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p, err := s.Progress(ctx)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("read progress", "err", err)
				}
				continue
			}
			fmt.Fprintf(w, "[%s] %s\n", now.Format(time.TimeOnly), p)
		}
	}
}

// parseDemo reads the flags of `labstack demo`.
func parseDemo(args []string, stderr io.Writer) (c settings, d stack.DemoOptions, keep bool, err error) {
	fs := flag.NewFlagSet("labstack demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.register(fs, ".labstack-demo")
	fs.DurationVar(&d.Timeout, "timeout", 3*time.Minute, "bound on the whole run")
	fs.DurationVar(&d.Stack.RobotsFor, "robots-for", 40*time.Second, "how long the robots write")
	fs.BoolVar(&keep, "keep", false, "keep the data directory's previous content (default: start from nothing)")
	if err := fs.Parse(args); err != nil {
		return c, d, keep, err
	}
	if fs.NArg() > 0 {
		return c, d, keep, fmt.Errorf("demo: unexpected argument %q", fs.Arg(0))
	}
	if c.opts.DataDir == "" {
		return c, d, keep, errors.New("demo: -data-dir is required (the robots and ingest need a directory)")
	}
	return c, d, keep, nil
}

// demo runs `labstack demo`: a bounded stack on a fresh data directory and
// its report; an error when an invariant fails.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, d, keep, err := parseDemo(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if !keep {
		if err := os.RemoveAll(c.opts.DataDir); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	env, iss, stop, err := startLocal(ctx, &c, stderr)
	if err != nil {
		return err
	}
	defer stop()
	c.stack.Dir = c.opts.DataDir
	robotsFor := d.Stack.RobotsFor
	d.Stack = c.stack
	d.Stack.RobotsFor = robotsFor
	if err := stack.Demo(ctx, env.Platform, iss, d, stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\nmake demo: every invariant holds.")
	return nil
}

// startLocal starts the local GCP and the token issuer of a bounded run
// (demo, reliability, load), logging to stderr: the emulators and the
// services share the logger. stop closes both.
func startLocal(ctx context.Context, c *settings, stderr io.Writer) (env *testenv.Env, iss *issuer.Issuer, stop func(), err error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	c.opts.Logger, c.stack.Logger = log, log
	if env, err = testenv.Start(ctx, c.opts); err != nil {
		return nil, nil, nil, err
	}
	if iss, err = issuer.Start(ctx, net.JoinHostPort(c.opts.Host, strconv.Itoa(max(c.issuerPort, 0))), issuer.Options{}); err != nil {
		return nil, nil, nil, errors.Join(fmt.Errorf("token issuer: %w", err), env.Close())
	}
	return env, iss, func() {
		iss.Close()
		env.Close()
	}, nil
}
