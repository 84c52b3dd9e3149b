package dags_test

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/civil"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/dags"
	"github.com/labplatform/platform/orchestrate/schedule"
	"github.com/labplatform/platform/orchestrate/scheduler"
	"github.com/labplatform/platform/orchestrate/state"
	"github.com/labplatform/platform/orchestrate/state/boltstore"
)

// demoPlatform returns the platform's DAGs (with a fake lifecycle) and
// their demo versions.
func demoPlatform(t *testing.T, deps dags.Deps) (real, demo []*dag.DAG) {
	t.Helper()
	deps.Lifecycle = &fakeLifecycle{}
	real, err := dags.Platform(deps)
	if err != nil {
		t.Fatal(err)
	}
	demo, err = dags.Demo(real)
	if err != nil {
		t.Fatal(err)
	}
	if len(demo) != len(real) {
		t.Fatalf("Demo returned %d DAGs for %d", len(demo), len(real))
	}
	return real, demo
}

// TestDemoCompressesThePlatform checks each demo DAG's schedule, catchup,
// deadlines and task waits, that work bounds (timeouts) are kept, and that
// the real DAGs are left as they were.
func TestDemoCompressesThePlatform(t *testing.T) {
	t.Parallel()
	real, demo := demoPlatform(t, offlinePlatform(t).deps)
	type taskWant struct {
		retryDelay, poke, sensorTimeout, timeout time.Duration
	}
	for i, tc := range []struct {
		id          string
		schedule    string
		deadline    time.Duration
		catchup     dag.Catchup
		realSched   string
		realCatchup dag.Catchup
		tasks       map[string]taskWant
	}{
		{
			id: dags.BQLoadID, schedule: "* * * * *", deadline: 2 * time.Minute,
			catchup:   dag.Catchup{Mode: dag.CatchupLateness, MaxLateness: 2 * time.Minute},
			realSched: "@hourly", realCatchup: dag.Catchup{Mode: dag.CatchupLateness, MaxLateness: 48 * time.Hour},
			tasks: map[string]taskWant{
				dags.TaskWaitLineage:  {retryDelay: time.Second, poke: time.Second, sensorTimeout: 50 * time.Second, timeout: 5 * time.Minute},
				dags.TaskLoadStaging:  {retryDelay: time.Second, timeout: 30 * time.Minute},
				dags.TaskAssertCounts: {retryDelay: time.Second, timeout: 10 * time.Minute},
			},
		},
		{
			id: dags.QualityID, schedule: "2-59/15 * * * *", deadline: 6 * time.Minute,
			catchup:   dag.Catchup{Mode: dag.CatchupLateness, MaxLateness: 6 * time.Minute},
			realSched: "30 1 * * *", realCatchup: dag.Catchup{Mode: dag.CatchupLateness, MaxLateness: 7 * 24 * time.Hour},
			tasks: map[string]taskWant{
				dags.TaskComputeMetrics: {retryDelay: time.Second, timeout: 30 * time.Minute},
				dags.TaskSendAlerts:     {retryDelay: time.Second, timeout: 10 * time.Minute},
			},
		},
		{
			id: dags.LifecycleID, schedule: "7-59/15 * * * *", deadline: 0,
			catchup:   dag.Catchup{Mode: dag.CatchupLatest},
			realSched: "0 3 * * *", realCatchup: dag.Catchup{Mode: dag.CatchupLatest},
			tasks: map[string]taskWant{
				dags.TaskApplyPolicies: {retryDelay: 5 * time.Second, timeout: time.Hour},
				dags.TaskCostReport:    {retryDelay: 5 * time.Second, timeout: time.Hour},
			},
		},
	} {
		t.Run(tc.id, func(t *testing.T) {
			d, r := demo[i], real[i]
			if d.ID != tc.id || r.ID != tc.id {
				t.Fatalf("DAG %d is %s (real %s), want %s", i, d.ID, r.ID, tc.id)
			}
			if d.Schedule != tc.schedule || d.Catchup != tc.catchup || d.RunDeadline != tc.deadline {
				t.Errorf("schedule %q, catchup %+v, run deadline %s; want %q, %+v, %s", d.Schedule, d.Catchup, d.RunDeadline, tc.schedule, tc.catchup, tc.deadline)
			}
			if !slices.Contains(d.Tags, dags.DemoTag) || slices.Contains(r.Tags, dags.DemoTag) || !strings.Contains(d.Description, "Demo:") {
				t.Errorf("tags %v (real %v), description %q", d.Tags, r.Tags, d.Description)
			}
			if _, err := schedule.For(d); err != nil {
				t.Errorf("demo schedule does not parse: %v", err)
			}
			if d.MaxActiveRuns != r.MaxActiveRuns || !maps.Equal(d.Params, r.Params) || len(d.Tasks()) != len(r.Tasks()) {
				t.Errorf("settings differ from the real DAG: %+v vs %+v", d, r)
			}
			for id, want := range tc.tasks {
				task, ok := d.Task(id)
				if !ok {
					t.Fatalf("no task %s", id)
				}
				got := taskWant{retryDelay: task.RetryDelay, poke: task.PokeInterval, sensorTimeout: task.SensorTimeout, timeout: task.Timeout}
				if got != want {
					t.Errorf("task %s: %+v, want %+v", id, got, want)
				}
				if rt, _ := r.Task(id); rt == task || rt.Timeout != task.Timeout || rt.Retries != task.Retries {
					t.Errorf("task %s: shared with the real DAG or retries/timeout changed: %+v vs %+v", id, task, rt)
				}
			}
			// The real DAG keeps its own schedule and waits.
			if r.Schedule != tc.realSched || r.Catchup != tc.realCatchup {
				t.Errorf("real DAG changed: schedule %q, catchup %+v", r.Schedule, r.Catchup)
			}
		})
	}
	if w, _ := real[0].Task(dags.TaskWaitLineage); w.PokeInterval != time.Minute || w.SensorTimeout != 50*time.Minute {
		t.Errorf("real wait_lineage changed: %+v", w)
	}
}

