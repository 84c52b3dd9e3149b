package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/schedule"
	"github.com/labplatform/platform/orchestrate/state"
)

// runRef is a short view of a run in the DAG listings.
type runRef struct {
	RunID       string         `json:"run_id"`
	Kind        state.RunKind  `json:"kind"`
	State       state.RunState `json:"state"`
	LogicalDate time.Time      `json:"logical_date"`
}

// dagSummary is one row of "dags list".
type dagSummary struct {
	DAGID       string   `json:"dag_id"`
	Description string   `json:"description,omitempty"`
	Schedule    string   `json:"schedule"`
	TimeZone    string   `json:"time_zone"`
	Paused      bool     `json:"paused"`
	Tasks       int      `json:"tasks"`
	Tags        []string `json:"tags,omitempty"`
	// NextDue is when the next scheduled run is due; Pending counts the
	// complete intervals without a scheduled run yet (due now).
	NextDue   time.Time `json:"next_due,omitzero"`
	Pending   int       `json:"pending"`
	LatestRun *runRef   `json:"latest_run"`

	loc *time.Location
}

// summarize reads d's stored state and computes its next due time at now.
func summarize(ctx context.Context, st state.Store, d *dag.DAG, now time.Time) (dagSummary, error) {
	s := dagSummary{
		DAGID: d.ID, Description: d.Description, Schedule: d.Schedule, TimeZone: d.Location.String(),
		Tasks: len(d.Tasks()), Tags: d.Tags, loc: d.Location,
	}
	info, err := st.DAG(ctx, d.ID)
	if err != nil {
		return s, fmt.Errorf("read dag %s: %w", d.ID, err)
	}
	s.Paused = info.Paused
	latest, err := st.LatestRun(ctx, d.ID, "")
	switch {
	case err == nil:
		s.LatestRun = &runRef{RunID: latest.RunID, Kind: latest.Kind, State: latest.State, LogicalDate: latest.LogicalDate}
	case errors.Is(err, state.ErrNotFound):
	default:
		return s, fmt.Errorf("latest run of %s: %w", d.ID, err)
	}
	sc, err := schedule.For(d)
	if err != nil || sc == nil {
		return s, err
	}
	var last *dag.Interval
	r, err := st.LatestRun(ctx, d.ID, state.KindScheduled)
	switch {
	case err == nil:
		last = &dag.Interval{Start: r.IntervalStart, End: r.IntervalEnd}
	case errors.Is(err, state.ErrNotFound):
	default:
		return s, fmt.Errorf("latest scheduled run of %s: %w", d.ID, err)
	}
	if pending := schedule.Plan(sc, d.Start, last, now, d.Catchup); len(pending) > 0 {
		s.Pending, s.NextDue = len(pending), pending[0].End
		return s, nil
	}
	// The interval containing now (or the first one, for a DAG that starts
	// later) is due when it ends.
	from := now
	if d.Start.After(now) {
		from = d.Start.Add(-time.Nanosecond)
	}
	first := sc.Next(from)
	if d.Start.After(now) {
		s.NextDue = sc.Next(first)
	} else {
		s.NextDue = first
	}
	return s, nil
}

func (a *app) dagsList(ctx context.Context, args []string) error {
	var c common
	fs := a.flagSet("dags list", &c)
	if _, err := a.parse(fs, &c, args, "", 0, 0); err != nil {
		return err
	}
	s, err := a.open(ctx, &c, needs{store: true})
	if err != nil {
		return err
	}
	defer s.Close()
	now := a.now()
	out := make([]dagSummary, 0, len(s.dags))
	for _, d := range s.dags {
		sum, err := summarize(ctx, s.store, d, now)
		if err != nil {
			return err
		}
		out = append(out, sum)
	}
	if c.json {
		return writeJSON(a.stdout, out)
	}
	tw := table(a.stdout)
	fmt.Fprintln(tw, "DAG\tSCHEDULE\tTIME ZONE\tPAUSED\tTASKS\tNEXT DUE\tLATEST RUN")
	for _, d := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.DAGID, orManual(d.Schedule), d.TimeZone,
			yesNo(d.Paused), d.Tasks, d.nextDue(), d.latest())
	}
	return tw.Flush()
}

