package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/orchestrate/dags"
	"github.com/labplatform/platform/orchestrate/state"
	"github.com/labplatform/platform/orchestrate/state/boltstore"
)

func TestDagsListAndShow(t *testing.T) {
	h := newHarness(t)
	golden(t, "dags_list.golden", h.ok("dags", "list"))
	golden(t, "dags_show_etl.golden", h.ok("dags", "show", "etl"))

	var list []dagSummary
	if err := json.Unmarshal([]byte(h.ok("--json", "dags", "list")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].DAGID != "etl" || list[0].Tasks != 8 || list[0].TimeZone != "Europe/Berlin" || list[1].Schedule != "" {
		t.Errorf("dags list --json = %+v", list)
	}
	// The first interval starts at Start (2026-04-01 00:00 CEST) and is due
	// an hour later.
	if want := time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC); !list[0].NextDue.Equal(want) {
		t.Errorf("next due %s, want %s", list[0].NextDue, want)
	}

	var show dagView
	if err := json.Unmarshal([]byte(h.ok("dags", "show", "etl", "--json")), &show); err != nil {
		t.Fatal(err)
	}
	layer := map[string]int{}
	for _, tv := range show.TaskList {
		layer[tv.ID] = tv.Layer
	}
	for id, want := range map[string]int{"wait_input": 0, "extract": 1, "load_a": 2, "load_b": 2, "report": 3, "on_failure": 3, "archive": 3, "publish": 4} {
		if layer[id] != want {
			t.Errorf("task %s in layer %d, want %d", id, layer[id], want)
		}
	}
}

func TestGraphDrawsEveryTaskOnce(t *testing.T) {
	list, err := testDAGs(&clock{now: t0})(dags.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(graph(list[1]), "\n")
	want := strings.Join([]string{
		"wait_input [sensor]",
		"└─▶ extract",
		"    ├─▶ load_a",
		"    └─▶ load_b",
		"        ├─▶ archive",
		"        ├─▶ on_failure {one_failed}  <= load_a, load_b",
		"        └─▶ report {all_done}  <= load_a, load_b",
		"            └─▶ publish",
	}, "\n")
	if got != want {
		t.Errorf("graph:\n%s\nwant:\n%s", got, want)
	}
}

func TestTriggerThenRunsShow(t *testing.T) {
	h := newHarness(t)
	const runID = "20260309T100000Z_20260309T110000Z"
	out := h.ok("trigger", "etl", "--date", "2026-03-09T11:30:00+01:00", "--param", "fail=load_b")
	if !strings.Contains(out, "created run "+runID) || !strings.Contains(out, "params:    fail=load_b ready=yes") {
		t.Errorf("trigger output:\n%s", out)
	}
	errOut := h.fails(exitConflict, "trigger", "etl", "--date", "2026-03-09T10:00:00Z")
	if !strings.Contains(errOut, "orchestrate clear etl "+runID) {
		t.Errorf("duplicate trigger does not hint at clear: %s", errOut)
	}

	h.schedule(1)

	show := h.ok("runs", "show", "etl", runID)
	golden(t, "runs_show_failed.golden", show)
	_, chart, ok := strings.Cut(show, "Gantt: ")
	if !ok {
		t.Fatalf("no Gantt chart:\n%s", show)
	}
	rows := strings.Split(strings.TrimSpace(chart), "\n")[1:]
	if len(rows) != 8 {
		t.Errorf("Gantt has %d rows, want one per task (8):\n%s", len(rows), chart)
	}
	for _, r := range rows {
		id, _, _ := strings.Cut(r, " ")
		wantBar := id != "archive" // upstream_failed: never ran
		if strings.Contains(r, "█") != wantBar {
			t.Errorf("row %q: bar %v, want %v", r, !wantBar, wantBar)
		}
	}
	for _, want := range []string{"load_b", "✗", "failed", "upstream failed", "skipped"} {
		if !strings.Contains(chart, want) {
			t.Errorf("Gantt lacks %q:\n%s", want, chart)
		}
	}

	var detail runDetail
	if err := json.Unmarshal([]byte(h.ok("runs", "show", "etl", "latest", "--json")), &detail); err != nil {
		t.Fatal(err)
	}
	states := map[string]state.TaskState{}
	for _, ti := range detail.Tasks {
		states[ti.TaskID] = ti.State
	}
	if detail.Run.RunID != runID || detail.Run.State != state.RunFailed || states["load_b"] != state.TaskFailed ||
		states["archive"] != state.TaskUpstreamFailed || states["publish"] != state.TaskSkipped || states["on_failure"] != state.TaskSuccess {
		t.Errorf("runs show --json: run %s %s, tasks %v", detail.Run.RunID, detail.Run.State, states)
	}

	var runs []state.Run
	if err := json.Unmarshal([]byte(h.ok("runs", "list", "--json", "--state", "failed", "--dag", "etl")), &runs); err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].RunID != runID {
		t.Errorf("runs list --state failed = %+v", runs)
	}
	if out := h.ok("runs", "list", "--state", "success"); strings.TrimSpace(out) != "no runs" {
		t.Errorf("runs list --state success:\n%s", out)
	}

	// clear puts the failed tasks back; the run is queued again and its
	// successful tasks stay.
	h.ok("clear", "etl", runID)
	if err := json.Unmarshal([]byte(h.ok("runs", "show", "etl", runID, "--json")), &detail); err != nil {
		t.Fatal(err)
	}
	for _, ti := range detail.Tasks {
		states[ti.TaskID] = ti.State
	}
	if detail.Run.State != state.RunQueued || states["load_b"] != state.TaskNone || states["load_a"] != state.TaskSuccess {
		t.Errorf("after clear: run %s, tasks %v", detail.Run.State, states)
	}
	if out := h.ok("runs", "show", "etl", runID); !strings.Contains(out, "…") {
		t.Errorf("waiting tasks have no marker:\n%s", out)
	}
}

