// Package dag defines workflows as Go code: a DAG is a set of tasks with
// dependencies, each task runs an Operator (or pokes a Sensor), and the DAG is
// validated when it is built. A cycle is an error that names the cycle.
// Compress derives a copy on a faster clock (shorter schedule and waits), for
// demos.
//
// The package owns no state and runs nothing; the scheduler package runs DAGs
// and the state package records what happened.
package dag

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"
)

// TriggerRule says when a task runs given the states of its upstream tasks.
type TriggerRule string

// The trigger rules, with Airflow's meaning.
const (
	// AllSuccess runs when every upstream task succeeded. A failed upstream
	// makes the task upstream_failed; a skipped upstream skips it.
	AllSuccess TriggerRule = "all_success"
	// AllDone runs when every upstream task is finished, whatever its state.
	AllDone TriggerRule = "all_done"
	// OneFailed runs as soon as one upstream task failed; if all finish
	// without a failure the task is skipped.
	OneFailed TriggerRule = "one_failed"
	// OneSuccess runs as soon as one upstream task succeeded; if all finish
	// without a success the task is upstream_failed (skipped if all skipped).
	OneSuccess TriggerRule = "one_success"
	// NoneFailed runs when every upstream task is finished and none failed
	// (success or skipped).
	NoneFailed TriggerRule = "none_failed"
)

// Valid reports whether r is a known rule.
func (r TriggerRule) Valid() bool {
	switch r {
	case AllSuccess, AllDone, OneFailed, OneSuccess, NoneFailed:
		return true
	}
	return false
}

// ErrSkip, returned (possibly wrapped) by an operator, marks the task skipped
// rather than failed.
var ErrSkip = errors.New("task skipped")

// Interval is a run's data interval, [Start, End).
type Interval struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// String formats the interval in UTC.
func (i Interval) String() string {
	return i.Start.UTC().Format(time.RFC3339) + "/" + i.End.UTC().Format(time.RFC3339)
}

// TaskContext is what a running task knows about itself.
type TaskContext struct {
	DAGID       string
	RunID       string
	TaskID      string
	LogicalDate time.Time
	Interval    Interval
	Params      map[string]string
	// Try is the fencing token of this execution: it grows by one each time
	// the task is claimed.
	Try int
	// DryRun is true under `orchestrate tasks test`: nothing is recorded.
	DryRun bool
	Logger *slog.Logger
	// Now is the scheduler's clock.
	Now func() time.Time
}

// Param returns the named run parameter, or def when it is unset.
func (tc *TaskContext) Param(name, def string) string {
	if v, ok := tc.Params[name]; ok && v != "" {
		return v
	}
	return def
}

// Operator is a unit of work.
type Operator interface {
	Execute(ctx context.Context, tc *TaskContext) error
}

// Func adapts a function to Operator.
type Func func(ctx context.Context, tc *TaskContext) error

// Execute calls f.
func (f Func) Execute(ctx context.Context, tc *TaskContext) error { return f(ctx, tc) }

// Sensor waits for a condition. Poke reports whether the condition holds; a
// false result reschedules the task after its poke interval without holding a
// worker slot. The returned string, when not empty, says what is still
// missing and is reported if the sensor times out.
type Sensor interface {
	Poke(ctx context.Context, tc *TaskContext) (done bool, waiting string, err error)
}

// Task is one node of a DAG.
type Task struct {
	ID string
	// Exactly one of Operator and Sensor is set.
	Operator Operator
	Sensor   Sensor
	// Upstream lists the IDs of the tasks this one depends on.
	Upstream []string
	// TriggerRule defaults to AllSuccess.
	TriggerRule TriggerRule
	// Retries is how many times a failed execution is retried.
	Retries int
	// RetryDelay is the first retry's delay; each next one doubles, up to
	// MaxRetryDelay, with ±20% jitter. Defaults: 30s and 10m.
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// Timeout bounds one execution (or one poke). Zero means DefaultTimeout.
	Timeout time.Duration
	// Pool names the concurrency pool the task takes a slot from; empty is
	// the default pool.
	Pool string
	// PokeInterval and SensorTimeout apply to sensors: the task fails when the
	// condition has not held SensorTimeout after the first poke.
	PokeInterval  time.Duration
	SensorTimeout time.Duration
	// ExpectedDuration, when set, raises a deadline-miss alert when one
	// execution runs longer.
	ExpectedDuration time.Duration
}

// DefaultTimeout bounds a task execution when Task.Timeout is zero.
const DefaultTimeout = time.Hour

// IsSensor reports whether the task is a sensor.
func (t *Task) IsSensor() bool { return t.Sensor != nil }

