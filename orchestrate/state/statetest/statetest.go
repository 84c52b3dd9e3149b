// Package statetest owns the conformance suite for state.Store: every
// implementation (boltstore, firestorestore) runs Run from its own tests and
// must pass it unchanged. The suite checks the contracts documented in
// package state, including the invariants that must hold under concurrent
// callers (one run per data interval, one winner per claim, pool slots and
// the per-DAG cap on active runs).
//
// What the suite requires beyond the interface comments:
//   - Times round-trip to the microsecond (compared with time.Equal, so the
//     location may change); a store may drop nanoseconds.
//   - Pools are global: the same pool name shared by tasks of different runs
//     and DAGs shares its slots.
//   - Unknown runs, task instances and backfills are ErrNotFound, including
//     Tasks of an unknown run and ClaimTask of an unknown task instance.
//   - Try never goes backwards, not even after ResetRun: it is the fencing
//     token.
//   - FirstPokeAt is set by the first claim and kept by later claims.
//
// The suite uses fixed times only (from 2026-03-01T00:00:00Z), never the wall
// clock.
package statetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/labplatform/platform/orchestrate/state"
)

// t0 is the suite's epoch.
var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// Run runs the conformance suite. open must return a fresh, empty store for
// the given (sub)test and close it through t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) state.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s state.Store)
	}{
		{name: "CreateRun", fn: testCreateRun},
		{name: "CreateRunConcurrent", fn: testCreateRunConcurrent},
		{name: "NotFound", fn: testNotFound},
		{name: "RunsAndLatestRun", fn: testRunsAndLatestRun},
		{name: "StartRunMaxActive", fn: testStartRunMaxActive},
		{name: "StartRunConcurrent", fn: testStartRunConcurrent},
		{name: "EndRunFrom", fn: testEndRunFrom},
		{name: "SetTaskStates", fn: testSetTaskStates},
		{name: "ClaimTask", fn: testClaimTask},
		{name: "ClaimTaskConcurrent", fn: testClaimTaskConcurrent},
		{name: "RetryAndReschedule", fn: testRetryAndReschedule},
		{name: "Fencing", fn: testFencing},
		{name: "FinishAfterLeaseWithoutTakeover", fn: testFinishAfterLeaseWithoutTakeover},
		{name: "Pools", fn: testPools},
		{name: "PoolFreedByRescheduleAndRetry", fn: testPoolFreedByRescheduleAndRetry},
		{name: "PoolConcurrent", fn: testPoolConcurrent},
		{name: "DeadlineAlerts", fn: testDeadlineAlerts},
		{name: "ResetRun", fn: testResetRun},
		{name: "ResetRunConflict", fn: testResetRunConflict},
		{name: "ResetRunReleasesActiveSlot", fn: testResetRunReleasesActiveSlot},
		{name: "Backfills", fn: testBackfills},
		{name: "DAGPaused", fn: testDAGPaused},
		{name: "Prune", fn: testPrune},
		{name: "TimesRoundTrip", fn: testTimesRoundTrip},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// newRun returns a scheduled run of dag for the hour starting at t0+hour.
func newRun(dagID string, hour int, kind state.RunKind) state.Run {
	start := t0.Add(time.Duration(hour) * time.Hour)
	end := start.Add(time.Hour)
	return state.Run{
		DAGID:         dagID,
		RunID:         state.RunID(start, end),
		Kind:          kind,
		LogicalDate:   start,
		IntervalStart: start,
		IntervalEnd:   end,
		DueAt:         end,
		CreatedAt:     t0,
	}
}

func create(t *testing.T, s state.Store, r state.Run, taskIDs ...string) state.Run {
	t.Helper()
	if err := s.CreateRun(t.Context(), r, taskIDs); err != nil {
		t.Fatalf("CreateRun %s/%s: %v", r.DAGID, r.RunID, err)
	}
	return r
}

func getRun(t *testing.T, s state.Store, dagID, runID string) state.Run {
	t.Helper()
	r, err := s.Run(t.Context(), dagID, runID)
	if err != nil {
		t.Fatalf("Run %s/%s: %v", dagID, runID, err)
	}
	return r
}

// tasks returns a run's task instances by task ID.
func tasks(t *testing.T, s state.Store, dagID, runID string) map[string]state.TaskInstance {
	t.Helper()
	tis, err := s.Tasks(t.Context(), dagID, runID)
	if err != nil {
		t.Fatalf("Tasks %s/%s: %v", dagID, runID, err)
	}
	m := make(map[string]state.TaskInstance, len(tis))
	for _, ti := range tis {
		if ti.DAGID != dagID || ti.RunID != runID {
			t.Fatalf("Tasks %s/%s returned %+v", dagID, runID, ti.TaskKey)
		}
		if _, dup := m[ti.TaskID]; dup {
			t.Fatalf("Tasks %s/%s returned %s twice", dagID, runID, ti.TaskID)
		}
		m[ti.TaskID] = ti
	}
	return m
}

func task(t *testing.T, s state.Store, k state.TaskKey) state.TaskInstance {
	t.Helper()
	ti, ok := tasks(t, s, k.DAGID, k.RunID)[k.TaskID]
	if !ok {
		t.Fatalf("task %v not found", k)
	}
	return ti
}

// queuedRun creates a started run of dag at hour whose tasks are all queued
// at t0, and returns the task keys in order.
func queuedRun(t *testing.T, s state.Store, dagID string, hour int, taskIDs ...string) []state.TaskKey {
	t.Helper()
	r := create(t, s, newRun(dagID, hour, state.KindScheduled), taskIDs...)
	if err := s.StartRun(t.Context(), dagID, r.RunID, 1000, t0); err != nil {
		t.Fatalf("StartRun: %v", err)
	}
	st := make(map[string]state.TaskState, len(taskIDs))
	keys := make([]state.TaskKey, 0, len(taskIDs))
	for _, id := range taskIDs {
		st[id] = state.TaskQueued
		keys = append(keys, state.TaskKey{DAGID: dagID, RunID: r.RunID, TaskID: id})
	}
	if err := s.SetTaskStates(t.Context(), dagID, r.RunID, st, t0); err != nil {
		t.Fatalf("SetTaskStates: %v", err)
	}
	return keys
}

func claim(t *testing.T, s state.Store, c state.Claim) state.TaskInstance {
	t.Helper()
	ti, err := s.ClaimTask(t.Context(), c)
	if err != nil {
		t.Fatalf("ClaimTask %v by %s at %s: %v", c.Key, c.Owner, c.Now.Format(time.RFC3339), err)
	}
	return ti
}

func finish(t *testing.T, s state.Store, f state.Finish) state.TaskInstance {
	t.Helper()
	ti, err := s.FinishTask(t.Context(), f)
	if err != nil {
		t.Fatalf("FinishTask %v try %d as %s: %v", f.Key, f.Try, f.State, err)
	}
	return ti
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %s, want %s", what, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
}

// parallel runs fn(i) for i in [0, n) at the same time and returns the errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// countErrs counts nil errors and errors wrapping want; any other error fails.
func countErrs(t *testing.T, errs []error, want error) (ok, matched int) {
	t.Helper()
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, want):
			matched++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	return ok, matched
}

func testCreateRun(t *testing.T, s state.Store) {
	ctx := t.Context()
	r := newRun("load", 0, state.KindScheduled)
	r.Params = map[string]string{"day": "2026-03-01", "mode": "full load"}
	create(t, s, r, "extract", "load", "check")

	got := getRun(t, s, "load", r.RunID)
	if got.DAGID != r.DAGID || got.RunID != r.RunID || got.Kind != state.KindScheduled {
		t.Errorf("Run = %+v, want ids and kind of %+v", got, r)
	}
	if got.State != state.RunQueued {
		t.Errorf("new run state = %q, want queued", got.State)
	}
	wantTime(t, "LogicalDate", got.LogicalDate, r.LogicalDate)
	wantTime(t, "IntervalStart", got.IntervalStart, r.IntervalStart)
	wantTime(t, "IntervalEnd", got.IntervalEnd, r.IntervalEnd)
	wantTime(t, "DueAt", got.DueAt, r.DueAt)
	wantTime(t, "CreatedAt", got.CreatedAt, r.CreatedAt)
	if !got.StartedAt.IsZero() || !got.EndedAt.IsZero() || got.DeadlineAlerted || got.BackfillID != "" {
		t.Errorf("new run has start/end/alert/backfill set: %+v", got)
	}
	if !maps.Equal(got.Params, r.Params) {
		t.Errorf("Params = %v, want %v", got.Params, r.Params)
	}

	tis := tasks(t, s, "load", r.RunID)
	if ids := slices.Sorted(maps.Keys(tis)); !slices.Equal(ids, []string{"check", "extract", "load"}) {
		t.Fatalf("task IDs = %v", ids)
	}
	for id, ti := range tis {
		if ti.State != state.TaskNone || ti.Try != 0 || ti.Failures != 0 || ti.Owner != "" {
			t.Errorf("new task %s = %+v, want state none, try 0", id, ti)
		}
	}

	// The same interval again, whatever the kind or params, collides.
	for _, kind := range []state.RunKind{state.KindScheduled, state.KindManual, state.KindBackfill} {
		dup := newRun("load", 0, kind)
		dup.Params = map[string]string{"other": "x"}
		dup.CreatedAt = t0.Add(time.Hour)
		err := s.CreateRun(ctx, dup, []string{"other"})
		wantErr(t, fmt.Sprintf("CreateRun duplicate (%s)", kind), err, state.ErrRunExists)
	}
	got = getRun(t, s, "load", r.RunID)
	if got.Kind != state.KindScheduled || !maps.Equal(got.Params, r.Params) {
		t.Errorf("duplicate CreateRun changed the run: %+v", got)
	}
	if n := len(tasks(t, s, "load", r.RunID)); n != 3 {
		t.Errorf("duplicate CreateRun changed the tasks: %d tasks, want 3", n)
	}

	// Other DAGs and other intervals are independent.
	create(t, s, newRun("other", 0, state.KindScheduled), "a")
	create(t, s, newRun("load", 1, state.KindManual), "a")
	if n := len(tasks(t, s, "other", r.RunID)); n != 1 {
		t.Errorf("other dag has %d tasks, want 1", n)
	}
	if n := len(tasks(t, s, "load", r.RunID)); n != 3 {
		t.Errorf("load run has %d tasks after other runs were created, want 3", n)
	}
}