func TestBackfillCreateListCancel(t *testing.T) {
	h := newHarness(t)
	// A run inside the range already exists: reprocess missing skips it.
	h.ok("trigger", "etl", "--date", "2026-03-01T05:00:00+01:00")
	h.schedule(1)
	out := h.ok("backfill", "create", "etl", "--from", "2026-03-01", "--to", "2026-03-01")
	if !strings.Contains(out, "24 intervals of etl") || !strings.Contains(out, "[....................] 0% 0/24 · 0 running · 0 failed · skipped 0 · running") {
		t.Errorf("backfill create:\n%s", out)
	}

	h.schedule(1)
	list := h.ok("backfill", "list")
	golden(t, "backfill_list_done.golden", list)
	if !strings.Contains(list, "[####################] 100% 24/24 · 0 running · 0 failed · skipped 1 · done") {
		t.Errorf("backfill list after the scheduler ran it:\n%s", list)
	}

	h.clk.Advance(time.Minute) // a new backfill ID
	var created backfillStatus
	if err := json.Unmarshal([]byte(h.ok("backfill", "create", "etl", "--from", "2026-03-02T00:00:00Z", "--to", "2026-03-02T05:00:00Z",
		"--reprocess", "all", "--max-active-runs", "2", "--json")), &created); err != nil {
		t.Fatal(err)
	}
	if created.Backfill.Total != 6 || created.Backfill.MaxActiveRuns != 2 || created.Backfill.Reprocess != state.ReprocessAll {
		t.Errorf("created %+v", created.Backfill)
	}
	out = h.ok("backfill", "cancel", created.Backfill.ID)
	if !strings.Contains(out, "0/6 · 0 running · 0 failed · skipped 0 · cancelled") {
		t.Errorf("backfill cancel:\n%s", out)
	}
	if errOut := h.fails(exitConflict, "backfill", "cancel", created.Backfill.ID); !strings.Contains(errOut, "it is cancelled") {
		t.Errorf("second cancel: %s", errOut)
	}

	var all []backfillStatus
	if err := json.Unmarshal([]byte(h.ok("backfill", "list", "--json")), &all); err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Backfill.State != state.BackfillCancelled || all[1].Progress.Succeeded != 23 || all[1].Progress.Skipped != 1 {
		t.Errorf("backfill list --json = %+v", all)
	}
}

