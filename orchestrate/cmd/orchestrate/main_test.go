package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/dags"
	"github.com/labplatform/platform/orchestrate/scheduler"
	"github.com/labplatform/platform/orchestrate/state"
	"github.com/labplatform/platform/orchestrate/state/boltstore"
	"github.com/labplatform/platform/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// env is the local GCP: the Firestore state store and the clients of
// "tasks test" and "scheduler" talk to it.
var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }

// t0 is the fake clock's start: after the etl DAG's test intervals, before
// its Start (so a scheduler creates no scheduled run of it).
var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type sensorFunc func(ctx context.Context, tc *dag.TaskContext) (bool, string, error)

func (f sensorFunc) Poke(ctx context.Context, tc *dag.TaskContext) (bool, string, error) {
	return f(ctx, tc)
}

// testDAGs are the DAGs of the tests: etl, hourly in Europe/Berlin, whose
// tasks take fake time (the clock advances while they run) and fail or wait
// on parameters, and manual, with no schedule.
func testDAGs(clk *clock) func(dags.Deps) ([]*dag.DAG, error) {
	return func(dags.Deps) ([]*dag.DAG, error) {
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			return nil, err
		}
		work := func(d time.Duration) dag.Func {
			return func(_ context.Context, tc *dag.TaskContext) error {
				clk.Advance(d)
				if tc.Param("fail", "") == tc.TaskID {
					return fmt.Errorf("%s failed as asked", tc.TaskID)
				}
				return nil
			}
		}
		etl, err := dag.New(dag.DAG{
			ID: "etl", Description: "test pipeline", Schedule: "0 * * * *", Location: berlin,
			Start:   time.Date(2026, 4, 1, 0, 0, 0, 0, berlin),
			Catchup: dag.Catchup{Mode: dag.CatchupLatest}, MaxActiveRuns: 8,
			Params: map[string]string{"fail": "", "ready": "yes"}, Tags: []string{"test"},
		},
			&dag.Task{ID: "wait_input", Sensor: sensorFunc(func(_ context.Context, tc *dag.TaskContext) (bool, string, error) {
				clk.Advance(2 * time.Second)
				if tc.Param("ready", "") == "yes" {
					return true, "", nil
				}
				return false, "input for " + tc.LogicalDate.UTC().Format(time.RFC3339), nil
			}), PokeInterval: time.Minute, SensorTimeout: time.Hour},
			&dag.Task{ID: "extract", Operator: work(30 * time.Second), Upstream: []string{"wait_input"}, Retries: 2, Pool: "bq"},
			&dag.Task{ID: "load_a", Operator: work(time.Minute), Upstream: []string{"extract"}, Timeout: 10 * time.Minute},
			&dag.Task{ID: "load_b", Operator: work(45 * time.Second), Upstream: []string{"extract"}},
			&dag.Task{ID: "report", Operator: work(5 * time.Second), Upstream: []string{"load_a", "load_b"}, TriggerRule: dag.AllDone},
			&dag.Task{ID: "on_failure", Operator: work(time.Second), Upstream: []string{"load_a", "load_b"}, TriggerRule: dag.OneFailed},
			&dag.Task{ID: "archive", Operator: work(3 * time.Second), Upstream: []string{"load_b"}},
			&dag.Task{ID: "publish", Operator: dag.Func(func(context.Context, *dag.TaskContext) error {
				clk.Advance(time.Second)
				return fmt.Errorf("nothing new: %w", dag.ErrSkip)
			}), Upstream: []string{"report"}},
		)
		if err != nil {
			return nil, err
		}
		manual, err := dag.New(dag.DAG{ID: "manual"}, &dag.Task{ID: "hello", Operator: work(0)})
		if err != nil {
			return nil, err
		}
		return []*dag.DAG{manual, etl}, nil
	}
}