func testCreateRunConcurrent(t *testing.T, s state.Store) {
	const n = 8
	errs := parallel(n, func(i int) error {
		r := newRun("load", 5, state.KindScheduled)
		if i%2 == 1 {
			r.Kind = state.KindManual
		}
		r.Params = map[string]string{"writer": fmt.Sprint(i)}
		return s.CreateRun(t.Context(), r, []string{"a", "b"})
	})
	ok, exists := countErrs(t, errs, state.ErrRunExists)
	if ok != 1 || exists != n-1 {
		t.Fatalf("concurrent CreateRun: %d succeeded, %d ErrRunExists; want 1 and %d", ok, exists, n-1)
	}
	runs, err := s.Runs(t.Context(), state.RunFilter{DAGID: "load"})
	if err != nil {
		t.Fatalf("Runs: %v", err)
	}
	if len(runs) != 1 {
		t.Fatalf("Runs after concurrent CreateRun = %d runs, want 1", len(runs))
	}
	if n := len(tasks(t, s, "load", runs[0].RunID)); n != 2 {
		t.Errorf("run has %d tasks, want 2", n)
	}
}

func testNotFound(t *testing.T, s state.Store) {
	ctx := t.Context()
	r := newRun("load", 0, state.KindScheduled)
	_, err := s.Run(ctx, "load", r.RunID)
	wantErr(t, "Run of unknown run", err, state.ErrNotFound)
	_, err = s.Tasks(ctx, "load", r.RunID)
	wantErr(t, "Tasks of unknown run", err, state.ErrNotFound)
	wantErr(t, "StartRun of unknown run", s.StartRun(ctx, "load", r.RunID, 1, t0), state.ErrNotFound)
	wantErr(t, "EndRun of unknown run", s.EndRun(ctx, "load", r.RunID, state.RunRunning, state.RunSuccess, t0), state.ErrNotFound)
	_, err = s.MarkRunDeadlineAlerted(ctx, "load", r.RunID)
	wantErr(t, "MarkRunDeadlineAlerted of unknown run", err, state.ErrNotFound)
	wantErr(t, "ResetRun of unknown run", s.ResetRun(ctx, "load", r.RunID, false, "", t0), state.ErrNotFound)
	_, err = s.LatestRun(ctx, "load", "")
	wantErr(t, "LatestRun of a DAG without runs", err, state.ErrNotFound)
	_, err = s.Backfill(ctx, "nope")
	wantErr(t, "Backfill of unknown ID", err, state.ErrNotFound)
	err = s.UpdateBackfill(ctx, state.Backfill{ID: "nope", DAGID: "load", State: state.BackfillRunning, UpdatedAt: t0}, t0)
	if !errors.Is(err, state.ErrNotFound) && !errors.Is(err, state.ErrConflict) {
		t.Errorf("UpdateBackfill of unknown ID: got %v, want ErrNotFound or ErrConflict", err)
	}

	// A known run with an unknown task.
	create(t, s, r, "a")
	k := state.TaskKey{DAGID: "load", RunID: r.RunID, TaskID: "missing"}
	_, err = s.ClaimTask(ctx, state.Claim{Key: k, Owner: "s1", Now: t0, Lease: time.Minute})
	wantErr(t, "ClaimTask of unknown task", err, state.ErrNotFound)
	err = s.RenewLease(ctx, k, 1, "s1", t0.Add(time.Minute))
	if !errors.Is(err, state.ErrNotFound) && !errors.Is(err, state.ErrFenced) {
		t.Errorf("RenewLease of unknown task: got %v, want ErrNotFound or ErrFenced", err)
	}
	_, err = s.FinishTask(ctx, state.Finish{Key: k, Try: 1, Owner: "s1", State: state.TaskSuccess, Now: t0})
	if !errors.Is(err, state.ErrNotFound) && !errors.Is(err, state.ErrFenced) {
		t.Errorf("FinishTask of unknown task: got %v, want ErrNotFound or ErrFenced", err)
	}
}

func runIDs(runs []state.Run) []string {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.DAGID + "@" + r.IntervalStart.UTC().Format("15")
	}
	return ids
}

func testRunsAndLatestRun(t *testing.T, s state.Store) {
	ctx := t.Context()
	kinds := map[int]state.RunKind{0: state.KindScheduled, 1: state.KindManual, 2: state.KindScheduled, 3: state.KindBackfill, 4: state.KindManual}
	run := func(h int) state.Run { return newRun("a", h, kinds[h]) }
	for _, h := range []int{2, 0, 4, 1, 3} { // not in time order
		r := run(h)
		if h == 3 {
			r.BackfillID = "bf1"
		}
		create(t, s, r, "x")
	}
	create(t, s, newRun("b", 10, state.KindScheduled), "x")

	list := func(f state.RunFilter) []string {
		t.Helper()
		runs, err := s.Runs(ctx, f)
		if err != nil {
			t.Fatalf("Runs(%+v): %v", f, err)
		}
		return runIDs(runs)
	}
	check := func(f state.RunFilter, want ...string) {
		t.Helper()
		if got := list(f); !slices.Equal(got, want) {
			t.Errorf("Runs(%+v) = %v, want %v", f, got, want)
		}
	}
	check(state.RunFilter{DAGID: "a"}, "a@04", "a@03", "a@02", "a@01", "a@00")
	check(state.RunFilter{}, "b@10", "a@04", "a@03", "a@02", "a@01", "a@00")
	check(state.RunFilter{DAGID: "a", Limit: 2}, "a@04", "a@03")
	check(state.RunFilter{DAGID: "b"}, "b@10")
	check(state.RunFilter{DAGID: "c"})
	check(state.RunFilter{BackfillID: "bf1"}, "a@03")

	if err := s.StartRun(ctx, "a", run(2).RunID, 10, t0); err != nil {
		t.Fatalf("StartRun: %v", err)
	}
	if err := s.EndRun(ctx, "a", run(0).RunID, state.RunQueued, state.RunSuccess, t0); err != nil {
		t.Fatalf("EndRun: %v", err)
	}
	if err := s.EndRun(ctx, "a", run(1).RunID, state.RunQueued, state.RunFailed, t0); err != nil {
		t.Fatalf("EndRun: %v", err)
	}
	check(state.RunFilter{DAGID: "a", States: []state.RunState{state.RunRunning, state.RunFailed}}, "a@02", "a@01")
	check(state.RunFilter{DAGID: "a", States: []state.RunState{state.RunQueued}}, "a@04", "a@03")
	check(state.RunFilter{States: []state.RunState{state.RunQueued}, Limit: 2}, "b@10", "a@04")
	check(state.RunFilter{DAGID: "a", States: []state.RunState{state.RunSuccess}}, "a@00")
	check(state.RunFilter{DAGID: "a", States: []state.RunState{state.RunQueued}, BackfillID: "bf1"}, "a@03")

	latest := func(dagID string, kind state.RunKind, want string) {
		t.Helper()
		r, err := s.LatestRun(ctx, dagID, kind)
		if err != nil {
			t.Fatalf("LatestRun(%s, %q): %v", dagID, kind, err)
		}
		if got := runIDs([]state.Run{r})[0]; got != want {
			t.Errorf("LatestRun(%s, %q) = %s, want %s", dagID, kind, got, want)
		}
	}
	latest("a", "", "a@04")
	latest("a", state.KindScheduled, "a@02")
	latest("a", state.KindManual, "a@04")
	latest("a", state.KindBackfill, "a@03")
	latest("b", "", "b@10")
	_, err := s.LatestRun(ctx, "b", state.KindManual)
	wantErr(t, "LatestRun of a kind without runs", err, state.ErrNotFound)
	_, err = s.LatestRun(ctx, "c", "")
	wantErr(t, "LatestRun of a DAG without runs", err, state.ErrNotFound)
}

