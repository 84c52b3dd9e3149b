package scheduler

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/notify"
	"github.com/labplatform/platform/orchestrate/state"
)

// A deploy changes a DAG while one of its runs is in flight: the run
// finishes with the tasks both versions share, it is not stuck.
func TestRunSurvivesADAGChange(t *testing.T) {
	store := openStore(t, "")
	rec := &recorder{}
	v1 := mustDAG(t, dag.DAG{ID: "etl"},
		&dag.Task{ID: "a", Operator: rec.op("a")},
		&dag.Task{ID: "b", Operator: rec.op("b"), Upstream: []string{"a"}},
		&dag.Task{ID: "gone", Operator: rec.op("gone"), Upstream: []string{"a"}})
	h1 := newHarness(t, store, Options{}, v1)
	r := trigger(t, h1, v1)

	v2 := mustDAG(t, dag.DAG{ID: "etl"},
		&dag.Task{ID: "a", Operator: rec.op("a")},
		&dag.Task{ID: "x", Operator: rec.op("x"), Upstream: []string{"a"}},
		&dag.Task{ID: "b", Operator: rec.op("b"), Upstream: []string{"x"}})
	h2 := newHarness(t, store, Options{}, v2)
	h2.step()
	h2.step()
	if got := h2.run(v2.ID, r.RunID).State; got != state.RunSuccess {
		t.Fatalf("run %s after the DAG changed, want success; tasks %+v", got, h2.tasks(v2.ID, r.RunID))
	}
	if got := rec.get(); !slices.Equal(got, []string{"a@00:00", "b@00:00"}) {
		t.Errorf("executions %v, want a then b (x is not part of the old run, gone is no longer defined)", got)
	}
}

// Stopping a scheduler mid-task does not count as a failure of the task:
// nothing is recorded, and the task runs again after its lease expires.
func TestShutdownAbandonsAttemptsWithoutFailingThem(t *testing.T) {
	store := openStore(t, "")
	started := make(chan struct{}, 2)
	var calls int
	op := dag.Func(func(ctx context.Context, tc *dag.TaskContext) error {
		calls++
		started <- struct{}{}
		if tc.Try == 1 {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	d := mustDAG(t, dag.DAG{ID: "long"}, &dag.Task{ID: "a", Operator: op})
	clk := newClock(t0)
	al := &alerts{}
	s1, err := New(store, []*dag.DAG{d}, Options{Owner: "one", Now: clk.Now, Grace: 10 * time.Millisecond, Notifier: al, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Trigger(t.Context(), store, d, t0, nil, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s1.Run(ctx) }()
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tis, err := store.Tasks(t.Context(), d.ID, r.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if ti := tis[0]; ti.State != state.TaskRunning || ti.Failures != 0 || ti.Error != "" {
		t.Fatalf("after shutdown: %+v, want still running (lease pending), no failure", ti)
	}
	if len(al.kinds()) != 0 {
		t.Errorf("alerts at shutdown: %v", al.kinds())
	}
	clk.Advance(time.Hour)
	h2 := newHarness(t, store, Options{Owner: "two", Now: clk.Now}, d)
	h2.step()
	if ti := h2.tasks(d.ID, r.RunID)["a"]; ti.State != state.TaskSuccess || ti.Try != 2 || ti.Failures != 0 {
		t.Errorf("after takeover: %+v, want success on try 2 with no failure", ti)
	}
}

// A backfill of old intervals is late by design: no deadline alert.
func TestBackfillRaisesNoDeadlineAlerts(t *testing.T) {
	rec := &recorder{}
	d := mustDAG(t, dag.DAG{ID: "dl", Schedule: "@hourly", Start: later, RunDeadline: time.Hour}, &dag.Task{ID: "a", Operator: rec.op("a")})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	h.clock.Advance(48 * time.Hour)
	if _, err := NewBackfill(t.Context(), h.store, d, BackfillRequest{From: t0, To: t0.Add(5 * time.Hour), MaxActiveRuns: 3}, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		h.step()
	}
	if n := len(rec.get()); n != 6 {
		t.Fatalf("%d executions, want 6", n)
	}
	if k := h.al.kinds(); len(k) != 0 {
		t.Errorf("alerts %v, want none", k)
	}
}

// A scheduled run finishing after its deadline alerts once.
func TestLateScheduledRunAlertsOnce(t *testing.T) {
	release := make(chan struct{})
	d := mustDAG(t, dag.DAG{ID: "dl", Schedule: "@hourly", Start: t0, Catchup: dag.Catchup{Mode: dag.CatchupLatest}, RunDeadline: 30 * time.Minute},
		&dag.Task{ID: "a", Operator: dag.Func(func(context.Context, *dag.TaskContext) error {
			<-release
			return nil
		})})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	h.clock.Advance(time.Hour + time.Minute)
	h.s.Pass(t.Context())
	h.clock.Advance(time.Hour)
	h.s.Pass(t.Context())
	h.s.Pass(t.Context())
	close(release)
	h.s.Drain(t.Context())
	if k := h.al.kinds(); !slices.Equal(k, []notify.Kind{notify.DeadlineMissed}) {
		t.Errorf("alerts %v, want one deadline_missed", k)
	}
}

// Pruning old runs does not make the schedule start over.
func TestPruneDoesNotRescheduleOldIntervals(t *testing.T) {
	rec := &recorder{}
	op := dag.Func(func(_ context.Context, tc *dag.TaskContext) error {
		rec.add(tc.LogicalDate.Format(time.RFC3339))
		return nil
	})
	d := mustDAG(t, dag.DAG{ID: "pr", Schedule: "@hourly", Start: t0}, &dag.Task{ID: "a", Operator: op})
	h := newHarness(t, openStore(t, ""), Options{}, d)
	for range 3 {
		h.clock.Advance(time.Hour)
		h.step()
	}
	if n := len(rec.get()); n != 3 {
		t.Fatalf("%d executions, want 3", n)
	}
	if err := h.store.SetPaused(t.Context(), d.ID, true); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(2 * 24 * time.Hour)
	h.step()
	if _, err := h.store.Prune(t.Context(), h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := h.store.SetPaused(t.Context(), d.ID, false); err != nil {
		t.Fatal(err)
	}
	h.step()
	counts := map[string]int{}
	for _, e := range rec.get() {
		counts[e]++
	}
	for e, n := range counts {
		if n > 1 {
			t.Errorf("%s ran %d times after prune", e, n)
		}
	}
	// Catchup "all" after the two-day pause: the 48 hours missed, once.
	if n := len(rec.get()); n != 3+48 {
		t.Errorf("%d executions, want 51", n)
	}
}