// TestDemoSchedulesFire checks the minutes each demo DAG fires at over an
// hour and that the daily DAGs never fire in the same minute; then what a
// (re)start plans: only the intervals that can still finish within their
// run deadline, not one per missed minute.
func TestDemoSchedulesFire(t *testing.T) {
	t.Parallel()
	_, demo := demoPlatform(t, offlinePlatform(t).deps)
	hour := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	minutes := map[string][]int{}
	scheds := map[string]*schedule.Schedule{}
	for _, d := range demo {
		sc, err := schedule.For(d)
		if err != nil {
			t.Fatal(err)
		}
		scheds[d.ID] = sc
		for _, iv := range sc.Between(hour, hour.Add(59*time.Minute)) {
			minutes[d.ID] = append(minutes[d.ID], iv.Start.Minute())
			if d.ID == dags.BQLoadID && iv.End.Sub(iv.Start) != time.Minute {
				t.Errorf("bq_load interval %s is not one minute", iv)
			}
		}
	}
	if n := len(minutes[dags.BQLoadID]); n != 60 {
		t.Errorf("bq_load fires %d times an hour, want 60", n)
	}
	for id, want := range map[string][]int{dags.QualityID: {2, 17, 32, 47}, dags.LifecycleID: {7, 22, 37, 52}} {
		if !slices.Equal(minutes[id], want) {
			t.Errorf("%s fires at minutes %v, want %v", id, minutes[id], want)
		}
	}

	// hh:mm:30 on the day of hour.
	clock := func(hh, mm int) time.Time {
		return hour.Add(time.Duration(hh-10)*time.Hour + time.Duration(mm)*time.Minute + 30*time.Second)
	}
	for _, tc := range []struct {
		name  string
		down  bool // the store has the run of the interval around 10:00; else a fresh store
		now   time.Time
		plans map[string]int
	}{
		// Quality's interval ended at 12:02, lifecycle's at 11:52.
		{name: "fresh at 12:03", now: clock(12, 3), plans: map[string]int{dags.BQLoadID: 1, dags.QualityID: 1, dags.LifecycleID: 1}},
		// Quality's interval ended at 11:47: it could not finish within 6
		// minutes, the next one starts at 12:17.
		{name: "fresh at 12:10", now: clock(12, 10), plans: map[string]int{dags.BQLoadID: 1, dags.QualityID: 0, dags.LifecycleID: 1}},
		// Two hours down: bq_load's two intervals that end within its
		// 2-minute deadline, not 120.
		{name: "restart at 12:03", down: true, now: clock(12, 3), plans: map[string]int{dags.BQLoadID: 2, dags.QualityID: 1, dags.LifecycleID: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, d := range demo {
				var last *dag.Interval
				if tc.down {
					iv := scheds[d.ID].Containing(hour.Add(-time.Nanosecond))
					last = &iv
				}
				if got := schedule.Plan(scheds[d.ID], d.Start, last, tc.now, d.Catchup); len(got) != tc.plans[d.ID] {
					t.Errorf("%s: %d runs planned %v, want %d", d.ID, len(got), got, tc.plans[d.ID])
				}
			}
		})
	}
}