func testStartRunMaxActive(t *testing.T, s state.Store) {
	ctx := t.Context()
	var ids []string
	for h := range 5 {
		ids = append(ids, create(t, s, newRun("a", h, state.KindScheduled), "x").RunID)
	}
	other := create(t, s, newRun("b", 0, state.KindScheduled), "x")
	start := t0.Add(90 * time.Minute)

	if err := s.StartRun(ctx, "a", ids[0], 2, start); err != nil {
		t.Fatalf("StartRun 0: %v", err)
	}
	r := getRun(t, s, "a", ids[0])
	if r.State != state.RunRunning {
		t.Errorf("started run state = %q, want running", r.State)
	}
	wantTime(t, "StartedAt", r.StartedAt, start)
	if err := s.StartRun(ctx, "a", ids[1], 2, start); err != nil {
		t.Fatalf("StartRun 1: %v", err)
	}
	// Starting a running run is a no-op, even at the cap.
	if err := s.StartRun(ctx, "a", ids[0], 2, start.Add(time.Minute)); err != nil {
		t.Errorf("StartRun of a running run: %v", err)
	}
	if err := s.StartRun(ctx, "a", ids[0], 1, start.Add(time.Minute)); err != nil {
		t.Errorf("StartRun of a running run over the cap: %v", err)
	}
	wantTime(t, "StartedAt after a no-op StartRun", getRun(t, s, "a", ids[0]).StartedAt, start)

	err := s.StartRun(ctx, "a", ids[2], 2, start)
	wantErr(t, "third StartRun with maxActive 2", err, state.ErrMaxActiveRuns)
	if st := getRun(t, s, "a", ids[2]).State; st != state.RunQueued {
		t.Errorf("refused run state = %q, want queued", st)
	}
	// Other DAGs have their own cap.
	if err := s.StartRun(ctx, "b", other.RunID, 1, start); err != nil {
		t.Errorf("StartRun of another DAG: %v", err)
	}

	end := start.Add(time.Hour)
	if err := s.EndRun(ctx, "a", ids[0], state.RunRunning, state.RunSuccess, end); err != nil {
		t.Fatalf("EndRun: %v", err)
	}
	r = getRun(t, s, "a", ids[0])
	if r.State != state.RunSuccess {
		t.Errorf("ended run state = %q, want success", r.State)
	}
	wantTime(t, "EndedAt", r.EndedAt, end)
	if err := s.StartRun(ctx, "a", ids[2], 2, end); err != nil {
		t.Fatalf("StartRun after EndRun freed a slot: %v", err)
	}

	// Ending a queued run neither frees nor takes a slot.
	if err := s.EndRun(ctx, "a", ids[3], state.RunQueued, state.RunFailed, end); err != nil {
		t.Fatalf("EndRun of a queued run: %v", err)
	}
	r = getRun(t, s, "a", ids[3])
	if r.State != state.RunFailed {
		t.Errorf("ended queued run state = %q, want failed", r.State)
	}
	wantTime(t, "EndedAt of queued run", r.EndedAt, end)
	wantErr(t, "StartRun at the cap after ending a queued run", s.StartRun(ctx, "a", ids[4], 2, end), state.ErrMaxActiveRuns)
	if err := s.EndRun(ctx, "a", ids[1], state.RunRunning, state.RunFailed, end); err != nil {
		t.Fatalf("EndRun: %v", err)
	}
	if err := s.StartRun(ctx, "a", ids[4], 2, end); err != nil {
		t.Fatalf("StartRun after EndRun failed freed a slot: %v", err)
	}
}

func testStartRunConcurrent(t *testing.T, s state.Store) {
	const n = 10
	var ids []string
	for h := range n {
		ids = append(ids, create(t, s, newRun("a", h, state.KindScheduled), "x").RunID)
	}
	errs := parallel(n, func(i int) error {
		return s.StartRun(t.Context(), "a", ids[i], 2, t0.Add(time.Duration(i)*time.Second))
	})
	ok, refused := countErrs(t, errs, state.ErrMaxActiveRuns)
	if ok != 2 || refused != n-2 {
		t.Errorf("concurrent StartRun with maxActive 2: %d started, %d refused; want 2 and %d", ok, refused, n-2)
	}
	running, err := s.Runs(t.Context(), state.RunFilter{DAGID: "a", States: []state.RunState{state.RunRunning}})
	if err != nil {
		t.Fatalf("Runs: %v", err)
	}
	if len(running) != 2 {
		t.Errorf("%d running runs, want 2", len(running))
	}
}

func testEndRunFrom(t *testing.T, s state.Store) {
	ctx := t.Context()
	r := create(t, s, newRun("a", 0, state.KindScheduled), "t").RunID
	other := create(t, s, newRun("a", 1, state.KindScheduled), "t").RunID
	queued := create(t, s, newRun("a", 2, state.KindScheduled), "t").RunID
	end := t0.Add(2 * time.Hour)
	check := func(what, runID string, st state.RunState, ended time.Time) {
		t.Helper()
		got := getRun(t, s, "a", runID)
		if got.State != st {
			t.Errorf("%s: run state = %q, want %q", what, got.State, st)
		}
		wantTime(t, what+": EndedAt", got.EndedAt, ended)
	}

	// A queued run does not end from running.
	wantErr(t, "EndRun from running of a queued run", s.EndRun(ctx, "a", r, state.RunRunning, state.RunSuccess, end), state.ErrConflict)
	check("queued run after a refused EndRun", r, state.RunQueued, time.Time{})

	// A running run does not end from queued, and keeps its slot.
	if err := s.StartRun(ctx, "a", r, 1, t0); err != nil {
		t.Fatalf("StartRun: %v", err)
	}
	wantErr(t, "EndRun from queued of a running run", s.EndRun(ctx, "a", r, state.RunQueued, state.RunFailed, end), state.ErrConflict)
	check("running run after a refused EndRun", r, state.RunRunning, time.Time{})
	wantErr(t, "StartRun at the cap after a refused EndRun", s.StartRun(ctx, "a", other, 1, t0), state.ErrMaxActiveRuns)

	// From running it ends and frees its slot.
	if err := s.EndRun(ctx, "a", r, state.RunRunning, state.RunSuccess, end); err != nil {
		t.Fatalf("EndRun from running: %v", err)
	}
	check("ended run", r, state.RunSuccess, end)
	if err := s.StartRun(ctx, "a", other, 1, end); err != nil {
		t.Fatalf("StartRun after EndRun freed the slot: %v", err)
	}

	// A finished run ends from nothing.
	for _, from := range []state.RunState{state.RunQueued, state.RunRunning} {
		err := s.EndRun(ctx, "a", r, from, state.RunFailed, end.Add(time.Hour))
		wantErr(t, "EndRun from "+string(from)+" of a finished run", err, state.ErrConflict)
	}
	check("finished run after refused EndRuns", r, state.RunSuccess, end)

	// Only queued and running are states to end from, only success and
	// failed states to end in.
	for _, tc := range []struct{ from, to state.RunState }{
		{from: state.RunSuccess, to: state.RunFailed},
		{from: state.RunFailed, to: state.RunSuccess},
		{from: state.RunRunning, to: state.RunRunning},
		{from: state.RunRunning, to: state.RunQueued},
	} {
		if err := s.EndRun(ctx, "a", other, tc.from, tc.to, end); err == nil {
			t.Errorf("EndRun from %s to %s succeeded", tc.from, tc.to)
		}
	}
	check("running run after invalid EndRuns", other, state.RunRunning, time.Time{})

	// A queued run ends from queued, without taking or freeing a slot.
	if err := s.EndRun(ctx, "a", queued, state.RunQueued, state.RunFailed, end); err != nil {
		t.Fatalf("EndRun from queued: %v", err)
	}
	check("ended queued run", queued, state.RunFailed, end)
	last := create(t, s, newRun("a", 3, state.KindScheduled), "t").RunID
	wantErr(t, "StartRun at the cap after a queued run ended", s.StartRun(ctx, "a", last, 1, end), state.ErrMaxActiveRuns)
}

func testSetTaskStates(t *testing.T, s state.Store) {
	ctx := t.Context()
	r := create(t, s, newRun("a", 0, state.KindScheduled), "q", "uf", "sk", "untouched")
	if err := s.StartRun(ctx, "a", r.RunID, 1, t0); err != nil {
		t.Fatalf("StartRun: %v", err)
	}
	now1 := t0.Add(time.Minute)
	err := s.SetTaskStates(ctx, "a", r.RunID, map[string]state.TaskState{
		"q": state.TaskQueued, "uf": state.TaskUpstreamFailed, "sk": state.TaskSkipped,
	}, now1)
	if err != nil {
		t.Fatalf("SetTaskStates: %v", err)
	}
	want := map[string]state.TaskState{"q": state.TaskQueued, "uf": state.TaskUpstreamFailed, "sk": state.TaskSkipped, "untouched": state.TaskNone}
	checkStates := func(when string) {
		t.Helper()
		for id, ti := range tasks(t, s, "a", r.RunID) {
			if ti.State != want[id] {
				t.Errorf("%s: task %s state = %q, want %q", when, id, ti.State, want[id])
			}
		}
	}
	checkStates("after SetTaskStates")
	wantTime(t, "ReadyAt of queued task", task(t, s, state.TaskKey{DAGID: "a", RunID: r.RunID, TaskID: "q"}).ReadyAt, now1)

	// Only tasks in state none move.
	now2 := now1.Add(time.Minute)
	err = s.SetTaskStates(ctx, "a", r.RunID, map[string]state.TaskState{
		"q": state.TaskSkipped, "uf": state.TaskQueued, "sk": state.TaskUpstreamFailed,
	}, now2)
	if err != nil {
		t.Fatalf("second SetTaskStates: %v", err)
	}
	checkStates("after a second SetTaskStates")
	wantTime(t, "ReadyAt after a second SetTaskStates", task(t, s, state.TaskKey{DAGID: "a", RunID: r.RunID, TaskID: "q"}).ReadyAt, now1)

	k := state.TaskKey{DAGID: "a", RunID: r.RunID, TaskID: "q"}
	claim(t, s, state.Claim{Key: k, Owner: "s1", Now: now2, Lease: time.Minute})
	if err := s.SetTaskStates(ctx, "a", r.RunID, map[string]state.TaskState{"q": state.TaskQueued}, now2); err != nil {
		t.Fatalf("SetTaskStates of a running task: %v", err)
	}
	if ti := task(t, s, k); ti.State != state.TaskRunning || ti.Try != 1 {
		t.Errorf("SetTaskStates touched a running task: %+v", ti)
	}
}