// Catchup says which missed intervals the scheduler creates runs for after
// downtime.
type Catchup struct {
	// Mode is CatchupAll, CatchupLatest or CatchupLateness.
	Mode CatchupMode
	// MaxLateness bounds CatchupLateness: intervals that ended longer ago are
	// not run.
	MaxLateness time.Duration
}

// CatchupMode names a catchup policy.
type CatchupMode string

// The catchup policies.
const (
	CatchupAll      CatchupMode = "all"
	CatchupLatest   CatchupMode = "latest"
	CatchupLateness CatchupMode = "max_lateness"
)

// DAG is a validated workflow definition. Build it with New.
type DAG struct {
	ID          string
	Description string
	// Schedule is a cron expression (5 fields or a descriptor such as
	// @hourly) read in Location; empty means manual triggers only.
	Schedule string
	Location *time.Location
	// DST says what happens on the days a schedule's wall-clock time is
	// skipped or repeated. See the schedule package.
	DST DSTPolicy
	// Start is the first data interval's lower bound; no run is scheduled
	// for earlier intervals.
	Start   time.Time
	Catchup Catchup
	// MaxActiveRuns caps the DAG's running runs (default 16).
	MaxActiveRuns int
	// RunDeadline, when set, raises a deadline-miss alert if a run has not
	// finished that long after its data interval ends.
	RunDeadline time.Duration
	// Params are the default run parameters; a manual trigger may override them.
	Params map[string]string
	// Tags help `dags list`.
	Tags []string

	tasks []*Task
	index map[string]*Task
	down  map[string][]string
	order []string
}

// DSTPolicy is the explicit policy for wall-clock times that daylight saving
// time skips (spring forward) or repeats (fall back).
type DSTPolicy struct {
	// Gap: "shift" (default) runs a skipped time once, at the first instant
	// after the gap; "skip" does not run it that day.
	Gap string `json:"gap"`
	// Repeat: "first" (default) runs a repeated time once, at its first
	// occurrence; "both" runs it at both occurrences.
	Repeat string `json:"repeat"`
}

// The DST policy values.
const (
	GapShift    = "shift"
	GapSkip     = "skip"
	RepeatFirst = "first"
	RepeatBoth  = "both"
)

var idPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// DefaultMaxActiveRuns applies when DAG.MaxActiveRuns is zero.
const DefaultMaxActiveRuns = 16

