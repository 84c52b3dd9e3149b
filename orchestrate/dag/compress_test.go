package dag

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// durations are the settings Compress changes, and the one it must not.
type durations struct {
	RetryDelay, MaxRetryDelay, PokeInterval, SensorTimeout, ExpectedDuration, Timeout time.Duration
}

func taskDurations(t *Task) durations {
	return durations{
		RetryDelay: t.RetryDelay, MaxRetryDelay: t.MaxRetryDelay, PokeInterval: t.PokeInterval,
		SensorTimeout: t.SensorTimeout, ExpectedDuration: t.ExpectedDuration, Timeout: t.Timeout,
	}
}

func TestCompress(t *testing.T) {
	hourly := func() *DAG {
		d, err := New(DAG{
			ID: "load", Schedule: "@hourly", RunDeadline: 2 * time.Hour,
			Catchup: Catchup{Mode: CatchupLateness, MaxLateness: 48 * time.Hour},
			Params:  map[string]string{"day": ""}, Tags: []string{"bq"},
		},
			&Task{ID: "wait", Sensor: sensorFunc(nil), PokeInterval: time.Minute, SensorTimeout: 50 * time.Minute, Timeout: 5 * time.Minute},
			&Task{ID: "work", Operator: noop, Upstream: []string{"wait"}, Retries: 2, RetryDelay: 5 * time.Minute,
				MaxRetryDelay: 2 * time.Hour, ExpectedDuration: 10 * time.Minute, Timeout: 30 * time.Minute},
			// Defaults (30 s and 10 min retry delays) and a sub-second delay.
			&Task{ID: "quick", Operator: noop, Upstream: []string{"work"}, RetryDelay: 500 * time.Millisecond},
		)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	manual := func() *DAG {
		d, err := New(DAG{ID: "manual"}, task("a"))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		name         string
		dag          *DAG
		factor       int
		schedule     string
		wantErr      string
		wantSchedule string
		wantDeadline time.Duration
		wantCatchup  Catchup
		wantTasks    map[string]durations
	}{
		{
			name: "an hour becomes a minute", dag: hourly(), factor: 60, schedule: "* * * * *",
			wantSchedule: "* * * * *", wantDeadline: 2 * time.Minute,
			wantCatchup: Catchup{Mode: CatchupLateness, MaxLateness: 48 * time.Minute},
			wantTasks: map[string]durations{
				// Timeout stays: work takes as long as it takes.
				"wait": {RetryDelay: time.Second, MaxRetryDelay: 10 * time.Second, PokeInterval: time.Second, SensorTimeout: 50 * time.Second, Timeout: 5 * time.Minute},
				"work": {RetryDelay: 5 * time.Second, MaxRetryDelay: 2 * time.Minute, ExpectedDuration: 10 * time.Second, Timeout: 30 * time.Minute},
				// 500 ms is shorter than the floor: kept, not lengthened.
				"quick": {RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 10 * time.Second, Timeout: DefaultTimeout},
			},
		},
		{
			name: "factor 1 copies", dag: hourly(), factor: 1, schedule: "*/5 * * * *",
			wantSchedule: "*/5 * * * *", wantDeadline: 2 * time.Hour,
			wantCatchup: Catchup{Mode: CatchupLateness, MaxLateness: 48 * time.Hour},
			wantTasks: map[string]durations{
				"wait":  {RetryDelay: 30 * time.Second, MaxRetryDelay: 10 * time.Minute, PokeInterval: time.Minute, SensorTimeout: 50 * time.Minute, Timeout: 5 * time.Minute},
				"work":  {RetryDelay: 5 * time.Minute, MaxRetryDelay: 2 * time.Hour, ExpectedDuration: 10 * time.Minute, Timeout: 30 * time.Minute},
				"quick": {RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 10 * time.Minute, Timeout: DefaultTimeout},
			},
		},
		{
			name: "floor of one second", dag: hourly(), factor: 1_000_000, schedule: "* * * * *",
			wantSchedule: "* * * * *", wantDeadline: time.Second,
			wantCatchup: Catchup{Mode: CatchupLateness, MaxLateness: time.Second},
			wantTasks: map[string]durations{
				"wait":  {RetryDelay: time.Second, MaxRetryDelay: time.Second, PokeInterval: time.Second, SensorTimeout: time.Second, Timeout: 5 * time.Minute},
				"work":  {RetryDelay: time.Second, MaxRetryDelay: time.Second, ExpectedDuration: time.Second, Timeout: 30 * time.Minute},
				"quick": {RetryDelay: 500 * time.Millisecond, MaxRetryDelay: time.Second, Timeout: DefaultTimeout},
			},
		},
		{
			name: "a manual DAG stays manual", dag: manual(), factor: 60, schedule: "* * * * *",
			wantSchedule: "", wantCatchup: Catchup{Mode: CatchupAll},
			wantTasks: map[string]durations{"a": {RetryDelay: time.Second, MaxRetryDelay: 10 * time.Second, Timeout: DefaultTimeout}},
		},
		{name: "factor 0", dag: hourly(), factor: 0, schedule: "* * * * *", wantErr: "compression factor 0 < 1"},
		{name: "negative factor", dag: hourly(), factor: -60, schedule: "* * * * *", wantErr: "compression factor -60 < 1"},
		{name: "scheduled without a schedule", dag: hourly(), factor: 60, schedule: "", wantErr: "dag load: compress a scheduled DAG: empty schedule"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := taskDurationsOf(tc.dag)
			got, err := Compress(tc.dag, tc.factor, tc.schedule)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Compress: err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Schedule != tc.wantSchedule || got.RunDeadline != tc.wantDeadline || got.Catchup != tc.wantCatchup {
				t.Errorf("schedule %q, run deadline %s, catchup %+v; want %q, %s, %+v",
					got.Schedule, got.RunDeadline, got.Catchup, tc.wantSchedule, tc.wantDeadline, tc.wantCatchup)
			}
			if got.ID != tc.dag.ID || got.Location != tc.dag.Location || got.MaxActiveRuns != tc.dag.MaxActiveRuns ||
				got.DST != tc.dag.DST || !got.Start.Equal(tc.dag.Start) || got.Description != tc.dag.Description {
				t.Errorf("settings changed: %+v, was %+v", got, tc.dag)
			}
			if gotTasks := taskDurationsOf(got); len(gotTasks) != len(tc.wantTasks) {
				t.Errorf("tasks %v, want %v", gotTasks, tc.wantTasks)
			}
			for id, want := range tc.wantTasks {
				task, ok := got.Task(id)
				if !ok {
					t.Errorf("task %s missing", id)
					continue
				}
				if d := taskDurations(task); d != want {
					t.Errorf("task %s: %+v, want %+v", id, d, want)
				}
				orig, _ := tc.dag.Task(id)
				if task == orig || !sameFunc(task.Operator, orig.Operator) || !sameFunc(task.Sensor, orig.Sensor) || task.Retries != orig.Retries ||
					task.TriggerRule != orig.TriggerRule || !slices.Equal(task.Upstream, orig.Upstream) {
					t.Errorf("task %s: not a copy of the original: %+v vs %+v", id, task, orig)
				}
			}
			if !slices.Equal(got.Roots(), tc.dag.Roots()) {
				t.Errorf("roots %v, want %v", got.Roots(), tc.dag.Roots())
			}
			if after := taskDurationsOf(tc.dag); !maps.Equal(after, before) {
				t.Errorf("the original changed: %v, was %v", after, before)
			}
		})
	}
}

// TestCompressSharesNothing changes every map, slice and task of the copy
// and checks the original did not move.
func TestCompressSharesNothing(t *testing.T) {
	d, err := New(DAG{ID: "x", Schedule: "@daily", Params: map[string]string{"day": ""}, Tags: []string{"a"}},
		task("a"), task("b", "a"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compress(d, 60, "*/15 * * * *")
	if err != nil {
		t.Fatal(err)
	}
	c.Params["day"] = "2026-01-01"
	c.Tags[0] = "changed"
	cb, _ := c.Task("b")
	cb.Upstream[0] = "zzz"
	cb.Retries = 7
	db, _ := d.Task("b")
	if d.Params["day"] != "" || d.Tags[0] != "a" || db.Upstream[0] != "a" || db.Retries != 0 || d.Schedule != "@daily" {
		t.Errorf("the copy shares state with the original: %+v, task b %+v", d, db)
	}
}

func taskDurationsOf(d *DAG) map[string]durations {
	out := map[string]durations{}
	for _, t := range d.Tasks() {
		out[t.ID] = taskDurations(t)
	}
	return out
}

// sameFunc reports whether two operators or sensors (funcs here) are the
// same value; funcs cannot be compared with ==.
func sameFunc(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer()
}