func testClaimTask(t *testing.T, s state.Store) {
	ctx := t.Context()
	keys := queuedRun(t, s, "a", 0, "t1", "t2", "t3")
	r := create(t, s, newRun("a", 1, state.KindScheduled), "none")
	noneKey := state.TaskKey{DAGID: "a", RunID: r.RunID, TaskID: "none"}
	_, err := s.ClaimTask(ctx, state.Claim{Key: noneKey, Owner: "s1", Now: t0, Lease: time.Minute})
	wantErr(t, "ClaimTask of a task in state none", err, state.ErrNotClaimable)

	k := keys[0]
	now1 := t0.Add(time.Minute)
	ti := claim(t, s, state.Claim{Key: k, Owner: "s1", Now: now1, Lease: 30 * time.Second})
	checkClaimed := func(what string, ti state.TaskInstance, try int, owner string, now time.Time, lease time.Duration) {
		t.Helper()
		if ti.TaskKey != k || ti.State != state.TaskRunning || ti.Try != try || ti.Owner != owner {
			t.Errorf("%s = %+v, want running try %d owned by %s", what, ti, try, owner)
		}
		wantTime(t, what+" LeaseUntil", ti.LeaseUntil, now.Add(lease))
		wantTime(t, what+" StartedAt", ti.StartedAt, now)
	}
	checkClaimed("claimed task", ti, 1, "s1", now1, 30*time.Second)
	checkClaimed("stored claimed task", task(t, s, k), 1, "s1", now1, 30*time.Second)

	for _, owner := range []string{"s2", "s1"} {
		_, err = s.ClaimTask(ctx, state.Claim{Key: k, Owner: owner, Now: now1.Add(10 * time.Second), Lease: 30 * time.Second})
		wantErr(t, "ClaimTask under a valid lease by "+owner, err, state.ErrNotClaimable)
	}
	checkClaimed("task after refused claims", task(t, s, k), 1, "s1", now1, 30*time.Second)

	// After the lease expires another scheduler takes over.
	now2 := now1.Add(31 * time.Second)
	ti = claim(t, s, state.Claim{Key: k, Owner: "s2", Now: now2, Lease: time.Minute})
	checkClaimed("taken-over task", ti, 2, "s2", now2, time.Minute)

	end := now2.Add(10 * time.Second)
	ti = finish(t, s, state.Finish{Key: k, Try: 2, Owner: "s2", State: state.TaskSuccess, Now: end})
	if ti.State != state.TaskSuccess || ti.Try != 2 {
		t.Errorf("finished task = %+v, want success try 2", ti)
	}
	wantTime(t, "EndedAt", ti.EndedAt, end)
	stored := task(t, s, k)
	if stored.State != state.TaskSuccess {
		t.Errorf("stored finished task state = %q", stored.State)
	}
	wantTime(t, "stored EndedAt", stored.EndedAt, end)

	// Finished tasks are not claimable, whatever the time.
	claim(t, s, state.Claim{Key: keys[1], Owner: "s1", Now: now1, Lease: time.Second})
	finish(t, s, state.Finish{Key: keys[1], Try: 1, Owner: "s1", State: state.TaskFailed, Failed: true, Now: now1, Error: "boom"})
	claim(t, s, state.Claim{Key: keys[2], Owner: "s1", Now: now1, Lease: time.Second})
	finish(t, s, state.Finish{Key: keys[2], Try: 1, Owner: "s1", State: state.TaskSkipped, Now: now1})
	for _, fk := range keys {
		_, err = s.ClaimTask(ctx, state.Claim{Key: fk, Owner: "s3", Now: now1.Add(24 * time.Hour), Lease: time.Minute})
		wantErr(t, "ClaimTask of finished task "+fk.TaskID, err, state.ErrNotClaimable)
	}
	if ti := task(t, s, keys[1]); ti.State != state.TaskFailed || ti.Failures != 1 || ti.Error != "boom" {
		t.Errorf("failed task = %+v, want failed, 1 failure, error boom", ti)
	}
}

func testClaimTaskConcurrent(t *testing.T, s state.Store) {
	const n = 8
	k := queuedRun(t, s, "a", 0, "t")[0]
	results := make([]state.TaskInstance, n)
	errs := parallel(n, func(i int) error {
		ti, err := s.ClaimTask(t.Context(), state.Claim{Key: k, Owner: fmt.Sprintf("s%d", i), Now: t0.Add(time.Minute), Lease: time.Minute})
		results[i] = ti
		return err
	})
	ok, refused := countErrs(t, errs, state.ErrNotClaimable)
	if ok != 1 || refused != n-1 {
		t.Fatalf("concurrent ClaimTask: %d won, %d refused; want 1 and %d", ok, refused, n-1)
	}
	winner := results[slices.IndexFunc(errs, func(err error) bool { return err == nil })]
	stored := task(t, s, k)
	if stored.Try != 1 || stored.Owner != winner.Owner || stored.State != state.TaskRunning {
		t.Errorf("stored task = %+v, want running try 1 owned by %s", stored, winner.Owner)
	}
}

func testRetryAndReschedule(t *testing.T, s state.Store) {
	ctx := t.Context()
	keys := queuedRun(t, s, "a", 0, "op", "sensor")
	op, sensor := keys[0], keys[1]

	now := t0.Add(time.Minute)
	claim(t, s, state.Claim{Key: op, Owner: "s1", Now: now, Lease: time.Minute})
	retryAt := now.Add(5 * time.Minute)
	ti := finish(t, s, state.Finish{Key: op, Try: 1, Owner: "s1", State: state.TaskUpForRetry, Now: now.Add(time.Second), Error: "boom", NextTryAt: retryAt, Failed: true})
	if ti.State != state.TaskUpForRetry || ti.Failures != 1 || ti.Error != "boom" {
		t.Errorf("retry task = %+v, want up_for_retry, 1 failure, error boom", ti)
	}
	wantTime(t, "NextTryAt", ti.NextTryAt, retryAt)
	stored := task(t, s, op)
	if stored.State != state.TaskUpForRetry || stored.Failures != 1 {
		t.Errorf("stored retry task = %+v", stored)
	}
	wantTime(t, "stored NextTryAt", stored.NextTryAt, retryAt)

	_, err := s.ClaimTask(ctx, state.Claim{Key: op, Owner: "s1", Now: retryAt.Add(-time.Second), Lease: time.Minute})
	wantErr(t, "ClaimTask of up_for_retry before NextTryAt", err, state.ErrNotClaimable)
	ti = claim(t, s, state.Claim{Key: op, Owner: "s2", Now: retryAt, Lease: time.Minute})
	if ti.Try != 2 || ti.Failures != 1 || ti.State != state.TaskRunning || ti.Owner != "s2" {
		t.Errorf("retried task = %+v, want running try 2 with 1 failure", ti)
	}
	ti = finish(t, s, state.Finish{Key: op, Try: 2, Owner: "s2", State: state.TaskFailed, Now: retryAt.Add(time.Second), Error: "boom again", Failed: true})
	if ti.State != state.TaskFailed || ti.Failures != 2 || ti.Error != "boom again" {
		t.Errorf("failed task = %+v, want failed with 2 failures", ti)
	}

	// A sensor reschedules itself without failing.
	first := claim(t, s, state.Claim{Key: sensor, Owner: "s1", Now: now, Lease: time.Minute})
	wantTime(t, "FirstPokeAt after the first claim", first.FirstPokeAt, now)
	pokeAt := now.Add(time.Minute)
	ti = finish(t, s, state.Finish{Key: sensor, Try: 1, Owner: "s1", State: state.TaskUpForReschedule, Now: now.Add(time.Second), Waiting: "lineage for 2026-03-01", NextTryAt: pokeAt})
	if ti.State != state.TaskUpForReschedule || ti.Failures != 0 || ti.Waiting != "lineage for 2026-03-01" {
		t.Errorf("rescheduled sensor = %+v", ti)
	}
	wantTime(t, "sensor NextTryAt", ti.NextTryAt, pokeAt)
	_, err = s.ClaimTask(ctx, state.Claim{Key: sensor, Owner: "s1", Now: pokeAt.Add(-time.Second), Lease: time.Minute})
	wantErr(t, "ClaimTask of up_for_reschedule before NextTryAt", err, state.ErrNotClaimable)
	ti = claim(t, s, state.Claim{Key: sensor, Owner: "s1", Now: pokeAt, Lease: time.Minute})
	if ti.Try != 2 || ti.State != state.TaskRunning {
		t.Errorf("re-poked sensor = %+v, want running try 2", ti)
	}
	wantTime(t, "FirstPokeAt after a later claim", ti.FirstPokeAt, now)
	wantTime(t, "StartedAt after a later claim", ti.StartedAt, pokeAt)
}