// dayRecorder is a DAG operator that records the run parameter "day" it
// sees.
type dayRecorder struct {
	mu   sync.Mutex
	days []string
}

func (r *dayRecorder) Execute(_ context.Context, tc *dag.TaskContext) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.days = append(r.days, tc.Param(dags.ParamDay, "(unset)"))
	return nil
}

// TestDemoQualityChecksTheDayOfItsIntervalStart runs the demo operators of
// stand-ins for quality and bq_load: quality's see the day its interval
// starts on unless the run names one, bq_load's are not changed, a DAG
// Demo does not know is returned as it is, and the caller's parameters are
// not modified.
func TestDemoQualityChecksTheDayOfItsIntervalStart(t *testing.T) {
	t.Parallel()
	quality, bqLoad := &dayRecorder{}, &dayRecorder{}
	build := func(id, sched string, op dag.Operator) *dag.DAG {
		d, err := dag.New(dag.DAG{ID: id, Schedule: sched, Params: map[string]string{dags.ParamDay: ""}}, &dag.Task{ID: "work", Operator: op})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	other := build("other", "@daily", &dayRecorder{})
	demo, err := dags.Demo([]*dag.DAG{build(dags.QualityID, "30 1 * * *", quality), other, build(dags.BQLoadID, "@hourly", bqLoad)})
	if err != nil {
		t.Fatal(err)
	}
	if len(demo) != 3 || demo[0].ID != dags.QualityID || demo[1] != other || demo[2].ID != dags.BQLoadID {
		t.Fatalf("Demo changed the order or the unknown DAG: %v", demo)
	}
	day := civil.Date{Year: 2026, Month: 11, Day: 20}
	run := func(d *dag.DAG, start time.Time, params map[string]string) {
		t.Helper()
		task, _ := d.Task("work")
		tc := runContext(d.ID, start, start.Add(15*time.Minute), start.Add(16*time.Minute), params)
		if err := task.Operator.Execute(t.Context(), &tc); err != nil {
			t.Fatal(err)
		}
	}
	given := map[string]string{dags.ParamDay: ""}
	run(demo[0], at(day, 10, 2), given)
	run(demo[0], at(day, 23, 47), nil)          // ends at 00:02 the next day: still the day
	run(demo[0], at(day.AddDays(1), 0, 2), nil) // the next day
	run(demo[0], at(day, 10, 2), map[string]string{dags.ParamDay: "2026-11-01"})
	run(demo[2], at(day, 10, 2), given)
	if want := []string{"2026-11-20", "2026-11-20", "2026-11-21", "2026-11-01"}; !slices.Equal(quality.days, want) {
		t.Errorf("demo quality saw days %v, want %v", quality.days, want)
	}
	if want := []string{"(unset)"}; !slices.Equal(bqLoad.days, want) {
		t.Errorf("demo bq_load saw days %v, want %v (its own rule, not a parameter)", bqLoad.days, want)
	}
	if given[dags.ParamDay] != "" {
		t.Errorf("the run's parameters were modified: %v", given)
	}
}

// TestDemoUnderTheScheduler runs the demo DAGs through the real engine, the
// embedded store and the emulators with a fake clock: at 11:48:30 a fresh
// scheduler runs bq_load for [11:47, 11:48), loading the day so far, and
// quality (on today) and lifecycle once each; a minute later, while that
// bq_load run still works, the next minute's run is created and waits
// behind it (one active run). Nothing raises an alert.
func TestDemoUnderTheScheduler(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 120*time.Second)
	p := newPlatform(t)
	lc := &fakeLifecycle{}
	deps := p.deps
	deps.Lifecycle = lc
	real, err := dags.Platform(deps)
	if err != nil {
		t.Fatal(err)
	}
	demo, err := dags.Demo(real)
	if err != nil {
		t.Fatal(err)
	}
	collected := at(loadDay, 8, 0)
	p.ship(t, ctx, rawFile{name: "robot=R001/date=2026-11-20/a.csv", rows: []result{
		{sample: "S1", patient: "P1", robot: "R001", test: "2345-7", value: 4.0, flag: "N", status: "final", collected: collected},
		{sample: "S2", patient: "P2", robot: "R001", test: "2160-0", value: 0.9, flag: "N", status: "final", collected: collected},
	}}, loadDay, nil)

	store, err := boltstore.Open(filepath.Join(t.TempDir(), "state.db"), boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	var mu sync.Mutex
	now := at(loadDay, 11, 48).Add(30 * time.Second)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	s, err := scheduler.New(store, demo, scheduler.Options{Now: clock, Notifier: p.alert, Jitter: func() float64 { return 0.5 }})
	if err != nil {
		t.Fatal(err)
	}
	// The first pass starts the runs; their tasks take seconds on the
	// emulator, so the second pass, a minute later on the clock, finds the
	// first bq_load run still running.
	s.Pass(ctx)
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	s.Pass(ctx)
	s.Drain(ctx)

	runs := map[string][]state.Run{}
	all, err := store.Runs(ctx, state.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		runs[r.DAGID] = append(runs[r.DAGID], r)
		if r.Kind != state.KindScheduled {
			t.Errorf("run %s %s: kind %s", r.DAGID, r.RunID, r.Kind)
		}
	}
	loads := runs[dags.BQLoadID]
	slices.SortFunc(loads, func(a, b state.Run) int { return a.IntervalStart.Compare(b.IntervalStart) })
	var intervals []string
	for _, r := range loads {
		intervals = append(intervals, dag.Interval{Start: r.IntervalStart, End: r.IntervalEnd}.String())
	}
	if want := []string{
		"2026-11-20T11:47:00Z/2026-11-20T11:48:00Z",
		"2026-11-20T11:48:00Z/2026-11-20T11:49:00Z",
	}; !slices.Equal(intervals, want) {
		t.Fatalf("bq_load runs %v, want one per minute %v", intervals, want)
	}
	// The second run waits for a pass after the first ended (or, had the
	// first ended before the second pass, it ran too).
	if loads[0].State != state.RunSuccess || (loads[1].State != state.RunQueued && loads[1].State != state.RunSuccess) {
		tis, _ := store.Tasks(ctx, dags.BQLoadID, loads[0].RunID)
		t.Errorf("bq_load runs %s %s and %s %s, want success then queued; first run's tasks %+v",
			loads[0].RunID, loads[0].State, loads[1].RunID, loads[1].State, tis)
	}
	if got := len(dayRows(t, ctx, p, loadDay)); got != 2 {
		t.Errorf("%d rows of %s in lab.results, want 2", got, loadDay)
	}
	for id, start := range map[string]time.Time{dags.QualityID: at(loadDay, 11, 32), dags.LifecycleID: at(loadDay, 11, 22)} {
		if r := runs[id]; len(r) != 1 || !r[0].IntervalStart.Equal(start) || r[0].State != state.RunSuccess {
			t.Errorf("%s runs %+v, want one for the interval starting at %s, succeeded", id, r, start.Format("15:04"))
		}
	}
	if want := []string{"Apply(false)", "Enforce(2026-11-20T11:37:00Z, false)", "Cost(2026-11-20T11:37:00Z)"}; !slices.Equal(lc.calls, want) {
		t.Errorf("lifecycle calls %v, want %v", lc.calls, want)
	}
	// Quality checked today (the real DAG would have checked yesterday):
	// robot R001's quarantine rate of the day is recorded.
	got := query(t, ctx, p.deps.BigQuery, "SELECT subject, metric, n_day FROM `lab.quality_metrics` WHERE day = @day AND scope = 'robot' ORDER BY subject", dayParam(loadDay))
	if len(got) != 1 || got[0][0] != "R001" || got[0][1] != dags.MetricQuarantineRate || got[0][2] != int64(2) {
		t.Errorf("quality metrics of %s: %v, want R001's quarantine rate over 2 rows", loadDay, got)
	}
	if alerts := p.alert.take(); len(alerts) != 0 {
		t.Errorf("alerts %+v, want none", alerts)
	}
}