func (d dagSummary) nextDue() string {
	switch {
	case d.Schedule == "":
		return "-"
	case d.Paused:
		return "- (paused)"
	case d.Pending > 0:
		return fmt.Sprintf("now (%d pending)", d.Pending)
	}
	return fmtLocal(d.NextDue, d.loc)
}

func (d dagSummary) latest() string {
	if d.LatestRun == nil {
		return "-"
	}
	return fmt.Sprintf("%s %s (%s)", d.LatestRun.State, d.LatestRun.RunID, d.LatestRun.Kind)
}

func orManual(expr string) string {
	if expr == "" {
		return "manual"
	}
	return expr
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// taskView is one task in "dags show".
type taskView struct {
	ID            string          `json:"id"`
	Layer         int             `json:"layer"`
	Kind          string          `json:"kind"`
	Upstream      []string        `json:"upstream"`
	Downstream    []string        `json:"downstream"`
	TriggerRule   dag.TriggerRule `json:"trigger_rule"`
	Retries       int             `json:"retries"`
	RetryDelay    string          `json:"retry_delay"`
	Timeout       string          `json:"timeout"`
	Pool          string          `json:"pool,omitempty"`
	PokeInterval  string          `json:"poke_interval,omitempty"`
	SensorTimeout string          `json:"sensor_timeout,omitempty"`
	Expected      string          `json:"expected_duration,omitempty"`
}

// dagView is "dags show".
type dagView struct {
	dagSummary
	ScheduleText  string            `json:"schedule_text,omitempty"`
	DST           dag.DSTPolicy     `json:"dst"`
	Start         time.Time         `json:"start,omitzero"`
	Catchup       string            `json:"catchup"`
	MaxActiveRuns int               `json:"max_active_runs"`
	RunDeadline   string            `json:"run_deadline,omitempty"`
	Params        map[string]string `json:"params,omitempty"`
	TaskList      []taskView        `json:"task_list"`
}

// layers returns each task's depth: 0 for roots, otherwise one more than
// its deepest upstream.
func layers(d *dag.DAG) map[string]int {
	depth := map[string]int{}
	for _, t := range d.Tasks() { // upstream first
		n := 0
		for _, u := range t.Upstream {
			n = max(n, depth[u]+1)
		}
		depth[t.ID] = n
	}
	return depth
}

// byLayer returns ids sorted by layer, then by ID.
func byLayer(d *dag.DAG, ids []string) []string {
	depth := layers(d)
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b string) int {
		if c := depth[a] - depth[b]; c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return out
}

func durationOrEmpty(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func viewDAG(sum dagSummary, d *dag.DAG) dagView {
	v := dagView{
		dagSummary: sum, DST: d.DST, Start: d.Start, Catchup: string(d.Catchup.Mode),
		MaxActiveRuns: d.MaxActiveRuns, RunDeadline: durationOrEmpty(d.RunDeadline), Params: d.Params,
	}
	if d.Catchup.Mode == dag.CatchupLateness {
		v.Catchup += " " + d.Catchup.MaxLateness.String()
	}
	if sc, err := schedule.For(d); err == nil && sc != nil {
		v.ScheduleText = sc.String()
	}
	depth := layers(d)
	for _, t := range d.Tasks() {
		tv := taskView{
			ID: t.ID, Layer: depth[t.ID], Kind: "operator",
			Upstream: byLayer(d, t.Upstream), Downstream: byLayer(d, d.Downstream(t.ID)),
			TriggerRule: t.TriggerRule, Retries: t.Retries, RetryDelay: t.RetryDelay.String(),
			Timeout: t.Timeout.String(), Pool: t.Pool, Expected: durationOrEmpty(t.ExpectedDuration),
		}
		if tv.Upstream == nil {
			tv.Upstream = []string{}
		}
		if tv.Downstream == nil {
			tv.Downstream = []string{}
		}
		if t.IsSensor() {
			tv.Kind = "sensor"
			tv.PokeInterval, tv.SensorTimeout = t.PokeInterval.String(), t.SensorTimeout.String()
		}
		v.TaskList = append(v.TaskList, tv)
	}
	slices.SortFunc(v.TaskList, func(a, b taskView) int {
		if c := a.Layer - b.Layer; c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return v
}

func (a *app) dagsShow(ctx context.Context, args []string) error {
	var c common
	fs := a.flagSet("dags show", &c)
	pos, err := a.parse(fs, &c, args, "<dag>", 1, 1)
	if err != nil {
		return err
	}
	s, d, err := a.openDAG(ctx, &c, needs{store: true}, pos[0])
	if err != nil {
		return err
	}
	defer s.Close()
	sum, err := summarize(ctx, s.store, d, a.now())
	if err != nil {
		return err
	}
	v := viewDAG(sum, d)
	if c.json {
		return writeJSON(a.stdout, v)
	}
	return printDAG(a.stdout, v, d)
}

func printDAG(w io.Writer, v dagView, d *dag.DAG) error {
	tw := table(w)
	row := func(k, val string) { fmt.Fprintf(tw, "%s:\t%s\n", k, val) }
	row("dag", v.DAGID)
	if v.Description != "" {
		row("description", v.Description)
	}
	if v.Schedule == "" {
		row("schedule", "manual (no schedule)")
	} else {
		row("schedule", v.ScheduleText)
		row("next due", v.nextDue())
	}
	row("paused", yesNo(v.Paused))
	if !v.Start.IsZero() {
		row("start", fmtLocal(v.Start, v.loc))
	}
	row("catchup", v.Catchup)
	row("max active runs", fmt.Sprint(v.MaxActiveRuns))
	if v.RunDeadline != "" {
		row("run deadline", v.RunDeadline)
	}
	row("params", fmtParams(v.Params))
	if len(v.Tags) > 0 {
		row("tags", strings.Join(v.Tags, ", "))
	}
	row("latest run", v.latest())
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nTasks (%d), by layer:\n", len(v.TaskList))
	tw = table(w)
	layer := -1
	for _, t := range v.TaskList {
		if t.Layer != layer {
			layer = t.Layer
			fmt.Fprintf(tw, "  layer %d\t\t\t\t\t\t\n", layer)
		}
		kind := t.Kind
		if t.Kind == "sensor" {
			kind = fmt.Sprintf("sensor (poke %s, give up after %s)", t.PokeInterval, t.SensorTimeout)
		}
		fmt.Fprintf(tw, "    %s\t%s\tretries %d\ttimeout %s\tpool %s\t%s\t%s\n", t.ID, t.TriggerRule,
			t.Retries, t.Timeout, orDash(t.Pool), kind, upstreamText(t.Upstream))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nGraph:")
	for _, line := range graph(d) {
		fmt.Fprintln(w, "  "+line)
	}
	return nil
}

func upstreamText(ups []string) string {
	if len(ups) == 0 {
		return "(root)"
	}
	return "<- " + strings.Join(ups, ", ")
}

// graph draws d as a tree from its roots, downstream to the right. Every
// task appears once: a task with several upstreams (a join) is drawn under
// the last of them (the deepest, then by ID) and names all of them after
// "<=". A sensor is marked [sensor], a trigger rule other than all_success
// is shown in braces.
func graph(d *dag.DAG) []string {
	parent := map[string]string{}
	for _, t := range d.Tasks() {
		if ups := byLayer(d, t.Upstream); len(ups) > 0 {
			parent[t.ID] = ups[len(ups)-1]
		}
	}
	label := func(t *dag.Task) string {
		l := t.ID
		if t.IsSensor() {
			l += " [sensor]"
		}
		if t.TriggerRule != dag.AllSuccess {
			l += " {" + string(t.TriggerRule) + "}"
		}
		if len(t.Upstream) > 1 {
			l += "  <= " + strings.Join(byLayer(d, t.Upstream), ", ")
		}
		return l
	}
	var lines []string
	var walk func(id, prefix, branch, indent string)
	walk = func(id, prefix, branch, indent string) {
		t, _ := d.Task(id)
		lines = append(lines, prefix+branch+label(t))
		prefix += indent
		var kids []string
		for _, k := range byLayer(d, d.Downstream(id)) {
			if parent[k] == id {
				kids = append(kids, k)
			}
		}
		for i, k := range kids {
			if i == len(kids)-1 {
				walk(k, prefix, "└─▶ ", "    ")
			} else {
				walk(k, prefix, "├─▶ ", "│   ")
			}
		}
	}
	for _, r := range byLayer(d, d.Roots()) {
		walk(r, "", "", "")
	}
	return lines
}