// harness runs the command in-process against one bolt file.
type harness struct {
	t    *testing.T
	clk  *clock
	dir  string
	vars map[string]string
	tty  bool
	lock time.Duration
	reg  func(dags.Deps) ([]*dag.DAG, error)
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	clk := &clock{now: t0}
	dir := t.TempDir()
	h := &harness{t: t, clk: clk, dir: dir, lock: 50 * time.Millisecond, reg: testDAGs(clk), vars: map[string]string{
		"LAB_PROJECT":            "lab-test",
		"ORCHESTRATE_STATE_FILE": filepath.Join(dir, "state", "orchestrate.db"),
	}}
	// The emulators, for the commands that build clients.
	for _, kv := range env.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasSuffix(k, "_EMULATOR_HOST") {
			h.vars[k] = v
		}
	}
	return h
}

func (h *harness) app(stdout, stderr *bytes.Buffer) *app {
	return &app{
		getenv: func(k string) string { return h.vars[k] }, stdin: strings.NewReader(""),
		stdout: stdout, stderr: stderr, now: h.clk.Now, registry: h.reg,
		lockTimeout: h.lock, tty: h.tty, refresh: 20 * time.Millisecond,
	}
}

// run runs one command line and returns its output and exit code.
func (h *harness) run(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	err := h.app(&out, &errOut).run(ctx, args)
	if err != nil {
		fmt.Fprintln(&errOut, "orchestrate:", err)
	}
	return out.String(), errOut.String(), exitCode(err)
}

