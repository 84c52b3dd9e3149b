package scheduler

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/notify"
	"github.com/labplatform/platform/orchestrate/state"
	"github.com/labplatform/platform/orchestrate/state/boltstore"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// later is a DAG start after every test's clock: the schedule itself creates
// no run, only triggers and backfills do.
var later = t0.AddDate(1, 0, 0)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

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

type alerts struct {
	mu  sync.Mutex
	got []notify.Alert
}

func (a *alerts) Notify(_ context.Context, al notify.Alert) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, al)
	return nil
}

func (a *alerts) kinds() []notify.Kind {
	a.mu.Lock()
	defer a.mu.Unlock()
	var k []notify.Kind
	for _, al := range a.got {
		k = append(k, al.Kind)
	}
	return k
}

// recorder is an operator log shared by a test's tasks.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, s)
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

func (r *recorder) op(id string) dag.Operator {
	return dag.Func(func(_ context.Context, tc *dag.TaskContext) error {
		r.add(id + "@" + tc.LogicalDate.Format("15:04"))
		return nil
	})
}

func openStore(t *testing.T, path string) state.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "state.db")
	}
	s, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

type harness struct {
	t     *testing.T
	store state.Store
	clock *clock
	al    *alerts
	s     *Scheduler
}

func newHarness(t *testing.T, store state.Store, opts Options, dags ...*dag.DAG) *harness {
	t.Helper()
	h := &harness{t: t, store: store, clock: newClock(t0), al: &alerts{}}
	if opts.Now == nil {
		opts.Now = h.clock.Now
	}
	if opts.Jitter == nil {
		opts.Jitter = func() float64 { return 0.5 }
	}
	opts.Notifier = h.al
	s, err := New(store, dags, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.s = s
	return h
}

// step makes passes until nothing is in flight and nothing changes.
func (h *harness) step() {
	h.t.Helper()
	ctx := h.t.Context()
	h.s.Pass(ctx)
	h.s.Drain(ctx)
}

func (h *harness) tasks(dagID, runID string) map[string]state.TaskInstance {
	h.t.Helper()
	tis, err := h.store.Tasks(h.t.Context(), dagID, runID)
	if err != nil {
		h.t.Fatal(err)
	}
	m := map[string]state.TaskInstance{}
	for _, ti := range tis {
		m[ti.TaskID] = ti
	}
	return m
}

func (h *harness) run(dagID, runID string) state.Run {
	h.t.Helper()
	r, err := h.store.Run(h.t.Context(), dagID, runID)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func mustDAG(t *testing.T, spec dag.DAG, tasks ...*dag.Task) *dag.DAG {
	t.Helper()
	d, err := dag.New(spec, tasks...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func trigger(t *testing.T, h *harness, d *dag.DAG) state.Run {
	t.Helper()
	r, err := Trigger(t.Context(), h.store, d, t0, nil, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestChainRunsInDependencyOrder(t *testing.T) {
	rec := &recorder{}
	d := mustDAG(t, dag.DAG{ID: "chain", Schedule: "@hourly", Start: later},
		&dag.Task{ID: "c", Operator: rec.op("c"), Upstream: []string{"b"}},
		&dag.Task{ID: "a", Operator: rec.op("a")},
		&dag.Task{ID: "b", Operator: rec.op("b"), Upstream: []string{"a"}})
	reg := prometheus.NewPedanticRegistry()
	h := newHarness(t, openStore(t, ""), Options{Registerer: reg}, d)
	r := trigger(t, h, d)
	h.step()
	if n := testutil.ToFloat64(h.s.m.tasks.WithLabelValues("chain", "success")); n != 3 {
		t.Errorf("orchestrate_tasks_total{state=success} = %v, want 3", n)
	}
	if n := testutil.ToFloat64(h.s.m.runs.WithLabelValues("chain", "success")); n != 1 {
		t.Errorf("orchestrate_runs_total{state=success} = %v, want 1", n)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("metrics do not gather: %v", err)
	}
	if got := rec.get(); !slices.Equal(got, []string{"a@00:00", "b@00:00", "c@00:00"}) {
		t.Errorf("executions %v", got)
	}
	if got := h.run(d.ID, r.RunID); got.State != state.RunSuccess || got.EndedAt.IsZero() {
		t.Errorf("run %+v, want success", got)
	}
	for id, ti := range h.tasks(d.ID, r.RunID) {
		if ti.State != state.TaskSuccess || ti.Try != 1 || ti.ReadyAt.IsZero() || ti.StartedAt.Before(ti.ReadyAt) {
			t.Errorf("task %s: %+v", id, ti)
		}
	}
}

func TestTriggerRefusesASecondRunForTheSameInterval(t *testing.T) {
	rec := &recorder{}
	d := mustDAG(t, dag.DAG{ID: "once", Schedule: "@hourly", Start: t0}, &dag.Task{ID: "a", Operator: rec.op("a")})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	h.clock.Advance(time.Hour + time.Minute)
	h.step() // scheduled run for [00:00, 01:00)
	_, err := Trigger(t.Context(), h.store, d, t0.Add(10*time.Minute), nil, h.clock.Now())
	if !errors.Is(err, state.ErrRunExists) {
		t.Fatalf("manual trigger of a scheduled interval: %v, want ErrRunExists", err)
	}
	runs, err := h.store.Runs(t.Context(), state.RunFilter{DAGID: d.ID})
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs %v %v, want exactly one", runs, err)
	}
	if _, err := Trigger(t.Context(), h.store, d, t0, map[string]string{"nope": "1"}, h.clock.Now()); !errors.Is(err, ErrUnknownParam) {
		t.Errorf("unknown param: %v", err)
	}
}

func TestRetriesBackOffThenSucceed(t *testing.T) {
	var calls atomic.Int32
	flaky := dag.Func(func(context.Context, *dag.TaskContext) error {
		if calls.Add(1) <= 2 {
			return errors.New("warehouse busy")
		}
		return nil
	})
	d := mustDAG(t, dag.DAG{ID: "retry"}, &dag.Task{ID: "a", Operator: flaky, Retries: 3, RetryDelay: time.Minute, MaxRetryDelay: 90 * time.Second})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	r := trigger(t, h, d)
	h.step()
	ti := h.tasks(d.ID, r.RunID)["a"]
	if ti.State != state.TaskUpForRetry || ti.Failures != 1 || !ti.NextTryAt.Equal(h.clock.Now().Add(time.Minute)) || ti.Error != "warehouse busy" {
		t.Fatalf("after one failure: %+v", ti)
	}
	h.clock.Advance(59 * time.Second)
	h.step()
	if calls.Load() != 1 {
		t.Fatalf("retried before its delay: %d calls", calls.Load())
	}
	h.clock.Advance(time.Second)
	h.step()
	ti = h.tasks(d.ID, r.RunID)["a"]
	// Second delay doubles to 2m but is capped at 90s.
	if ti.State != state.TaskUpForRetry || ti.Failures != 2 || !ti.NextTryAt.Equal(h.clock.Now().Add(90*time.Second)) {
		t.Fatalf("after two failures: %+v", ti)
	}
	h.clock.Advance(90 * time.Second)
	h.step()
	ti = h.tasks(d.ID, r.RunID)["a"]
	if ti.State != state.TaskSuccess || ti.Try != 3 || calls.Load() != 3 {
		t.Fatalf("after the third try: %+v (calls %d)", ti, calls.Load())
	}
	if len(h.al.kinds()) != 0 {
		t.Errorf("alerts for a task that succeeded: %v", h.al.kinds())
	}
}

func TestBackoffJitter(t *testing.T) {
	tk := &dag.Task{RetryDelay: 10 * time.Second, MaxRetryDelay: time.Hour}
	for n, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 5: 160 * time.Second} {
		if got := backoff(tk, n, 0.5); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
		if lo, hi := backoff(tk, n, 0), backoff(tk, n, 0.999999); lo != want*8/10 || hi > want*12/10 || hi < want*11/10 {
			t.Errorf("backoff(%d) jitter range %s..%s around %s", n, lo, hi, want)
		}
	}
}

func TestRetriesExhaustedFailsAndAlerts(t *testing.T) {
	rec := &recorder{}
	bad := dag.Func(func(context.Context, *dag.TaskContext) error { return errors.New("boom") })
	d := mustDAG(t, dag.DAG{ID: "fail"},
		&dag.Task{ID: "a", Operator: bad, Retries: 1, RetryDelay: time.Second},
		&dag.Task{ID: "b", Operator: rec.op("b"), Upstream: []string{"a"}},
		&dag.Task{ID: "on_failure", Operator: rec.op("on_failure"), Upstream: []string{"a"}, TriggerRule: dag.OneFailed},
		&dag.Task{ID: "cleanup", Operator: rec.op("cleanup"), Upstream: []string{"b"}, TriggerRule: dag.AllDone})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	r := trigger(t, h, d)
	h.step()
	h.clock.Advance(2 * time.Second)
	h.step()
	tis := h.tasks(d.ID, r.RunID)
	want := map[string]state.TaskState{"a": state.TaskFailed, "b": state.TaskUpstreamFailed, "on_failure": state.TaskSuccess, "cleanup": state.TaskSuccess}
	for id, st := range want {
		if tis[id].State != st {
			t.Errorf("task %s: %s, want %s", id, tis[id].State, st)
		}
	}
	if got := h.run(d.ID, r.RunID).State; got != state.RunFailed {
		t.Errorf("run %s, want failed", got)
	}
	if k := h.al.kinds(); !slices.Equal(k, []notify.Kind{notify.RetriesExhausted, notify.RunFailed}) {
		t.Errorf("alerts %v", k)
	}
}

func TestSkipPropagatesAndNoneFailedRuns(t *testing.T) {
	rec := &recorder{}
	skip := dag.Func(func(context.Context, *dag.TaskContext) error { return fmt.Errorf("no data today: %w", dag.ErrSkip) })
	d := mustDAG(t, dag.DAG{ID: "skips"},
		&dag.Task{ID: "a", Operator: skip},
		&dag.Task{ID: "b", Operator: rec.op("b"), Upstream: []string{"a"}},
		&dag.Task{ID: "c", Operator: rec.op("c")},
		&dag.Task{ID: "d", Operator: rec.op("d"), Upstream: []string{"a", "c"}, TriggerRule: dag.NoneFailed},
		&dag.Task{ID: "e", Operator: rec.op("e"), Upstream: []string{"a", "c"}, TriggerRule: dag.OneSuccess})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	r := trigger(t, h, d)
	h.step()
	tis := h.tasks(d.ID, r.RunID)
	want := map[string]state.TaskState{"a": state.TaskSkipped, "b": state.TaskSkipped, "c": state.TaskSuccess, "d": state.TaskSuccess, "e": state.TaskSuccess}
	for id, st := range want {
		if tis[id].State != st {
			t.Errorf("task %s: %s, want %s", id, tis[id].State, st)
		}
	}
	if got := h.run(d.ID, r.RunID).State; got != state.RunSuccess {
		t.Errorf("run %s, want success", got)
	}
}

func TestTimeoutCancelsTheTask(t *testing.T) {
	blocked := dag.Func(func(ctx context.Context, _ *dag.TaskContext) error {
		<-ctx.Done()
		return ctx.Err()
	})
	d := mustDAG(t, dag.DAG{ID: "slow"}, &dag.Task{ID: "a", Operator: blocked, Timeout: 50 * time.Millisecond})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	r := trigger(t, h, d)
	h.step()
	ti := h.tasks(d.ID, r.RunID)["a"]
	if ti.State != state.TaskFailed || !strings.Contains(ti.Error, "timed out after 50ms") {
		t.Errorf("task %+v, want failed with a timeout", ti)
	}
}

func TestPanicFailsTheTaskNotTheScheduler(t *testing.T) {
	d := mustDAG(t, dag.DAG{ID: "panics"}, &dag.Task{ID: "a", Operator: dag.Func(func(context.Context, *dag.TaskContext) error {
		panic("operator bug")
	})})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	r := trigger(t, h, d)
	h.step()
	if ti := h.tasks(d.ID, r.RunID)["a"]; ti.State != state.TaskFailed || !strings.Contains(ti.Error, "panicked") {
		t.Errorf("task %+v", ti)
	}
}

type pokes struct {
	n    atomic.Int32
	okAt int32
}

func (p *pokes) Poke(context.Context, *dag.TaskContext) (bool, string, error) {
	n := p.n.Add(1)
	return p.okAt > 0 && n >= p.okAt, "robot=R001 file 3 of 4", nil
}

func TestSensorReschedulesWithoutHoldingASlot(t *testing.T) {
	rec := &recorder{}
	sensor := &pokes{okAt: 3}
	d := mustDAG(t, dag.DAG{ID: "sense"},
		&dag.Task{ID: "wait", Sensor: sensor, PokeInterval: time.Minute, SensorTimeout: time.Hour},
		&dag.Task{ID: "other", Operator: rec.op("other")},
		&dag.Task{ID: "after", Operator: rec.op("after"), Upstream: []string{"wait"}})
	h := newHarness(t, openStore(t, ""), Options{Workers: 1}, d)
	r := trigger(t, h, d)
	h.step()
	h.step()
	tis := h.tasks(d.ID, r.RunID)
	if tis["wait"].State != state.TaskUpForReschedule || tis["wait"].Waiting != "robot=R001 file 3 of 4" {
		t.Fatalf("sensor %+v", tis["wait"])
	}
	// With one worker slot, "other" ran while the sensor waited.
	if tis["other"].State != state.TaskSuccess {
		t.Fatalf("other task did not run while the sensor waited: %+v", tis["other"])
	}
	for range 2 {
		h.clock.Advance(time.Minute)
		h.step()
	}
	tis = h.tasks(d.ID, r.RunID)
	if tis["wait"].State != state.TaskSuccess || tis["after"].State != state.TaskSuccess || sensor.n.Load() != 3 {
		t.Fatalf("sensor %+v after %+v pokes %d", tis["wait"], tis["after"], sensor.n.Load())
	}
}

func TestSensorTimeoutFailsWithWhatItWaitedFor(t *testing.T) {
	d := mustDAG(t, dag.DAG{ID: "sense"}, &dag.Task{ID: "wait", Sensor: &pokes{}, PokeInterval: 10 * time.Minute, SensorTimeout: 30 * time.Minute})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	r := trigger(t, h, d)
	for range 4 {
		h.step()
		h.clock.Advance(10 * time.Minute)
	}
	ti := h.tasks(d.ID, r.RunID)["wait"]
	if ti.State != state.TaskFailed || !strings.Contains(ti.Error, "robot=R001 file 3 of 4") {
		t.Fatalf("sensor %+v", ti)
	}
	h.al.mu.Lock()
	defer h.al.mu.Unlock()
	if len(h.al.got) == 0 || h.al.got[0].Kind != notify.SensorTimeout || !strings.Contains(h.al.got[0].Message, "file 3 of 4") {
		t.Errorf("alerts %+v", h.al.got)
	}
}

func TestExpectedDurationRaisesOneDeadlineAlert(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	d := mustDAG(t, dag.DAG{ID: "late"}, &dag.Task{ID: "a", ExpectedDuration: time.Minute, Operator: dag.Func(func(context.Context, *dag.TaskContext) error {
		close(started)
		<-release
		return nil
	})})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	trigger(t, h, d)
	h.s.Pass(t.Context())
	<-started
	h.clock.Advance(2 * time.Minute)
	h.s.Pass(t.Context())
	h.s.Pass(t.Context())
	close(release)
	h.s.Drain(t.Context())
	if k := h.al.kinds(); !slices.Equal(k, []notify.Kind{notify.DeadlineMissed}) {
		t.Errorf("alerts %v, want one deadline_missed", k)
	}
}

func TestLeaseTakeoverFencesTheStaleAttempt(t *testing.T) {
	store := openStore(t, "")
	var tries sync.Map
	firstStarted := make(chan struct{})
	op := dag.Func(func(ctx context.Context, tc *dag.TaskContext) error {
		tries.Store(tc.Try, "started")
		if tc.Try == 1 {
			close(firstStarted)
			<-ctx.Done() // the stale attempt only stops when fenced
			tries.Store(tc.Try, "cancelled")
			return ctx.Err()
		}
		tries.Store(tc.Try, "done")
		return nil
	})
	d := mustDAG(t, dag.DAG{ID: "fence"}, &dag.Task{ID: "a", Operator: op})
	clk := newClock(t0)
	// a renews every 300ms (real time); the test moves store time past its
	// lease before that, as if a had stalled.
	a := newHarness(t, store, Options{Owner: "a", Lease: 900 * time.Millisecond, Now: clk.Now}, d)
	b := newHarness(t, store, Options{Owner: "b", Lease: 150 * time.Millisecond, Now: clk.Now}, d)
	r := trigger(t, a, d)
	a.s.Pass(t.Context())
	<-firstStarted
	clk.Advance(time.Hour) // a's lease is long expired in store time
	b.step()               // b takes over and finishes try 2
	a.s.Drain(t.Context()) // a's renewal is fenced, its attempt cancelled
	ti := a.tasks(d.ID, r.RunID)["a"]
	if ti.State != state.TaskSuccess || ti.Try != 2 || ti.Owner != "b" {
		t.Fatalf("task %+v, want success by b on try 2", ti)
	}
	if v, _ := tries.Load(1); v != "cancelled" {
		t.Errorf("stale attempt state %v, want cancelled", v)
	}
	if got := a.run(d.ID, r.RunID).State; got != state.RunSuccess {
		t.Errorf("run %s", got)
	}
}

func TestMaxActiveRunsAndPools(t *testing.T) {
	var running, peak, poolRunning, poolPeak atomic.Int32
	track := func(cur, pk *atomic.Int32) {
		n := cur.Add(1)
		for {
			p := pk.Load()
			if n <= p || pk.CompareAndSwap(p, n) {
				break
			}
		}
	}
	op := dag.Func(func(context.Context, *dag.TaskContext) error {
		track(&running, &peak)
		time.Sleep(5 * time.Millisecond)
		running.Add(-1)
		return nil
	})
	pooled := dag.Func(func(context.Context, *dag.TaskContext) error {
		track(&poolRunning, &poolPeak)
		time.Sleep(5 * time.Millisecond)
		poolRunning.Add(-1)
		return nil
	})
	capped := mustDAG(t, dag.DAG{ID: "capped", Schedule: "@hourly", Start: later, MaxActiveRuns: 1}, &dag.Task{ID: "a", Operator: op})
	p1 := mustDAG(t, dag.DAG{ID: "p1", Schedule: "@hourly", Start: later}, &dag.Task{ID: "x", Operator: pooled, Pool: "bq"}, &dag.Task{ID: "y", Operator: pooled, Pool: "bq"})
	p2 := mustDAG(t, dag.DAG{ID: "p2", Schedule: "@hourly", Start: later}, &dag.Task{ID: "x", Operator: pooled, Pool: "bq"})
	h := newHarness(t, openStore(t, ""), Options{Pools: map[string]int{"bq": 1}}, capped, p1, p2)
	h.clock.Advance(6 * time.Hour)
	for _, d := range []*dag.DAG{capped, p1, p2} {
		if _, err := NewBackfill(t.Context(), h.store, d, BackfillRequest{From: t0, To: t0.Add(3 * time.Hour), MaxActiveRuns: 4}, h.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		h.step()
	}
	runs, err := h.store.Runs(t.Context(), state.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 12 {
		t.Fatalf("%d runs, want 12", len(runs))
	}
	for _, r := range runs {
		if r.State != state.RunSuccess {
			t.Errorf("run %s %s: %s", r.DAGID, r.RunID, r.State)
		}
	}
	if peak.Load() != 1 {
		t.Errorf("capped DAG ran %d runs at once, max active runs is 1", peak.Load())
	}
	if poolPeak.Load() != 1 {
		t.Errorf("pool bq (1 slot) ran %d tasks at once", poolPeak.Load())
	}
}

func TestCatchupPolicies(t *testing.T) {
	for _, tt := range []struct {
		name  string
		c     dag.Catchup
		first string
		n     int
	}{
		{name: "all", c: dag.Catchup{Mode: dag.CatchupAll}, first: "20260301T000000Z_20260301T010000Z", n: 6},
		{name: "latest", c: dag.Catchup{Mode: dag.CatchupLatest}, first: "20260301T050000Z_20260301T060000Z", n: 1},
		{name: "max_lateness", c: dag.Catchup{Mode: dag.CatchupLateness, MaxLateness: 150 * time.Minute}, first: "20260301T030000Z_20260301T040000Z", n: 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			d := mustDAG(t, dag.DAG{ID: "hourly", Schedule: "0 * * * *", Start: t0, Catchup: tt.c}, &dag.Task{ID: "a", Operator: rec.op("a")})
			h := newHarness(t, openStore(t, ""), Options{}, d)
			h.clock.Advance(6*time.Hour + 30*time.Minute) // down since 00:00
			h.step()
			runs, err := h.store.Runs(t.Context(), state.RunFilter{DAGID: d.ID})
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != tt.n || runs[len(runs)-1].RunID != tt.first {
				var ids []string
				for _, r := range runs {
					ids = append(ids, r.RunID)
				}
				t.Fatalf("runs %v, want %d starting %s", ids, tt.n, tt.first)
			}
			// The next pass in the same hour creates nothing more; the next
			// hour creates exactly one run.
			h.step()
			h.clock.Advance(time.Hour)
			h.step()
			runs, _ = h.store.Runs(t.Context(), state.RunFilter{DAGID: d.ID})
			if len(runs) != tt.n+1 || len(rec.get()) != tt.n+1 {
				t.Errorf("%d runs and %d executions after one more hour, want %d", len(runs), len(rec.get()), tt.n+1)
			}
		})
	}
}

func TestPausedDAGSchedulesNothing(t *testing.T) {
	rec := &recorder{}
	d := mustDAG(t, dag.DAG{ID: "p", Schedule: "@hourly", Start: t0}, &dag.Task{ID: "a", Operator: rec.op("a")})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	if err := h.store.SetPaused(t.Context(), d.ID, true); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(3 * time.Hour)
	h.step()
	if runs, _ := h.store.Runs(t.Context(), state.RunFilter{}); len(runs) != 0 {
		t.Fatalf("paused DAG got %d runs", len(runs))
	}
	if err := h.store.SetPaused(t.Context(), d.ID, false); err != nil {
		t.Fatal(err)
	}
	h.step()
	if got := len(rec.get()); got != 3 {
		t.Errorf("%d executions after unpause, want 3", got)
	}
}

func TestBackfillPoliciesAndResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	counts := map[string]int{}
	var mu sync.Mutex
	failAt := map[string]bool{"02:00": true}
	op := dag.Func(func(_ context.Context, tc *dag.TaskContext) error {
		mu.Lock()
		defer mu.Unlock()
		k := tc.LogicalDate.Format("15:04")
		counts[k]++
		if failAt[k] {
			return errors.New("bad hour")
		}
		return nil
	})
	d := mustDAG(t, dag.DAG{ID: "bf", Schedule: "@hourly", Start: later}, &dag.Task{ID: "a", Operator: op})

	store := openStore(t, path)
	h := newHarness(t, store, Options{}, d)
	h.clock.Advance(24 * time.Hour)
	b, err := NewBackfill(t.Context(), store, d, BackfillRequest{From: t0, To: t0.Add(9 * time.Hour), MaxActiveRuns: 2}, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if b.Total != 10 {
		t.Fatalf("backfill total %d, want 10", b.Total)
	}
	h.step() // two runs at most, then stop as if the process died
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store2, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store2.Close() })
	h2 := newHarness(t, store2, Options{}, d)
	h2.clock.Advance(24 * time.Hour)
	for range 10 {
		h2.step()
	}
	got, err := store2.Backfill(t.Context(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != state.BackfillDone {
		t.Fatalf("backfill %+v, want done", got)
	}
	for hr := range 10 {
		if k := fmt.Sprintf("%02d:00", hr); counts[k] != 1 {
			t.Errorf("hour %s ran %d times, want 1", k, counts[k])
		}
	}
	// Reprocess "missing" touches nothing; "failed" re-runs 02:00 only; "all" re-runs everything.
	for _, tt := range []struct {
		policy state.Reprocess
		runs   int
	}{{state.ReprocessMissing, 0}, {state.ReprocessFailed, 1}, {state.ReprocessAll, 10}} {
		mu.Lock()
		clear(counts)
		mu.Unlock()
		h2.clock.Advance(time.Second)
		b, err := NewBackfill(t.Context(), store2, d, BackfillRequest{From: t0, To: t0.Add(9 * time.Hour), Reprocess: tt.policy, MaxActiveRuns: 3}, h2.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			h2.step()
		}
		total := 0
		for _, n := range counts {
			total += n
		}
		if total != tt.runs || (tt.policy == state.ReprocessFailed && counts["02:00"] != 1) {
			t.Errorf("reprocess %s: executions %v, want %d", tt.policy, counts, tt.runs)
		}
		got, _ := store2.Backfill(t.Context(), b.ID)
		if got.State != state.BackfillDone || got.Skipped != 10-tt.runs {
			t.Errorf("reprocess %s: backfill %+v", tt.policy, got)
		}
	}
}

func TestCancelBackfillStopsNewRuns(t *testing.T) {
	rec := &recorder{}
	d := mustDAG(t, dag.DAG{ID: "bf", Schedule: "@hourly", Start: later}, &dag.Task{ID: "a", Operator: rec.op("a")})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	h.clock.Advance(24 * time.Hour)
	b, err := NewBackfill(t.Context(), h.store, d, BackfillRequest{From: t0, To: t0.Add(9 * time.Hour), MaxActiveRuns: 2}, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CancelBackfill(t.Context(), h.store, b.ID, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	h.step()
	h.step()
	if n := len(rec.get()); n != 0 {
		t.Errorf("%d executions after cancel", n)
	}
	if _, err := CancelBackfill(t.Context(), h.store, b.ID, h.clock.Now()); !errors.Is(err, state.ErrConflict) {
		t.Errorf("second cancel: %v", err)
	}
}

func TestClearReRunsFailedTasks(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	rec := &recorder{}
	d := mustDAG(t, dag.DAG{ID: "clr"},
		&dag.Task{ID: "a", Operator: rec.op("a")},
		&dag.Task{ID: "b", Upstream: []string{"a"}, Operator: dag.Func(func(context.Context, *dag.TaskContext) error {
			if fail.Load() {
				return errors.New("transient")
			}
			return nil
		})})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	r := trigger(t, h, d)
	h.step()
	if h.run(d.ID, r.RunID).State != state.RunFailed {
		t.Fatal("run did not fail")
	}
	fail.Store(false)
	if err := Clear(t.Context(), h.store, d.ID, r.RunID, false, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	h.step()
	if h.run(d.ID, r.RunID).State != state.RunSuccess || len(rec.get()) != 1 {
		t.Errorf("after clear: run %s, a ran %d times (want 1)", h.run(d.ID, r.RunID).State, len(rec.get()))
	}
}

func TestTestTaskWritesNoState(t *testing.T) {
	var got *dag.TaskContext
	d := mustDAG(t, dag.DAG{ID: "tt", Schedule: "@daily"}, &dag.Task{ID: "a", Operator: dag.Func(func(_ context.Context, tc *dag.TaskContext) error {
		got = tc
		return nil
	})})
	done, _, err := TestTask(t.Context(), d, "a", t0.Add(5*time.Hour), nil, newClock(t0.Add(48*time.Hour)).Now, nil)
	if err != nil || !done {
		t.Fatal(done, err)
	}
	if !got.DryRun || !got.Interval.Start.Equal(t0) || !got.Interval.End.Equal(t0.Add(24*time.Hour)) {
		t.Errorf("task context %+v", got)
	}
	if _, _, err := TestTask(t.Context(), d, "nope", t0, nil, time.Now, nil); err == nil {
		t.Error("unknown task accepted")
	}
}
