package main

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/dags"
	"github.com/labplatform/platform/orchestrate/state"
	"github.com/labplatform/platform/orchestrate/state/firestorestore"
	"github.com/labplatform/platform/testenv"
)

// demoDAGs stand in for the platform's DAGs: bq_load and quality with their
// real IDs, schedules and deadlines (so dags.Demo compresses them) and
// tasks that do nothing, and manual, which Demo does not know.
func demoDAGs(dags.Deps) ([]*dag.DAG, error) {
	noop := dag.Func(func(context.Context, *dag.TaskContext) error { return nil })
	bq, err := dag.New(dag.DAG{
		ID: dags.BQLoadID, Schedule: "@hourly", RunDeadline: 2 * time.Hour, MaxActiveRuns: 1,
		Catchup: dag.Catchup{Mode: dag.CatchupLateness, MaxLateness: 48 * time.Hour},
	}, &dag.Task{ID: "load", Operator: noop})
	if err != nil {
		return nil, err
	}
	quality, err := dag.New(dag.DAG{ID: dags.QualityID, Schedule: "30 1 * * *", RunDeadline: 6 * time.Hour, MaxActiveRuns: 1}, &dag.Task{ID: "check", Operator: noop})
	if err != nil {
		return nil, err
	}
	manual, err := dag.New(dag.DAG{ID: "manual"}, &dag.Task{ID: "hello", Operator: noop})
	if err != nil {
		return nil, err
	}
	return []*dag.DAG{bq, quality, manual}, nil
}

// TestDemoFlag: --demo (before or after the command) and ORCHESTRATE_DEMO
// make the commands see the demo schedules; without them the real ones; a
// malformed ORCHESTRATE_DEMO is a usage error.
func TestDemoFlag(t *testing.T) {
	h := newHarness(t)
	h.reg = demoDAGs
	schedules := func(args ...string) map[string]string {
		t.Helper()
		var list []dagSummary
		if err := json.Unmarshal([]byte(h.ok(append(args, "--json")...)), &list); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, d := range list {
			out[d.DAGID] = d.Schedule
		}
		return out
	}
	real := map[string]string{dags.BQLoadID: "@hourly", dags.QualityID: "30 1 * * *", "manual": ""}
	demo := map[string]string{dags.BQLoadID: dags.DemoBQLoadSchedule, dags.QualityID: dags.DemoQualitySchedule, "manual": ""}
	for _, tc := range []struct {
		name string
		env  string
		args []string
		want map[string]string
	}{
		{name: "default", args: []string{"dags", "list"}, want: real},
		{name: "flag after", args: []string{"dags", "list", "--demo"}, want: demo},
		{name: "flag before", args: []string{"--demo", "dags", "list"}, want: demo},
		{name: "env true", env: "true", args: []string{"dags", "list"}, want: demo},
		{name: "env 1", env: "1", args: []string{"dags", "list"}, want: demo},
		{name: "env false", env: "false", args: []string{"dags", "list"}, want: real},
		{name: "flag false beats env", env: "true", args: []string{"dags", "list", "--demo=false"}, want: real},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			h.vars["ORCHESTRATE_DEMO"] = tc.env
			if got := schedules(tc.args...); !maps.Equal(got, tc.want) {
				t.Errorf("schedules %v, want %v", got, tc.want)
			}
		})
	}
	h.t = t
	h.vars["ORCHESTRATE_DEMO"] = ""
	if out := h.ok("dags", "show", "bq_load", "--demo"); !strings.Contains(out, "* * * * *") || !strings.Contains(out, "Demo: every minute.") {
		t.Errorf("dags show bq_load --demo:\n%s", out)
	}
	h.vars["ORCHESTRATE_DEMO"] = "maybe"
	if errOut := h.fails(exitUsage, "dags", "list"); !strings.Contains(errOut, `ORCHESTRATE_DEMO="maybe": want true or false`) {
		t.Errorf("malformed ORCHESTRATE_DEMO: %s", errOut)
	}
	h.vars["ORCHESTRATE_DEMO"] = ""
	if out := h.ok("help"); !strings.Contains(out, "--demo") {
		t.Errorf("usage does not document --demo:\n%s", out)
	}
}

