// Command orchestrate operates the platform's DAG engine: it lists and shows
// the DAGs, triggers runs, creates and watches backfills, shows runs with a
// Gantt chart of their tasks, tests a task without recording anything,
// clears runs, pauses DAGs, prunes old state, and runs the scheduler daemon
// ("orchestrate scheduler"). "orchestrate help" documents the commands, the
// flags and the exit codes.
//
// The command owns only wiring and presentation: runs, backfills and tasks
// are the scheduler package's, the stored state the state package's, and
// the DAGs the dags package's. Errors carry the exit code they map to
// (exitError); main is the only place that exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/dags"
	"github.com/labplatform/platform/orchestrate/state"
)

const usage = `orchestrate runs and operates the platform's DAGs (bq_load, quality, ...).

Usage: orchestrate [common flags] <command> [arguments] [flags]

Commands:
  dags list                         every DAG: schedule and time zone, paused, tasks,
                                    next due time, latest run
  dags show <dag>                   settings, tasks by layer, and the dependency graph
  trigger <dag> [--date D] [--param k=v ...]
                                    create a manual run for the interval at D (default:
                                    the latest complete interval); a scheduler runs it
  backfill create <dag> --from D --to D [--reprocess missing|failed|all]
                  [--max-active-runs N] [--param k=v ...] [--wait]
                                    run the DAG over every interval starting in
                                    [from, to]; --to YYYY-MM-DD includes that whole day.
                                    --wait redraws the progress bar until it ends
                                    (needs --state firestore and a running scheduler)
  backfill list                     every backfill with its progress bar
  backfill cancel <id>              create no more runs; queued ones end as failed
  runs list [--dag DAG] [--state S[,S]] [--limit N]
                                    runs, newest logical date first (default limit 50);
                                    here --state takes run states (queued, running,
                                    success, failed) as well as a store kind
  runs show <dag> <run-id|latest>   a run, its tasks and a Gantt chart of their durations
  tasks test <dag> <task> [--date D] [--param k=v ...]
                                    run one task (or poke one sensor) once, now, with
                                    the real clients; nothing is read from or written
                                    to the state store
  clear <dag> <run-id> [--all]      run again the failed, upstream_failed and skipped
                                    tasks of a run (--all: every task)
  pause <dag>, unpause <dag>        stop or resume creating and running the DAG's runs
  state prune [--older-than 720h]   delete finished runs and backfills older than that
  scheduler [--workers N] [--lease 30s] [--poll 1s] [--pool name=slots ...]
            [--metrics-addr :9464] [--owner ID] [--webhook URL] [--alert-topic TOPIC]
            [--grace 30s] [--log-level info]
                                    the daemon: schedules and runs the DAGs until
                                    SIGINT or SIGTERM; serves /metrics and /healthz;
                                    JSON logs on standard error
  help                              this text

Dates (D): RFC 3339 (2026-03-01T06:00:00Z) or YYYY-MM-DD, midnight in the DAG's
time zone. Run "orchestrate <command> -h" for a command's flags.

Common flags, accepted before the command or after it, by every command:
  --state bolt|firestore   state store (env ORCHESTRATE_STATE; default bolt)
  --state-file PATH        bolt file (env ORCHESTRATE_STATE_FILE; default
                           .orchestrate/state.db; directories are created). A running
                           scheduler locks it: stop it, or share state with
                           --state firestore
  --json                   machine-readable output on standard output
  --demo                   demo mode (env ORCHESTRATE_DEMO=true): the platform's DAGs
                           on compressed schedules, an hour becomes a minute (bq_load
                           every minute, quality and lifecycle every 15 minutes);
                           give it to every command that works with a demo scheduler
  --project, --prefix, --bigquery-location, --storage-emulator, --pubsub-emulator,
  --firestore-emulator, --bigquery-emulator
                           the platform (env LAB_PROJECT, LAB_PREFIX, ...; as in
                           every platform command)
Only "tasks test" and "scheduler" use credentials: the other commands give the DAGs
clients without credentials that never connect, so with --state bolt they work
without GCP access.
Scheduler settings also read env ORCHESTRATE_METRICS_ADDR, ORCHESTRATE_OWNER,
ORCHESTRATE_WEBHOOK and ORCHESTRATE_ALERT_TOPIC.

Exit codes:
  0  ok
  1  operational error (state store unreachable or locked, task test failed,
     a waited-for backfill failed or was cancelled)
  2  usage (bad flags or arguments, unknown command, DAG, task or parameter)
  3  not found (run, backfill)
  4  conflict (a run exists for the interval, backfill not running, run busy)
  5  tasks test of a sensor whose condition is not met`

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 3
	exitConflict = 4
	exitWaiting  = 5
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "orchestrate:", err)
		os.Exit(exitCode(err))
	}
}