// New validates spec and tasks and returns the DAG. Every problem is
// reported, joined; a cycle is reported as "cycle: a -> b -> a".
func New(spec DAG, tasks ...*Task) (*DAG, error) {
	d := spec
	d.tasks = nil
	d.index = make(map[string]*Task, len(tasks))
	d.down = make(map[string][]string, len(tasks))
	var errs []error
	if !idPattern.MatchString(d.ID) {
		errs = append(errs, fmt.Errorf("dag id %q: want lower-case letters, digits and _ , starting with a letter", d.ID))
	}
	if d.Location == nil {
		d.Location = time.UTC
	}
	if d.MaxActiveRuns == 0 {
		d.MaxActiveRuns = DefaultMaxActiveRuns
	}
	if d.MaxActiveRuns < 0 {
		errs = append(errs, fmt.Errorf("dag %s: max active runs %d < 0", d.ID, d.MaxActiveRuns))
	}
	if d.Catchup.Mode == "" {
		d.Catchup.Mode = CatchupAll
	}
	switch d.Catchup.Mode {
	case CatchupAll, CatchupLatest:
	case CatchupLateness:
		if d.Catchup.MaxLateness <= 0 {
			errs = append(errs, fmt.Errorf("dag %s: catchup max_lateness needs a positive MaxLateness", d.ID))
		}
	default:
		errs = append(errs, fmt.Errorf("dag %s: unknown catchup mode %q", d.ID, d.Catchup.Mode))
	}
	if d.DST.Gap == "" {
		d.DST.Gap = GapShift
	}
	if d.DST.Repeat == "" {
		d.DST.Repeat = RepeatFirst
	}
	if d.DST.Gap != GapShift && d.DST.Gap != GapSkip {
		errs = append(errs, fmt.Errorf("dag %s: unknown DST gap policy %q (shift or skip)", d.ID, d.DST.Gap))
	}
	if d.DST.Repeat != RepeatFirst && d.DST.Repeat != RepeatBoth {
		errs = append(errs, fmt.Errorf("dag %s: unknown DST repeat policy %q (first or both)", d.ID, d.DST.Repeat))
	}
	if len(tasks) == 0 {
		errs = append(errs, fmt.Errorf("dag %s: no tasks", d.ID))
	}
	for _, t := range tasks {
		if t == nil {
			errs = append(errs, fmt.Errorf("dag %s: nil task", d.ID))
			continue
		}
		c := *t
		c.Upstream = slices.Clone(t.Upstream)
		if !idPattern.MatchString(c.ID) {
			errs = append(errs, fmt.Errorf("dag %s: task id %q: want lower-case letters, digits and _", d.ID, c.ID))
		}
		if _, dup := d.index[c.ID]; dup {
			errs = append(errs, fmt.Errorf("dag %s: task %s defined twice", d.ID, c.ID))
			continue
		}
		if (c.Operator == nil) == (c.Sensor == nil) {
			errs = append(errs, fmt.Errorf("dag %s: task %s needs exactly one of Operator and Sensor", d.ID, c.ID))
		}
		if c.TriggerRule == "" {
			c.TriggerRule = AllSuccess
		}
		if !c.TriggerRule.Valid() {
			errs = append(errs, fmt.Errorf("dag %s: task %s: unknown trigger rule %q", d.ID, c.ID, c.TriggerRule))
		}
		if c.Retries < 0 {
			errs = append(errs, fmt.Errorf("dag %s: task %s: retries %d < 0", d.ID, c.ID, c.Retries))
		}
		if c.RetryDelay == 0 {
			c.RetryDelay = 30 * time.Second
		}
		if c.MaxRetryDelay == 0 {
			c.MaxRetryDelay = 10 * time.Minute
		}
		if c.Timeout == 0 {
			c.Timeout = DefaultTimeout
		}
		if c.Sensor != nil {
			if c.PokeInterval <= 0 {
				c.PokeInterval = time.Minute
			}
			if c.SensorTimeout <= 0 {
				c.SensorTimeout = 6 * time.Hour
			}
		}
		d.index[c.ID] = &c
		d.tasks = append(d.tasks, &c)
	}
	for _, t := range d.tasks {
		seen := map[string]bool{}
		for _, u := range t.Upstream {
			if seen[u] {
				errs = append(errs, fmt.Errorf("dag %s: task %s lists upstream %s twice", d.ID, t.ID, u))
				continue
			}
			seen[u] = true
			if _, ok := d.index[u]; !ok {
				errs = append(errs, fmt.Errorf("dag %s: task %s depends on unknown task %s", d.ID, t.ID, u))
				continue
			}
			d.down[u] = append(d.down[u], t.ID)
		}
	}
	if len(errs) == 0 {
		order, cycle := d.topo()
		if cycle != nil {
			errs = append(errs, fmt.Errorf("dag %s: cycle: %s", d.ID, strings.Join(cycle, " -> ")))
		}
		d.order = order
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &d, nil
}

// topo returns the tasks in a deterministic topological order, or the first
// cycle found as a path that starts and ends with the same task.
func (d *DAG) topo() (order []string, cycle []string) {
	const (
		white = iota
		grey
		black
	)
	color := make(map[string]int, len(d.tasks))
	var stack []string
	var visit func(id string) []string
	visit = func(id string) []string {
		color[id] = grey
		stack = append(stack, id)
		ups := slices.Clone(d.index[id].Upstream)
		slices.Sort(ups)
		for _, u := range ups {
			switch color[u] {
			case grey:
				i := slices.Index(stack, u)
				c := slices.Clone(stack[i:])
				// stack holds a downstream -> upstream path;
				// report it in dependency order (upstream first), starting
				// with the smallest ID so the message is stable.
				slices.Reverse(c)
				m := slices.Index(c, slices.Min(c))
				c = append(c[m:], c[:m]...)
				return append(c, c[0])
			case white:
				if c := visit(u); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[id] = black
		order = append(order, id)
		return nil
	}
	ids := make([]string, 0, len(d.tasks))
	for _, t := range d.tasks {
		ids = append(ids, t.ID)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if color[id] == white {
			if c := visit(id); c != nil {
				return nil, c
			}
		}
	}
	return order, nil
}

// Tasks returns the tasks in topological order (upstream first).
func (d *DAG) Tasks() []*Task {
	out := make([]*Task, 0, len(d.order))
	for _, id := range d.order {
		out = append(out, d.index[id])
	}
	return out
}

// Task returns the task with the given ID.
func (d *DAG) Task(id string) (*Task, bool) {
	t, ok := d.index[id]
	return t, ok
}

// Downstream returns the IDs of the tasks that depend directly on id.
func (d *DAG) Downstream(id string) []string { return slices.Clone(d.down[id]) }

// Roots returns the tasks with no upstream.
func (d *DAG) Roots() []string {
	var out []string
	for _, id := range d.order {
		if len(d.index[id].Upstream) == 0 {
			out = append(out, id)
		}
	}
	return out
}
