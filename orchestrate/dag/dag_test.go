package dag

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

var noop = Func(func(context.Context, *TaskContext) error { return nil })

func task(id string, up ...string) *Task { return &Task{ID: id, Operator: noop, Upstream: up} }

func TestNewOrdersTasksUpstreamFirst(t *testing.T) {
	d, err := New(DAG{ID: "etl"}, task("load", "extract", "schema"), task("extract"), task("schema"), task("report", "load"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range d.Tasks() {
		got = append(got, tk.ID)
	}
	pos := func(id string) int { return slices.Index(got, id) }
	if len(got) != 4 || pos("extract") > pos("load") || pos("schema") > pos("load") || pos("load") > pos("report") {
		t.Errorf("order %v is not topological", got)
	}
	if roots := d.Roots(); !slices.Equal(roots, []string{"extract", "schema"}) {
		t.Errorf("roots %v", roots)
	}
	if down := d.Downstream("load"); !slices.Equal(down, []string{"report"}) {
		t.Errorf("downstream of load %v", down)
	}
}

func TestNewNamesTheCycle(t *testing.T) {
	_, err := New(DAG{ID: "loop"}, task("a", "c"), task("b", "a"), task("c", "b"), task("d"))
	if err == nil {
		t.Fatal("cycle accepted")
	}
	if !strings.Contains(err.Error(), "cycle: a -> b -> c -> a") {
		t.Errorf("error %q does not name the cycle a -> b -> c -> a", err)
	}
	_, err = New(DAG{ID: "self"}, task("a", "a"))
	if err == nil || !strings.Contains(err.Error(), "cycle: a -> a") {
		t.Errorf("self loop: %v", err)
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(DAG{ID: "Bad-ID", Catchup: Catchup{Mode: "sometimes"}, DST: DSTPolicy{Gap: "jump"}},
		task("a", "missing"), task("a"), &Task{ID: "both", Operator: noop, Sensor: sensorFunc(nil)},
		&Task{ID: "rule", Operator: noop, TriggerRule: "most_success"}, &Task{ID: "neg", Operator: noop, Retries: -1})
	if err == nil {
		t.Fatal("invalid DAG accepted")
	}
	for _, want := range []string{`dag id "Bad-ID"`, "unknown catchup mode", "DST gap policy", "unknown task missing",
		"task a defined twice", "exactly one of Operator and Sensor", "unknown trigger rule", "retries -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	d, err := New(DAG{ID: "x"}, task("a"), &Task{ID: "s", Sensor: sensorFunc(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if d.Location != time.UTC || d.MaxActiveRuns != DefaultMaxActiveRuns || d.Catchup.Mode != CatchupAll ||
		d.DST != (DSTPolicy{Gap: GapShift, Repeat: RepeatFirst}) {
		t.Errorf("dag defaults: %+v", d)
	}
	a, _ := d.Task("a")
	if a.TriggerRule != AllSuccess || a.Timeout != DefaultTimeout || a.RetryDelay != 30*time.Second || a.MaxRetryDelay != 10*time.Minute {
		t.Errorf("task defaults: %+v", a)
	}
	s, _ := d.Task("s")
	if s.PokeInterval != time.Minute || s.SensorTimeout != 6*time.Hour {
		t.Errorf("sensor defaults: %+v", s)
	}
	if _, err := New(DAG{ID: "late", Catchup: Catchup{Mode: CatchupLateness}}, task("a")); err == nil {
		t.Error("max_lateness without a duration accepted")
	}
}

func TestNewCopiesTasks(t *testing.T) {
	a := task("a")
	b := task("b", "a")
	d, err := New(DAG{ID: "x"}, a, b)
	if err != nil {
		t.Fatal(err)
	}
	b.Upstream[0] = "zzz"
	b.Retries = 9
	got, _ := d.Task("b")
	if got.Upstream[0] != "a" || got.Retries != 0 {
		t.Errorf("DAG shares the caller's task: %+v", got)
	}
}

func TestTaskContextParam(t *testing.T) {
	tc := &TaskContext{Params: map[string]string{"day": "2026-03-01", "empty": ""}}
	if tc.Param("day", "x") != "2026-03-01" || tc.Param("empty", "d") != "d" || tc.Param("none", "d") != "d" {
		t.Error("Param does not fall back to the default for unset or empty values")
	}
}

type sensorFunc func(context.Context, *TaskContext) (bool, string, error)

func (f sensorFunc) Poke(ctx context.Context, tc *TaskContext) (bool, string, error) {
	return f(ctx, tc)
}