func testFencing(t *testing.T, s state.Store) {
	ctx := t.Context()
	k := queuedRun(t, s, "a", 0, "t")[0]
	now := t0.Add(time.Minute)
	claim(t, s, state.Claim{Key: k, Owner: "s1", Now: now, Lease: 30 * time.Second})

	renewed := now.Add(60 * time.Second)
	if err := s.RenewLease(ctx, k, 1, "s1", renewed); err != nil {
		t.Fatalf("RenewLease: %v", err)
	}
	wantTime(t, "LeaseUntil after RenewLease", task(t, s, k).LeaseUntil, renewed)
	_, err := s.ClaimTask(ctx, state.Claim{Key: k, Owner: "s2", Now: now.Add(45 * time.Second), Lease: time.Minute})
	wantErr(t, "ClaimTask under a renewed lease", err, state.ErrNotClaimable)
	wantErr(t, "RenewLease by another owner", s.RenewLease(ctx, k, 1, "s2", renewed.Add(time.Hour)), state.ErrFenced)
	wantErr(t, "RenewLease of a future try", s.RenewLease(ctx, k, 2, "s1", renewed.Add(time.Hour)), state.ErrFenced)
	_, err = s.FinishTask(ctx, state.Finish{Key: k, Try: 1, Owner: "s2", State: state.TaskSuccess, Now: now})
	wantErr(t, "FinishTask by another owner", err, state.ErrFenced)
	wantTime(t, "LeaseUntil after refused renewals", task(t, s, k).LeaseUntil, renewed)

	// Takeover after the renewed lease expires.
	takeover := renewed.Add(time.Second)
	claim(t, s, state.Claim{Key: k, Owner: "s2", Now: takeover, Lease: time.Minute})
	wantErr(t, "RenewLease of the old try", s.RenewLease(ctx, k, 1, "s1", takeover.Add(time.Hour)), state.ErrFenced)
	for _, st := range []state.TaskState{state.TaskSuccess, state.TaskFailed, state.TaskUpForRetry} {
		_, err = s.FinishTask(ctx, state.Finish{Key: k, Try: 1, Owner: "s1", State: st, Now: takeover, Failed: st != state.TaskSuccess, NextTryAt: takeover})
		wantErr(t, "FinishTask of the old try as "+string(st), err, state.ErrFenced)
	}
	ti := task(t, s, k)
	if ti.State != state.TaskRunning || ti.Try != 2 || ti.Owner != "s2" || ti.Failures != 0 {
		t.Errorf("task after stale writes = %+v, want running try 2 owned by s2, no failures", ti)
	}
	wantTime(t, "LeaseUntil after stale writes", ti.LeaseUntil, takeover.Add(time.Minute))

	_, err = s.FinishTask(ctx, state.Finish{Key: k, Try: 2, Owner: "s1", State: state.TaskSuccess, Now: takeover})
	wantErr(t, "FinishTask of the current try by the old owner", err, state.ErrFenced)

	end := takeover.Add(time.Second)
	ti = finish(t, s, state.Finish{Key: k, Try: 2, Owner: "s2", State: state.TaskFailed, Now: end, Failed: true, Error: "boom"})
	if ti.Failures != 1 {
		t.Errorf("Failures = %d, want 1", ti.Failures)
	}
	// The attempt is over: it can no longer renew or finish.
	wantErr(t, "RenewLease of a finished try", s.RenewLease(ctx, k, 2, "s2", end.Add(time.Hour)), state.ErrFenced)
	_, err = s.FinishTask(ctx, state.Finish{Key: k, Try: 2, Owner: "s2", State: state.TaskSuccess, Now: end})
	wantErr(t, "FinishTask of a finished try", err, state.ErrFenced)
	if ti := task(t, s, k); ti.State != state.TaskFailed || ti.Failures != 1 {
		t.Errorf("task after a second finish = %+v, want failed with 1 failure", ti)
	}
}

func testFinishAfterLeaseWithoutTakeover(t *testing.T, s state.Store) {
	// A lease that expired without a takeover still lets its owner finish:
	// only a newer try fences it.
	k := queuedRun(t, s, "a", 0, "t")[0]
	claim(t, s, state.Claim{Key: k, Owner: "s1", Now: t0, Lease: 10 * time.Second})
	ti := finish(t, s, state.Finish{Key: k, Try: 1, Owner: "s1", State: state.TaskSuccess, Now: t0.Add(time.Hour)})
	if ti.State != state.TaskSuccess {
		t.Errorf("task = %+v, want success", ti)
	}
}

func testPools(t *testing.T, s state.Store) {
	ctx := t.Context()
	keys := queuedRun(t, s, "a", 0, "p1", "p2", "p3", "p4", "q1")
	otherDAG := queuedRun(t, s, "b", 0, "p5")[0]
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	pc := func(k state.TaskKey, owner string, now time.Time, lease time.Duration) state.Claim {
		return state.Claim{Key: k, Owner: owner, Now: now, Lease: lease, Pool: "db", PoolSlots: 2}
	}

	ti := claim(t, s, pc(keys[0], "s1", at(0), 30*time.Second))
	if ti.Pool != "db" {
		t.Errorf("claimed task Pool = %q, want db", ti.Pool)
	}
	claim(t, s, pc(keys[1], "s1", at(0), 30*time.Second))
	_, err := s.ClaimTask(ctx, pc(keys[2], "s1", at(1), 10*time.Minute))
	wantErr(t, "third claim in a pool of 2", err, state.ErrPoolFull)
	if ti := task(t, s, keys[2]); ti.State != state.TaskQueued || ti.Try != 0 {
		t.Errorf("refused task = %+v, want queued try 0", ti)
	}
	_, err = s.ClaimTask(ctx, pc(otherDAG, "s1", at(1), 10*time.Minute))
	wantErr(t, "claim in a full pool from another DAG", err, state.ErrPoolFull)
	// Other pools are independent.
	claim(t, s, state.Claim{Key: keys[4], Owner: "s1", Now: at(1), Lease: time.Minute, Pool: "other", PoolSlots: 1})

	// Finishing frees a slot.
	finish(t, s, state.Finish{Key: keys[0], Try: 1, Owner: "s1", State: state.TaskSuccess, Now: at(2)})
	claim(t, s, pc(keys[2], "s1", at(3), 10*time.Minute))
	_, err = s.ClaimTask(ctx, pc(keys[3], "s1", at(4), 10*time.Minute))
	wantErr(t, "claim in a full pool after a slot was reused", err, state.ErrPoolFull)

	// An expired lease frees its slot (p2's lease ends at 30 s).
	claim(t, s, pc(keys[3], "s1", at(31), 10*time.Minute))
	// Taking over the expired p2 needs a slot too: p3 and p4 hold both.
	_, err = s.ClaimTask(ctx, pc(keys[1], "s2", at(32), 10*time.Minute))
	wantErr(t, "takeover in a full pool", err, state.ErrPoolFull)
	if ti := task(t, s, keys[1]); ti.Try != 1 || ti.Owner != "s1" {
		t.Errorf("refused takeover changed the task: %+v", ti)
	}
	finish(t, s, state.Finish{Key: keys[2], Try: 1, Owner: "s1", State: state.TaskFailed, Failed: true, Now: at(40)})
	ti = claim(t, s, pc(keys[1], "s2", at(41), 10*time.Minute))
	if ti.Try != 2 {
		t.Errorf("takeover Try = %d, want 2", ti.Try)
	}
}

func testPoolFreedByRescheduleAndRetry(t *testing.T, s state.Store) {
	ctx := t.Context()
	keys := queuedRun(t, s, "a", 0, "s1", "s2")
	pc := func(k state.TaskKey, now time.Time) state.Claim {
		return state.Claim{Key: k, Owner: "sched", Now: now, Lease: time.Hour, Pool: "sensors", PoolSlots: 1}
	}
	claim(t, s, pc(keys[0], t0))
	_, err := s.ClaimTask(ctx, pc(keys[1], t0))
	wantErr(t, "claim in a full pool of 1", err, state.ErrPoolFull)

	finish(t, s, state.Finish{Key: keys[0], Try: 1, Owner: "sched", State: state.TaskUpForReschedule, Now: t0.Add(time.Second), NextTryAt: t0.Add(time.Minute), Waiting: "x"})
	claim(t, s, pc(keys[1], t0.Add(2*time.Second)))
	_, err = s.ClaimTask(ctx, pc(keys[0], t0.Add(time.Minute)))
	wantErr(t, "due sensor in a full pool", err, state.ErrPoolFull)

	finish(t, s, state.Finish{Key: keys[1], Try: 1, Owner: "sched", State: state.TaskUpForRetry, Failed: true, Now: t0.Add(time.Minute), NextTryAt: t0.Add(time.Hour)})
	ti := claim(t, s, pc(keys[0], t0.Add(time.Minute)))
	if ti.Try != 2 {
		t.Errorf("sensor Try = %d, want 2", ti.Try)
	}
}

func testPoolConcurrent(t *testing.T, s state.Store) {
	const n = 8
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%d", i)
	}
	keys := queuedRun(t, s, "a", 0, ids...)
	errs := parallel(n, func(i int) error {
		_, err := s.ClaimTask(t.Context(), state.Claim{Key: keys[i], Owner: "s", Now: t0, Lease: time.Minute, Pool: "db", PoolSlots: 2})
		return err
	})
	ok, full := countErrs(t, errs, state.ErrPoolFull)
	if ok != 2 || full != n-2 {
		t.Errorf("concurrent claims in a pool of 2: %d won, %d ErrPoolFull; want 2 and %d", ok, full, n-2)
	}
	running := 0
	for _, ti := range tasks(t, s, "a", keys[0].RunID) {
		if ti.State == state.TaskRunning {
			running++
		}
	}
	if running != 2 {
		t.Errorf("%d running tasks, want 2", running)
	}
}