// TestSchedulerDemo runs "orchestrate scheduler --demo" on the Firestore
// store with a fake clock from 12:00: it logs demo mode once at start,
// bq_load gets one run per minute as the clock advances (the real schedule
// would give one run for 11:00-12:00 and nothing more), and quality runs
// on its 15-minute demo schedule.
func TestSchedulerDemo(t *testing.T) {
	ctx := withTimeout(t, 45*time.Second)
	p := env.NewTestPlatform(t)
	clients := testenv.NewTestClients(t, p)
	h := newHarness(t)
	h.reg = demoDAGs
	h.vars["LAB_PROJECT"] = p.Project
	h.vars["LAB_PREFIX"] = p.Prefix
	h.vars["ORCHESTRATE_STATE"] = "firestore"
	store := firestorestore.New(clients.Firestore, firestorestore.Options{})

	dctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var code int
	var daemonOut, daemonErr string
	wg.Go(func() {
		daemonOut, daemonErr, code = h.run(dctx, "scheduler", "--demo", "--metrics-addr=", "--poll", "20ms", "--owner", "demo-test", "--grace", "2s")
	})
	// waitRuns polls the store until bq_load has n successful runs.
	waitRuns := func(n int) []state.Run {
		t.Helper()
		for {
			runs, err := store.Runs(ctx, state.RunFilter{DAGID: dags.BQLoadID, States: []state.RunState{state.RunSuccess}})
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) >= n {
				return runs
			}
			select {
			case <-ctx.Done():
				stop()
				wg.Wait()
				t.Fatalf("%d successful bq_load runs, want %d; daemon exit %d:\n%s\n%s", len(runs), n, code, daemonOut, daemonErr)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	waitRuns(1)
	h.clk.Advance(time.Minute)
	waitRuns(2)
	h.clk.Advance(time.Minute)
	runs := waitRuns(3)
	stop()
	wg.Wait()
	if code != 0 {
		t.Fatalf("scheduler exit %d:\n%s", code, daemonErr)
	}

	var intervals []string
	for _, r := range runs {
		intervals = append(intervals, dag.Interval{Start: r.IntervalStart, End: r.IntervalEnd}.String())
	}
	slices.Sort(intervals)
	if want := []string{
		"2026-03-10T11:59:00Z/2026-03-10T12:00:00Z",
		"2026-03-10T12:00:00Z/2026-03-10T12:01:00Z",
		"2026-03-10T12:01:00Z/2026-03-10T12:02:00Z",
	}; !slices.Equal(intervals, want) {
		t.Errorf("bq_load runs %v, want one per minute %v", intervals, want)
	}
	// Quality's demo interval [11:32, 11:47) had ended 13 minutes before
	// the start, after its 6-minute deadline: no run for it; the pass that
	// created bq_load's 12:01 run at 12:02 created [11:47, 12:02).
	q, err := store.Runs(ctx, state.RunFilter{DAGID: dags.QualityID})
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].IntervalStart.Format("15:04") != "11:47" || q[0].IntervalEnd.Format("15:04") != "12:02" {
		t.Errorf("quality runs %+v, want one for [11:47, 12:02)", q)
	}
	if n := strings.Count(daemonErr, `"msg":"demo mode`); n != 1 {
		t.Errorf("demo mode logged %d times, want once:\n%s", n, daemonErr)
	}
	if !strings.Contains(daemonErr, `"schedules":{"bq_load":"* * * * *","quality":"2-59/15 * * * *"}`) {
		t.Errorf("the demo log line does not list the demo schedules:\n%s", daemonErr)
	}
}