func TestProgressBar(t *testing.T) {
	st := backfillStatus{
		Backfill: state.Backfill{ID: "bq_load-2026", State: state.BackfillRunning, Total: 8760},
		Progress: progress{Total: 8760, Succeeded: 3587, Failed: 3, Running: 12, Done: 3590, Percent: 100 * 3590.0 / 8760},
	}
	if got, want := st.bar(), "bq_load-2026 [########............] 41% 3,590/8,760 · 12 running · 3 failed · skipped 0 · running"; got != want {
		t.Errorf("bar:\n got %s\nwant %s", got, want)
	}
	st.Progress.Queued = 1500
	if got := st.bar(); !strings.Contains(got, "· 12 running · 1,500 queued · 3 failed") {
		t.Errorf("bar with queued runs: %s", got)
	}
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 8760: "8,760", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestTasksTestWritesNothing(t *testing.T) {
	h := newHarness(t)
	h.ok("trigger", "etl", "--date", "2026-03-09")
	before := h.ok("runs", "list", "--json")
	sum := func() [32]byte {
		data, err := os.ReadFile(h.stateFile())
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(data)
	}
	fileBefore := sum()

	out := h.ok("tasks", "test", "etl", "extract", "--date", "2026-03-09")
	if !strings.Contains(out, "task extract of etl succeeded in 30s for 2026-03-08T23:00:00Z/2026-03-09T00:00:00Z") {
		t.Errorf("tasks test extract:\n%s", out)
	}
	out = h.ok("tasks", "test", "etl", "wait_input", "--date", "2026-03-09")
	if !strings.Contains(out, "condition met") {
		t.Errorf("tasks test of a sensor whose condition holds:\n%s", out)
	}
	h.fails(exitWaiting, "tasks", "test", "etl", "wait_input", "--date", "2026-03-09", "--param", "ready=no")
	outW, _, _ := h.run(t.Context(), "tasks", "test", "etl", "wait_input", "--date", "2026-03-09", "--param", "ready=no")
	if !strings.Contains(outW, "still waiting for: input for 2026-03-08T23:00:00Z") {
		t.Errorf("tasks test of a waiting sensor:\n%s", outW)
	}
	errOut := h.fails(exitFailure, "tasks", "test", "etl", "load_b", "--param", "fail=load_b")
	if !strings.Contains(errOut, "load_b failed as asked") {
		t.Errorf("tasks test of a failing task: %s", errOut)
	}
	var res testResult
	outJ, _, code := h.run(t.Context(), "tasks", "test", "etl", "wait_input", "--param", "ready=no", "--json")
	if err := json.Unmarshal([]byte(outJ), &res); err != nil || code != exitWaiting || res.Outcome != "waiting" || !res.Sensor {
		t.Errorf("tasks test --json: exit %d, %+v, %v", code, res, err)
	}
	if out := h.ok("tasks", "test", "etl", "publish"); !strings.Contains(out, "skipped itself: nothing new") {
		t.Errorf("tasks test of a task that skips:\n%s", out)
	}

	if sum() != fileBefore {
		t.Error("tasks test changed the state file")
	}
	if after := h.ok("runs", "list", "--json"); after != before {
		t.Errorf("runs after tasks test:\n%s\nbefore:\n%s", after, before)
	}
}

func TestLockedStateFile(t *testing.T) {
	h := newHarness(t)
	h.ok("pause", "manual") // creates the file and its directory
	st, err := boltstore.Open(h.stateFile(), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	errOut := h.fails(exitFailure, "dags", "list")
	if want := "state file " + h.stateFile() + " is in use, probably by a running `orchestrate scheduler`; stop it or use --state firestore"; !strings.Contains(errOut, want) {
		t.Errorf("stderr %q\nwant %q", errOut, want)
	}
}

func TestPauseUnpausePrune(t *testing.T) {
	h := newHarness(t)
	paused := func() map[string]bool {
		var list []dagSummary
		if err := json.Unmarshal([]byte(h.ok("dags", "list", "--json")), &list); err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, d := range list {
			m[d.DAGID] = d.Paused
		}
		return m
	}
	if out := h.ok("pause", "etl"); out != "etl paused\n" {
		t.Errorf("pause: %q", out)
	}
	if p := paused(); !p["etl"] || p["manual"] {
		t.Errorf("after pause etl: %v", p)
	}
	if out := h.ok("dags", "list"); !strings.Contains(out, "etl     0 * * * *  Europe/Berlin  yes     8      - (paused)") {
		t.Errorf("dags list of a paused DAG:\n%s", out)
	}
	h.ok("unpause", "etl")
	if p := paused(); p["etl"] {
		t.Errorf("after unpause etl: %v", p)
	}

	h.ok("trigger", "manual")
	h.schedule(2)
	h.clk.Advance(48 * time.Hour)
	if out := h.ok("state", "prune", "--older-than", "72h"); !strings.Contains(out, "deleted 0 runs") {
		t.Errorf("prune of nothing: %s", out)
	}
	if out := h.ok("state", "prune", "--older-than", "24h"); !strings.Contains(out, "deleted 1 runs") {
		t.Errorf("prune: %s", out)
	}
	if out := h.ok("runs", "list"); strings.TrimSpace(out) != "no runs" {
		t.Errorf("runs after prune:\n%s", out)
	}
	h.fails(exitUsage, "state", "prune", "--older-than", "-1h")
}

func TestFlagsBeforeAndAfterArguments(t *testing.T) {
	h := newHarness(t)
	other := h.stateFile() + ".other"
	h.ok("--state-file", other, "trigger", "manual", "--json")
	// The trigger went to the other file: the default one has no run.
	if out := h.ok("runs", "list"); strings.TrimSpace(out) != "no runs" {
		t.Errorf("default file:\n%s", out)
	}
	var runs []state.Run
	if err := json.Unmarshal([]byte(h.ok("runs", "list", "--state-file", other, "--json")), &runs); err != nil || len(runs) != 1 {
		t.Errorf("other file: %v %v", runs, err)
	}
	// Positional arguments after flags, and after "--".
	h.ok("pause", "--json", "--", "etl")
}

// withTimeout returns a context that ends after d or with the test.
func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