func testDeadlineAlerts(t *testing.T, s state.Store) {
	ctx := t.Context()
	k := queuedRun(t, s, "a", 0, "t")[0]
	mark := func(what string, fn func() (bool, error), want bool) {
		t.Helper()
		got, err := fn()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got != want {
			t.Errorf("%s = %t, want %t", what, got, want)
		}
	}
	runMark := func() (bool, error) { return s.MarkRunDeadlineAlerted(ctx, "a", k.RunID) }
	if getRun(t, s, "a", k.RunID).DeadlineAlerted {
		t.Errorf("new run is DeadlineAlerted")
	}
	mark("first MarkRunDeadlineAlerted", runMark, true)
	mark("second MarkRunDeadlineAlerted", runMark, false)
	if !getRun(t, s, "a", k.RunID).DeadlineAlerted {
		t.Errorf("run not DeadlineAlerted after marking")
	}

	taskMark := func(try int) func() (bool, error) {
		return func() (bool, error) { return s.MarkTaskDeadlineAlerted(ctx, k, try) }
	}
	claim(t, s, state.Claim{Key: k, Owner: "s1", Now: t0, Lease: time.Minute})
	mark("MarkTaskDeadlineAlerted of a future try", taskMark(2), false)
	mark("first MarkTaskDeadlineAlerted", taskMark(1), true)
	mark("second MarkTaskDeadlineAlerted", taskMark(1), false)
	if !task(t, s, k).DeadlineAlerted {
		t.Errorf("task not DeadlineAlerted after marking")
	}
	claim(t, s, state.Claim{Key: k, Owner: "s2", Now: t0.Add(2 * time.Minute), Lease: time.Minute})
	if task(t, s, k).DeadlineAlerted {
		t.Errorf("new try inherited DeadlineAlerted")
	}
	mark("MarkTaskDeadlineAlerted of a stale try", taskMark(1), false)
	mark("MarkTaskDeadlineAlerted of the new try", taskMark(2), true)
	mark("second MarkTaskDeadlineAlerted of the new try", taskMark(2), false)
}

// finishedRun creates dag's run of the given kind at hour with tasks ok
// (success), bad (failed), uf (upstream_failed), sk (skipped) and later
// (none), started and ended failed at t0+hour+10m. It returns the run ID.
func finishedRun(t *testing.T, s state.Store, dagID string, hour int, kind state.RunKind) string {
	t.Helper()
	ctx := t.Context()
	r := create(t, s, newRun(dagID, hour, kind), "ok", "bad", "uf", "sk", "later")
	base := r.IntervalStart
	if err := s.StartRun(ctx, dagID, r.RunID, 1000, base); err != nil {
		t.Fatalf("StartRun: %v", err)
	}
	err := s.SetTaskStates(ctx, dagID, r.RunID, map[string]state.TaskState{
		"ok": state.TaskQueued, "bad": state.TaskQueued, "uf": state.TaskUpstreamFailed, "sk": state.TaskSkipped,
	}, base)
	if err != nil {
		t.Fatalf("SetTaskStates: %v", err)
	}
	key := func(id string) state.TaskKey { return state.TaskKey{DAGID: dagID, RunID: r.RunID, TaskID: id} }
	claim(t, s, state.Claim{Key: key("ok"), Owner: "s1", Now: base, Lease: time.Minute})
	finish(t, s, state.Finish{Key: key("ok"), Try: 1, Owner: "s1", State: state.TaskSuccess, Now: base.Add(time.Minute)})
	claim(t, s, state.Claim{Key: key("bad"), Owner: "s1", Now: base, Lease: time.Minute})
	finish(t, s, state.Finish{Key: key("bad"), Try: 1, Owner: "s1", State: state.TaskFailed, Failed: true, Error: "boom", Now: base.Add(time.Minute)})
	if err := s.EndRun(ctx, dagID, r.RunID, state.RunRunning, state.RunFailed, base.Add(10*time.Minute)); err != nil {
		t.Fatalf("EndRun: %v", err)
	}
	return r.RunID
}

func testResetRun(t *testing.T, s state.Store) {
	ctx := t.Context()
	runID := finishedRun(t, s, "a", 0, state.KindScheduled)
	resetAt := t0.Add(3 * time.Hour) // the run was due at t0+1h
	if err := s.ResetRun(ctx, "a", runID, true, "bf-1", resetAt); err != nil {
		t.Fatalf("ResetRun onlyFailed: %v", err)
	}
	r := getRun(t, s, "a", runID)
	if r.State != state.RunQueued || !r.EndedAt.IsZero() || r.BackfillID != "bf-1" {
		t.Errorf("reset run = %+v, want queued, no EndedAt, backfill bf-1", r)
	}
	wantTime(t, "DueAt after ResetRun", r.DueAt, resetAt)
	want := map[string]state.TaskState{"ok": state.TaskSuccess, "bad": state.TaskNone, "uf": state.TaskNone, "sk": state.TaskNone, "later": state.TaskNone}
	for id, ti := range tasks(t, s, "a", runID) {
		if ti.State != want[id] {
			t.Errorf("after ResetRun onlyFailed: task %s state = %q, want %q", id, ti.State, want[id])
		}
	}
	runs, err := s.Runs(ctx, state.RunFilter{BackfillID: "bf-1"})
	if err != nil || len(runs) != 1 {
		t.Errorf("Runs by the recorded backfill = %v, %v; want the reset run", runIDs(runs), err)
	}

	// The reset run runs again; Try keeps growing.
	if err := s.StartRun(ctx, "a", runID, 1, resetAt); err != nil {
		t.Fatalf("StartRun of a reset run: %v", err)
	}
	if err := s.SetTaskStates(ctx, "a", runID, map[string]state.TaskState{"bad": state.TaskQueued}, resetAt); err != nil {
		t.Fatalf("SetTaskStates: %v", err)
	}
	bad := state.TaskKey{DAGID: "a", RunID: runID, TaskID: "bad"}
	ti := claim(t, s, state.Claim{Key: bad, Owner: "s1", Now: resetAt, Lease: time.Minute})
	if ti.Try != 2 {
		t.Errorf("claim after reset Try = %d, want 2 (the fencing token never goes back)", ti.Try)
	}
	finish(t, s, state.Finish{Key: bad, Try: 2, Owner: "s1", State: state.TaskSuccess, Now: resetAt.Add(time.Minute)})
	if err := s.EndRun(ctx, "a", runID, state.RunRunning, state.RunSuccess, resetAt.Add(2*time.Minute)); err != nil {
		t.Fatalf("EndRun: %v", err)
	}

	// A full reset puts every task back, successes included.
	if err := s.ResetRun(ctx, "a", runID, false, "", resetAt.Add(time.Hour)); err != nil {
		t.Fatalf("ResetRun all: %v", err)
	}
	for id, ti := range tasks(t, s, "a", runID) {
		if ti.State != state.TaskNone {
			t.Errorf("after ResetRun all: task %s state = %q, want none", id, ti.State)
		}
	}
	r = getRun(t, s, "a", runID)
	if r.State != state.RunQueued || !r.EndedAt.IsZero() {
		t.Errorf("run after ResetRun all = %+v, want queued without EndedAt", r)
	}
	wantTime(t, "DueAt after ResetRun all", r.DueAt, resetAt.Add(time.Hour))
	if r.BackfillID != "bf-1" {
		t.Errorf("ResetRun without a backfill ID changed BackfillID to %q", r.BackfillID)
	}
}

func testResetRunConflict(t *testing.T, s state.Store) {
	ctx := t.Context()
	k := queuedRun(t, s, "a", 0, "t", "u")[0]
	claim(t, s, state.Claim{Key: k, Owner: "s1", Now: t0, Lease: 30 * time.Second})
	for _, onlyFailed := range []bool{false, true} {
		err := s.ResetRun(ctx, "a", k.RunID, onlyFailed, "bf", t0.Add(10*time.Second))
		wantErr(t, fmt.Sprintf("ResetRun(onlyFailed=%t) with a running task", onlyFailed), err, state.ErrConflict)
	}
	r := getRun(t, s, "a", k.RunID)
	if r.State != state.RunRunning || r.BackfillID != "" {
		t.Errorf("refused ResetRun changed the run: %+v", r)
	}
	wantTime(t, "DueAt after a refused ResetRun", r.DueAt, newRun("a", 0, state.KindScheduled).DueAt)
	if ti := task(t, s, k); ti.State != state.TaskRunning || ti.Try != 1 {
		t.Errorf("refused ResetRun changed the task: %+v", ti)
	}

	// Once the lease expired, a full reset is allowed and fences the old try.
	if err := s.ResetRun(ctx, "a", k.RunID, false, "", t0.Add(31*time.Second)); err != nil {
		t.Fatalf("ResetRun after the lease expired: %v", err)
	}
	if ti := task(t, s, k); ti.State != state.TaskNone {
		t.Errorf("task after ResetRun = %+v, want none", ti)
	}
	_, err := s.FinishTask(ctx, state.Finish{Key: k, Try: 1, Owner: "s1", State: state.TaskSuccess, Now: t0.Add(time.Minute)})
	wantErr(t, "FinishTask of a try reset away", err, state.ErrFenced)
	if ti := task(t, s, k); ti.State != state.TaskNone {
		t.Errorf("task after a fenced finish = %+v, want none", ti)
	}
}