// run is main without the process: it builds the production app and runs
// the command line.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	a := &app{
		getenv:      getenv,
		stdin:       stdin,
		stdout:      stdout,
		stderr:      stderr,
		now:         time.Now,
		registry:    dags.Platform,
		lockTimeout: time.Second,
		tty:         isTerminal(stdout),
		refresh:     time.Second,
	}
	if !a.tty {
		a.refresh = 5 * time.Second
	}
	return a.run(ctx, args)
}

// app is the command's environment; tests build their own.
type app struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
	now            func() time.Time
	// registry builds the DAG set from its dependencies (dags.Platform).
	// Commands that run no task pass Deps with nil clients.
	registry func(dags.Deps) ([]*dag.DAG, error)
	// lifecycle, when set, replaces the lifecycle module's runner in the
	// registry's dependencies (dags.Deps.Lifecycle).
	lifecycle dags.Lifecycle
	// lockTimeout bounds the wait for the bolt file's lock.
	lockTimeout time.Duration
	// tty says stdout is a terminal: backfill --wait redraws one line.
	tty bool
	// refresh is the redraw period of backfill --wait.
	refresh time.Duration
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// exitError is an error with the exit code it maps to.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode gives err an exit code (nil stays nil).
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// exitCode maps an error returned by run to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	return exitFailure
}

// storeCode gives a store error the exit code of its condition: not found
// (3), conflict (4); others stay operational errors (1).
func storeCode(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, state.ErrNotFound):
		return withCode(exitNotFound, err)
	case errors.Is(err, state.ErrRunExists), errors.Is(err, state.ErrConflict), errors.Is(err, state.ErrExists):
		return withCode(exitConflict, err)
	}
	return err
}

// errHelp is returned by parse after printing a command's flags for -h.
var errHelp = errors.New("help requested")

// commands maps each command's words to its implementation.
func commands() map[string]func(a *app, ctx context.Context, args []string) error {
	return map[string]func(a *app, ctx context.Context, args []string) error{
		"dags list":       (*app).dagsList,
		"dags show":       (*app).dagsShow,
		"trigger":         (*app).trigger,
		"backfill create": (*app).backfillCreate,
		"backfill list":   (*app).backfillList,
		"backfill cancel": (*app).backfillCancel,
		"runs list":       (*app).runsList,
		"runs show":       (*app).runsShow,
		"tasks test":      (*app).tasksTest,
		"clear":           (*app).clear,
		"pause":           func(a *app, ctx context.Context, args []string) error { return a.setPaused(ctx, args, true) },
		"unpause":         func(a *app, ctx context.Context, args []string) error { return a.setPaused(ctx, args, false) },
		"state prune":     (*app).prune,
		"scheduler":       (*app).scheduler,
	}
}

// groups are the first words of two-word commands.
var groups = map[string]bool{"dags": true, "backfill": true, "runs": true, "tasks": true, "state": true}

func (a *app) run(ctx context.Context, args []string) error {
	// Common flags before the command are parsed by the command's own flag
	// set: they are moved after the command words.
	lead, rest, err := a.leadingFlags(args)
	if errors.Is(err, errHelp) {
		fmt.Fprintln(a.stdout, usage)
		return nil
	}
	if err != nil {
		return err
	}
	if len(rest) == 0 || rest[0] == "help" || rest[0] == "-h" || rest[0] == "--help" {
		fmt.Fprintln(a.stdout, usage)
		return nil
	}
	name, n := rest[0], 1
	if groups[name] {
		if len(rest) < 2 || strings.HasPrefix(rest[1], "-") {
			return usageErrorf("%s needs a subcommand; see orchestrate help", name)
		}
		name, n = name+" "+rest[1], 2
	}
	cmd, ok := commands()[name]
	if !ok {
		return usageErrorf("unknown command %q; see orchestrate help", name)
	}
	err = cmd(a, ctx, append(lead, rest[n:]...))
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}