// ok runs a command line that must succeed and returns its standard output.
func (h *harness) ok(args ...string) string {
	h.t.Helper()
	out, errOut, code := h.run(h.t.Context(), args...)
	if code != 0 {
		h.t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs a command line that must exit with code and returns its
// standard error.
func (h *harness) fails(code int, args ...string) string {
	h.t.Helper()
	out, errOut, got := h.run(h.t.Context(), args...)
	if got != code {
		h.t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, code, out, errOut)
	}
	return errOut
}

// stateFile is the harness's bolt file.
func (h *harness) stateFile() string { return h.vars["ORCHESTRATE_STATE_FILE"] }

// schedule runs a scheduler over the bolt file until no task runs, as a
// daemon would between CLI commands. The file is closed afterwards.
func (h *harness) schedule(workers int) {
	h.t.Helper()
	st, err := boltstore.Open(h.stateFile(), boltstore.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			h.t.Error(err)
		}
	}()
	list, err := h.reg(dags.Deps{})
	if err != nil {
		h.t.Fatal(err)
	}
	s, err := scheduler.New(st, list, scheduler.Options{Owner: "test", Workers: workers, Now: h.clk.Now, Jitter: func() float64 { return 0.5 }})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx := h.t.Context()
	// A pass dispatches what the free workers can take; Drain follows the
	// completions. Repeat until every run has finished, as the daemon's
	// polling would.
	for range 1000 {
		s.Pass(ctx)
		s.Drain(ctx)
		active, err := st.Runs(ctx, state.RunFilter{States: []state.RunState{state.RunQueued, state.RunRunning}})
		if err != nil {
			h.t.Fatal(err)
		}
		if len(active) == 0 {
			return
		}
	}
	h.t.Fatal("runs still active after 1000 scheduler passes")
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestUsageAndExitCodes(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, msg: `unknown command "frobnicate"`},
		{name: "group without subcommand", args: []string{"dags"}, code: exitUsage, msg: "dags needs a subcommand"},
		{name: "unknown subcommand", args: []string{"runs", "delete"}, code: exitUsage, msg: `unknown command "runs delete"`},
		{name: "bad flag", args: []string{"dags", "list", "--colour"}, code: exitUsage, msg: "flag provided but not defined"},
		{name: "missing argument", args: []string{"trigger"}, code: exitUsage, msg: "usage: orchestrate trigger <dag>"},
		{name: "extra argument", args: []string{"pause", "etl", "manual"}, code: exitUsage, msg: "usage: orchestrate pause <dag>"},
		{name: "unknown dag", args: []string{"dags", "show", "nope"}, code: exitUsage, msg: `unknown dag "nope" (known: etl, manual)`},
		{name: "unknown dag trigger", args: []string{"trigger", "nope"}, code: exitUsage, msg: `unknown dag "nope"`},
		{name: "unknown task", args: []string{"tasks", "test", "etl", "nope"}, code: exitUsage, msg: `dag etl has no task "nope"`},
		{name: "unknown param", args: []string{"trigger", "etl", "--param", "colour=red"}, code: exitUsage, msg: `unknown parameter "colour"`},
		{name: "bad param", args: []string{"trigger", "etl", "--param", "colour"}, code: exitUsage, msg: "want name=value"},
		{name: "bad date", args: []string{"trigger", "etl", "--date", "yesterday"}, code: exitUsage, msg: `--date "yesterday"`},
		{name: "bad store", args: []string{"--state", "sqlite", "dags", "list"}, code: exitUsage, msg: `--state "sqlite"`},
		{name: "bad run state", args: []string{"runs", "list", "--state", "done"}, code: exitUsage, msg: `--state "done"`},
		{name: "unknown run", args: []string{"runs", "show", "etl", "20260101T000000Z_20260101T010000Z"}, code: exitNotFound, msg: "not found"},
		{name: "clear unknown run", args: []string{"clear", "etl", "nope"}, code: exitNotFound, msg: "not found"},
		{name: "cancel unknown backfill", args: []string{"backfill", "cancel", "nope"}, code: exitNotFound, msg: "not found"},
		{name: "backfill of a manual dag", args: []string{"backfill", "create", "manual", "--from", "2026-03-01", "--to", "2026-03-02"}, code: exitUsage, msg: "no schedule"},
		{name: "backfill without range", args: []string{"backfill", "create", "etl", "--from", "2026-03-01"}, code: exitUsage, msg: "needs --from and --to"},
		{name: "backfill of the future", args: []string{"backfill", "create", "etl", "--from", "2027-03-01", "--to", "2027-03-02"}, code: exitUsage, msg: "no complete data interval"},
		{name: "wait on bolt", args: []string{"backfill", "create", "etl", "--from", "2026-03-01", "--to", "2026-03-01", "--wait"}, code: exitUsage, msg: "--wait needs a state store shared"},
		{name: "no project", args: []string{"--project", "", "dags", "list"}, code: exitUsage, msg: "project: not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			errOut := h.fails(tc.code, tc.args...)
			if !strings.Contains(errOut, tc.msg) {
				t.Errorf("stderr %q does not say %q", errOut, tc.msg)
			}
		})
	}
	h.t = t
	for _, args := range [][]string{{"help"}, {}, {"-h"}} {
		if out := h.ok(args...); !strings.Contains(out, "Exit codes:") || !strings.Contains(out, "5  tasks test of a sensor") {
			t.Errorf("%q: usage without the exit codes:\n%s", args, out)
		}
	}
	if out := h.ok("trigger", "-h"); !strings.Contains(out, "-param") || !strings.Contains(out, "-state-file") {
		t.Errorf("trigger -h does not list its flags:\n%s", out)
	}
}

func TestExitCodeMapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{err: nil, want: 0},
		{err: errors.New("boom"), want: exitFailure},
		{err: usageErrorf("bad"), want: exitUsage},
		{err: storeCode(fmt.Errorf("run x: %w", state.ErrNotFound)), want: exitNotFound},
		{err: storeCode(fmt.Errorf("run x: %w", state.ErrRunExists)), want: exitConflict},
		{err: storeCode(fmt.Errorf("clear: %w", state.ErrConflict)), want: exitConflict},
		{err: fmt.Errorf("outer: %w", withCode(exitWaiting, errors.New("waiting"))), want: exitWaiting},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