func testResetRunReleasesActiveSlot(t *testing.T, s state.Store) {
	ctx := t.Context()
	r1 := create(t, s, newRun("a", 0, state.KindScheduled), "t")
	r2 := create(t, s, newRun("a", 1, state.KindScheduled), "t")
	if err := s.StartRun(ctx, "a", r1.RunID, 1, t0); err != nil {
		t.Fatalf("StartRun: %v", err)
	}
	wantErr(t, "StartRun at the cap", s.StartRun(ctx, "a", r2.RunID, 1, t0), state.ErrMaxActiveRuns)
	if err := s.ResetRun(ctx, "a", r1.RunID, false, "", t0.Add(time.Minute)); err != nil {
		t.Fatalf("ResetRun of a running run: %v", err)
	}
	if st := getRun(t, s, "a", r1.RunID).State; st != state.RunQueued {
		t.Errorf("reset run state = %q, want queued", st)
	}
	if err := s.StartRun(ctx, "a", r2.RunID, 1, t0.Add(time.Minute)); err != nil {
		t.Fatalf("StartRun after the running run was reset: %v", err)
	}
	wantErr(t, "StartRun of the reset run at the cap", s.StartRun(ctx, "a", r1.RunID, 1, t0.Add(time.Minute)), state.ErrMaxActiveRuns)
	if err := s.EndRun(ctx, "a", r2.RunID, state.RunRunning, state.RunSuccess, t0.Add(2*time.Minute)); err != nil {
		t.Fatalf("EndRun: %v", err)
	}
	if err := s.StartRun(ctx, "a", r1.RunID, 1, t0.Add(2*time.Minute)); err != nil {
		t.Fatalf("StartRun of the reset run after a slot freed: %v", err)
	}
	// Resetting a queued run must not free a slot it never held.
	r3 := create(t, s, newRun("a", 2, state.KindScheduled), "t")
	if err := s.ResetRun(ctx, "a", r3.RunID, false, "", t0.Add(3*time.Minute)); err != nil {
		t.Fatalf("ResetRun of a queued run: %v", err)
	}
	wantErr(t, "StartRun at the cap after a queued run was reset", s.StartRun(ctx, "a", r3.RunID, 1, t0.Add(3*time.Minute)), state.ErrMaxActiveRuns)
}

func newBackfill(id string, created time.Time) state.Backfill {
	return state.Backfill{
		ID:            id,
		DAGID:         "load",
		From:          t0,
		To:            t0.Add(23 * time.Hour),
		Reprocess:     state.ReprocessFailed,
		MaxActiveRuns: 3,
		Params:        map[string]string{"mode": "full"},
		State:         state.BackfillRunning,
		Total:         24,
		Cursor:        t0,
		CreatedAt:     created,
		UpdatedAt:     created,
	}
}

func sameBackfill(t *testing.T, what string, got, want state.Backfill) {
	t.Helper()
	if got.ID != want.ID || got.DAGID != want.DAGID || got.Reprocess != want.Reprocess ||
		got.MaxActiveRuns != want.MaxActiveRuns || got.State != want.State || got.Total != want.Total ||
		got.Skipped != want.Skipped || !maps.Equal(got.Params, want.Params) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
	wantTime(t, what+" From", got.From, want.From)
	wantTime(t, what+" To", got.To, want.To)
	wantTime(t, what+" Cursor", got.Cursor, want.Cursor)
	wantTime(t, what+" CreatedAt", got.CreatedAt, want.CreatedAt)
	wantTime(t, what+" UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	wantTime(t, what+" EndedAt", got.EndedAt, want.EndedAt)
}

func testBackfills(t *testing.T, s state.Store) {
	ctx := t.Context()
	b1 := newBackfill("bf-1", t0)
	b2 := newBackfill("bf-2", t0.Add(time.Hour))
	b3 := newBackfill("bf-3", t0.Add(2*time.Hour))
	for _, b := range []state.Backfill{b2, b1, b3} {
		if err := s.CreateBackfill(ctx, b); err != nil {
			t.Fatalf("CreateBackfill %s: %v", b.ID, err)
		}
	}
	dup := newBackfill("bf-1", t0.Add(5*time.Hour))
	dup.DAGID = "other"
	wantErr(t, "CreateBackfill with a taken ID", s.CreateBackfill(ctx, dup), state.ErrExists)

	get := func(id string) state.Backfill {
		t.Helper()
		b, err := s.Backfill(ctx, id)
		if err != nil {
			t.Fatalf("Backfill %s: %v", id, err)
		}
		return b
	}
	sameBackfill(t, "Backfill bf-1", get("bf-1"), b1)
	all, err := s.Backfills(ctx)
	if err != nil {
		t.Fatalf("Backfills: %v", err)
	}
	var ids []string
	for _, b := range all {
		ids = append(ids, b.ID)
	}
	if !slices.Equal(ids, []string{"bf-3", "bf-2", "bf-1"}) {
		t.Errorf("Backfills = %v, want newest first", ids)
	}

	// Optimistic concurrency.
	u := b1
	u.Cursor = t0.Add(5 * time.Hour)
	u.Skipped = 2
	u.UpdatedAt = t0.Add(5 * time.Minute)
	if err := s.UpdateBackfill(ctx, u, b1.UpdatedAt); err != nil {
		t.Fatalf("UpdateBackfill: %v", err)
	}
	sameBackfill(t, "updated backfill", get("bf-1"), u)
	stale := b1
	stale.Cursor = t0.Add(9 * time.Hour)
	stale.UpdatedAt = t0.Add(6 * time.Minute)
	wantErr(t, "UpdateBackfill with a stale UpdatedAt", s.UpdateBackfill(ctx, stale, b1.UpdatedAt), state.ErrConflict)
	sameBackfill(t, "backfill after a stale update", get("bf-1"), u)

	// Cancelled stays cancelled.
	c := u
	c.State = state.BackfillCancelled
	c.UpdatedAt = t0.Add(7 * time.Minute)
	c.EndedAt = t0.Add(7 * time.Minute)
	if err := s.UpdateBackfill(ctx, c, u.UpdatedAt); err != nil {
		t.Fatalf("UpdateBackfill to cancelled: %v", err)
	}
	back := c
	back.State = state.BackfillRunning
	back.EndedAt = time.Time{}
	back.UpdatedAt = t0.Add(8 * time.Minute)
	wantErr(t, "UpdateBackfill of a cancelled backfill", s.UpdateBackfill(ctx, back, c.UpdatedAt), state.ErrConflict)
	sameBackfill(t, "cancelled backfill", get("bf-1"), c)
	sameBackfill(t, "untouched backfill", get("bf-2"), b2)
}

func testDAGPaused(t *testing.T, s state.Store) {
	ctx := t.Context()
	check := func(dagID string, want bool) {
		t.Helper()
		d, err := s.DAG(ctx, dagID)
		if err != nil {
			t.Fatalf("DAG %s: %v", dagID, err)
		}
		if d.DAGID != dagID || d.Paused != want {
			t.Errorf("DAG %s = %+v, want paused %t", dagID, d, want)
		}
	}
	check("never_seen", false)
	if err := s.SetPaused(ctx, "load", true); err != nil {
		t.Fatalf("SetPaused: %v", err)
	}
	check("load", true)
	check("other", false)
	if err := s.SetPaused(ctx, "load", true); err != nil {
		t.Fatalf("SetPaused again: %v", err)
	}
	check("load", true)
	if err := s.SetPaused(ctx, "load", false); err != nil {
		t.Fatalf("SetPaused false: %v", err)
	}
	check("load", false)
}

func testPrune(t *testing.T, s state.Store) {
	ctx := t.Context()
	// Each finished run ends at t0+hour+10m; Prune deletes those that ended
	// before t0+5h except each DAG's latest scheduled run.
	//   a@0 scheduled: older than a's latest scheduled run, deleted
	//   a@1 manual, a@3 backfill, a@4 manual: deleted (a@3 and a@4 are
	//       later than a@2, so "latest of any kind" is not what stays)
	//   a@2 scheduled: a's latest scheduled run, kept however old
	//   b@0 scheduled: deleted, b's latest scheduled run is b@2
	//   b@1 scheduled running, b@2 scheduled queued: kept
	//   b@6 manual, ended at 06:10: kept (recent)
	aOld := finishedRun(t, s, "a", 0, state.KindScheduled)
	aManual := finishedRun(t, s, "a", 1, state.KindManual)
	aLatest := finishedRun(t, s, "a", 2, state.KindScheduled)
	aBackfill := finishedRun(t, s, "a", 3, state.KindBackfill)
	aManual2 := finishedRun(t, s, "a", 4, state.KindManual)
	bOld := finishedRun(t, s, "b", 0, state.KindScheduled)
	bRecent := finishedRun(t, s, "b", 6, state.KindManual)
	bRunning := create(t, s, newRun("b", 1, state.KindScheduled), "t").RunID
	if err := s.StartRun(ctx, "b", bRunning, 5, t0); err != nil { // started long ago, still running
		t.Fatalf("StartRun: %v", err)
	}
	bQueued := create(t, s, newRun("b", 2, state.KindScheduled), "t").RunID

	done := newBackfill("bf-done", t0)
	cancelled := newBackfill("bf-cancelled", t0)
	late := newBackfill("bf-late", t0)
	active := newBackfill("bf-running", t0)
	for _, b := range []state.Backfill{done, cancelled, late, active} {
		if err := s.CreateBackfill(ctx, b); err != nil {
			t.Fatalf("CreateBackfill: %v", err)
		}
	}
	end := func(b state.Backfill, st state.BackfillState, at time.Time) {
		t.Helper()
		n := b
		n.State, n.EndedAt, n.UpdatedAt = st, at, at
		if err := s.UpdateBackfill(ctx, n, b.UpdatedAt); err != nil {
			t.Fatalf("UpdateBackfill %s: %v", b.ID, err)
		}
	}
	end(done, state.BackfillDone, t0.Add(10*time.Minute))
	end(cancelled, state.BackfillCancelled, t0.Add(10*time.Minute))
	end(late, state.BackfillDone, t0.Add(6*time.Hour))

	list := func(dagID string) []string {
		t.Helper()
		runs, err := s.Runs(ctx, state.RunFilter{DAGID: dagID})
		if err != nil {
			t.Fatalf("Runs(%s): %v", dagID, err)
		}
		return runIDs(runs)
	}
	latest := func(dagID, want string) {
		t.Helper()
		r, err := s.LatestRun(ctx, dagID, state.KindScheduled)
		if err != nil {
			t.Fatalf("LatestRun(%s, scheduled) after Prune: %v", dagID, err)
		}
		if r.RunID != want {
			t.Errorf("LatestRun(%s, scheduled) after Prune = %s, want %s", dagID, r.RunID, want)
		}
	}

	n, err := s.Prune(ctx, t0.Add(5*time.Hour))
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if n != 5 {
		t.Errorf("Prune deleted %d runs, want 5", n)
	}
	gone := []state.TaskKey{{DAGID: "a", RunID: aOld}, {DAGID: "a", RunID: aManual}, {DAGID: "a", RunID: aBackfill}, {DAGID: "a", RunID: aManual2}, {DAGID: "b", RunID: bOld}}
	for _, g := range gone {
		_, err := s.Run(ctx, g.DAGID, g.RunID)
		wantErr(t, "Run of a pruned run", err, state.ErrNotFound)
		_, err = s.Tasks(ctx, g.DAGID, g.RunID)
		wantErr(t, "Tasks of a pruned run", err, state.ErrNotFound)
	}
	if got := list("a"); !slices.Equal(got, []string{"a@02"}) {
		t.Errorf("runs of a after Prune = %v, want only the latest scheduled a@02", got)
	}
	if got := list("b"); !slices.Equal(got, []string{"b@06", "b@02", "b@01"}) {
		t.Errorf("runs of b after Prune = %v, want b@06, b@02, b@01", got)
	}
	for _, kept := range []state.TaskKey{{DAGID: "a", RunID: aLatest}, {DAGID: "b", RunID: bRecent}, {DAGID: "b", RunID: bRunning}, {DAGID: "b", RunID: bQueued}} {
		if len(tasks(t, s, kept.DAGID, kept.RunID)) == 0 {
			t.Errorf("kept run %s/%s lost its tasks", kept.DAGID, kept.RunID)
		}
	}
	if n := len(tasks(t, s, "a", aLatest)); n != 5 {
		t.Errorf("kept latest scheduled run has %d tasks, want 5", n)
	}
	latest("a", aLatest)
	latest("b", bQueued)

	// The pruned interval can be run again, with fresh task instances.
	create(t, s, newRun("a", 0, state.KindManual), "ok", "new")
	for id, ti := range tasks(t, s, "a", aOld) {
		if ti.State != state.TaskNone || ti.Try != 0 || ti.Failures != 0 {
			t.Errorf("re-created task %s = %+v, want a fresh instance", id, ti)
		}
	}
	if n := len(tasks(t, s, "a", aOld)); n != 2 {
		t.Errorf("re-created run has %d tasks, want 2", n)
	}

	all, err := s.Backfills(ctx)
	if err != nil {
		t.Fatalf("Backfills: %v", err)
	}
	var ids []string
	for _, b := range all {
		ids = append(ids, b.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"bf-late", "bf-running"}) {
		t.Errorf("backfills after Prune = %v, want bf-late and bf-running", ids)
	}
	_, err = s.Backfill(ctx, "bf-done")
	wantErr(t, "Backfill of a pruned backfill", err, state.ErrNotFound)

	n, err = s.Prune(ctx, t0.Add(5*time.Hour))
	if err != nil || n != 0 {
		t.Errorf("second Prune = %d, %v; want 0, nil", n, err)
	}

	// Once a later scheduled run exists, the one kept so far goes (a@10,
	// ended at 10:10, is now a's latest scheduled run and stays).
	aNext := finishedRun(t, s, "a", 10, state.KindScheduled)
	n, err = s.Prune(ctx, t0.Add(48*time.Hour))
	if err != nil {
		t.Fatalf("third Prune: %v", err)
	}
	// a@00 (the manual run re-created above), b@01 and b@02 are unfinished.
	if n != 2 {
		t.Errorf("third Prune deleted %d runs, want 2 (a@02 and b@06)", n)
	}
	if got := list("a"); !slices.Equal(got, []string{"a@10", "a@00"}) {
		t.Errorf("runs of a after the third Prune = %v, want a@10 and the unfinished a@00", got)
	}
	if got := list("b"); !slices.Equal(got, []string{"b@02", "b@01"}) {
		t.Errorf("runs of b after the third Prune = %v, want b@02 and b@01", got)
	}
	latest("a", aNext)
	latest("b", bQueued)
}

func testTimesRoundTrip(t *testing.T, s state.Store) {
	ctx := t.Context()
	// Microsecond precision in a non-UTC zone; a store may return UTC.
	zone := time.FixedZone("UTC+1", 3600)
	at := func(d time.Duration) time.Time {
		return time.Date(2026, 3, 1, 1, 0, 0, 123456000, zone).Add(d)
	}
	start, end := at(0), at(time.Hour)
	r := state.Run{
		DAGID: "a", RunID: state.RunID(start, end), Kind: state.KindManual,
		LogicalDate: start, IntervalStart: start, IntervalEnd: end,
		DueAt: at(2 * time.Minute), CreatedAt: at(time.Minute),
		Params: map[string]string{"": "empty key", "unicode": "é∂ ✓", "empty": ""},
	}
	create(t, s, r, "t")
	got := getRun(t, s, "a", r.RunID)
	wantTime(t, "LogicalDate", got.LogicalDate, r.LogicalDate)
	wantTime(t, "IntervalStart", got.IntervalStart, r.IntervalStart)
	wantTime(t, "IntervalEnd", got.IntervalEnd, r.IntervalEnd)
	wantTime(t, "DueAt", got.DueAt, r.DueAt)
	wantTime(t, "CreatedAt", got.CreatedAt, r.CreatedAt)
	if !maps.Equal(got.Params, r.Params) {
		t.Errorf("Params = %q, want %q", got.Params, r.Params)
	}
	if err := s.StartRun(ctx, "a", r.RunID, 1, at(3*time.Minute)); err != nil {
		t.Fatalf("StartRun: %v", err)
	}
	wantTime(t, "StartedAt", getRun(t, s, "a", r.RunID).StartedAt, at(3*time.Minute))

	k := state.TaskKey{DAGID: "a", RunID: r.RunID, TaskID: "t"}
	if err := s.SetTaskStates(ctx, "a", r.RunID, map[string]state.TaskState{"t": state.TaskQueued}, at(4*time.Minute)); err != nil {
		t.Fatalf("SetTaskStates: %v", err)
	}
	claim(t, s, state.Claim{Key: k, Owner: "s1", Now: at(5 * time.Minute), Lease: 90*time.Second + 7*time.Microsecond})
	ti := task(t, s, k)
	wantTime(t, "ReadyAt", ti.ReadyAt, at(4*time.Minute))
	wantTime(t, "task StartedAt", ti.StartedAt, at(5*time.Minute))
	wantTime(t, "LeaseUntil", ti.LeaseUntil, at(5*time.Minute+90*time.Second+7*time.Microsecond))
	if err := s.RenewLease(ctx, k, 1, "s1", at(10*time.Minute+time.Microsecond)); err != nil {
		t.Fatalf("RenewLease: %v", err)
	}
	wantTime(t, "renewed LeaseUntil", task(t, s, k).LeaseUntil, at(10*time.Minute+time.Microsecond))
	finish(t, s, state.Finish{Key: k, Try: 1, Owner: "s1", State: state.TaskUpForRetry, Failed: true, Now: at(6 * time.Minute), NextTryAt: at(7*time.Minute + 3*time.Microsecond)})
	ti = task(t, s, k)
	wantTime(t, "NextTryAt", ti.NextTryAt, at(7*time.Minute+3*time.Microsecond))
	// Claimable exactly at NextTryAt, not a microsecond before.
	_, err := s.ClaimTask(ctx, state.Claim{Key: k, Owner: "s1", Now: at(7*time.Minute + 2*time.Microsecond), Lease: time.Minute})
	wantErr(t, "ClaimTask a microsecond before NextTryAt", err, state.ErrNotClaimable)
	claim(t, s, state.Claim{Key: k, Owner: "s1", Now: at(7*time.Minute + 3*time.Microsecond), Lease: time.Minute})
	finish(t, s, state.Finish{Key: k, Try: 2, Owner: "s1", State: state.TaskSuccess, Now: at(8 * time.Minute)})
	wantTime(t, "task EndedAt", task(t, s, k).EndedAt, at(8*time.Minute))
	if err := s.EndRun(ctx, "a", r.RunID, state.RunRunning, state.RunSuccess, at(9*time.Minute)); err != nil {
		t.Fatalf("EndRun: %v", err)
	}
	wantTime(t, "run EndedAt", getRun(t, s, "a", r.RunID).EndedAt, at(9*time.Minute))

	b := newBackfill("bf", at(0))
	b.From, b.To, b.Cursor, b.UpdatedAt = at(time.Microsecond), at(time.Hour+time.Microsecond), at(2*time.Microsecond), at(3*time.Microsecond)
	if err := s.CreateBackfill(ctx, b); err != nil {
		t.Fatalf("CreateBackfill: %v", err)
	}
	got2, err := s.Backfill(ctx, "bf")
	if err != nil {
		t.Fatalf("Backfill: %v", err)
	}
	sameBackfill(t, "backfill", got2, b)
	// prevUpdatedAt compares at microsecond precision too.
	u := b
	u.UpdatedAt = at(4 * time.Microsecond)
	if err := s.UpdateBackfill(ctx, u, at(3*time.Microsecond).UTC()); err != nil {
		t.Errorf("UpdateBackfill with prevUpdatedAt in another location: %v", err)
	}
}
