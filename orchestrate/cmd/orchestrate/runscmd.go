package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/scheduler"
	"github.com/labplatform/platform/orchestrate/state"
)

// paramErr gives an unknown-parameter error the usage exit code.
func paramErr(err error) error {
	if errors.Is(err, scheduler.ErrUnknownParam) {
		return withCode(exitUsage, err)
	}
	return err
}

func (a *app) trigger(ctx context.Context, args []string) error {
	var c common
	fs := a.flagSet("trigger", &c)
	date := fs.String("date", "", "logical date: RFC 3339 or YYYY-MM-DD (default: the latest complete interval)")
	params := paramsFlag{}
	fs.Var(params, "param", "run parameter name=value (repeatable)")
	pos, err := a.parse(fs, &c, args, "<dag> [--date D] [--param k=v ...]", 1, 1)
	if err != nil {
		return err
	}
	s, d, err := a.openDAG(ctx, &c, needs{store: true}, pos[0])
	if err != nil {
		return err
	}
	defer s.Close()
	var at time.Time
	if *date != "" {
		if at, _, err = parseDate("date", *date, d.Location); err != nil {
			return err
		}
	}
	run, err := scheduler.Trigger(ctx, s.store, d, at, params, a.now())
	if errors.Is(err, state.ErrRunExists) {
		return withCode(exitConflict, fmt.Errorf("%w: run %s is %s; to run it again: orchestrate clear %s %s",
			err, run.RunID, run.State, d.ID, run.RunID))
	}
	if err != nil {
		return paramErr(err)
	}
	if c.json {
		return writeJSON(a.stdout, run)
	}
	fmt.Fprintf(a.stdout, "created run %s of %s; a running scheduler picks it up\n\n", run.RunID, d.ID)
	return printRun(a.stdout, run, a.now())
}

// printRun prints a run's fields.
func printRun(w io.Writer, r state.Run, now time.Time) error {
	tw := table(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("dag", r.DAGID)
	row("run", r.RunID)
	row("kind", string(r.Kind))
	row("state", string(r.State))
	row("interval", fmtTime(r.IntervalStart)+" .. "+fmtTime(r.IntervalEnd))
	row("params", fmtParams(r.Params))
	if r.BackfillID != "" {
		row("backfill", r.BackfillID)
	}
	row("created", fmtTime(r.CreatedAt))
	row("due", fmtTime(r.DueAt))
	row("started", fmtTime(r.StartedAt))
	row("ended", fmtTime(r.EndedAt))
	switch {
	case !r.EndedAt.IsZero():
		row("duration", fmtDuration(span(r.StartedAt, r.EndedAt)))
	case !r.StartedAt.IsZero():
		row("duration", fmtDuration(now.Sub(r.StartedAt))+" so far")
	}
	return tw.Flush()
}

func (a *app) runsList(ctx context.Context, args []string) error {
	var states statesFlag
	c := common{runStates: &states}
	fs := a.flagSet("runs list", &c)
	dagID := fs.String("dag", "", "only this DAG's runs")
	limit := fs.Int("limit", 50, "at most this many runs (0: all)")
	if _, err := a.parse(fs, &c, args, "[--dag DAG] [--state S[,S]] [--limit N]", 0, 0); err != nil {
		return err
	}
	f := state.RunFilter{DAGID: *dagID, Limit: max(0, *limit)}
	for _, st := range states {
		rs := state.RunState(st)
		switch rs {
		case state.RunQueued, state.RunRunning, state.RunSuccess, state.RunFailed:
			f.States = append(f.States, rs)
		default:
			return usageErrorf("--state %q: want queued, running, success or failed", st)
		}
	}
	s, err := a.open(ctx, &c, needs{store: true})
	if err != nil {
		return err
	}
	defer s.Close()
	if *dagID != "" {
		if _, err := s.dag(*dagID); err != nil {
			return err
		}
	}
	runs, err := s.store.Runs(ctx, f)
	if err != nil {
		return fmt.Errorf("list runs: %w", err)
	}
	if c.json {
		if runs == nil {
			runs = []state.Run{}
		}
		return writeJSON(a.stdout, runs)
	}
	if len(runs) == 0 {
		fmt.Fprintln(a.stdout, "no runs")
		return nil
	}
	now := a.now()
	tw := table(a.stdout)
	fmt.Fprintln(tw, "DAG\tRUN\tKIND\tSTATE\tLOGICAL DATE\tSTARTED\tDURATION\tBACKFILL")
	for _, r := range runs {
		dur := "-"
		switch {
		case !r.EndedAt.IsZero():
			dur = fmtDuration(span(r.StartedAt, r.EndedAt))
		case !r.StartedAt.IsZero():
			dur = fmtDuration(now.Sub(r.StartedAt)) + "+"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.DAGID, r.RunID, r.Kind, r.State,
			fmtTime(r.LogicalDate), fmtTime(r.StartedAt), dur, orDash(r.BackfillID))
	}
	return tw.Flush()
}

// runDetail is "runs show --json".
type runDetail struct {
	Run   state.Run            `json:"run"`
	Tasks []state.TaskInstance `json:"tasks"`
}

func (a *app) runsShow(ctx context.Context, args []string) error {
	var c common
	fs := a.flagSet("runs show", &c)
	pos, err := a.parse(fs, &c, args, "<dag> <run-id|latest>", 2, 2)
	if err != nil {
		return err
	}
	s, d, err := a.openDAG(ctx, &c, needs{store: true}, pos[0])
	if err != nil {
		return err
	}
	defer s.Close()
	var r state.Run
	if pos[1] == "latest" {
		r, err = s.store.LatestRun(ctx, d.ID, "")
	} else {
		r, err = s.store.Run(ctx, d.ID, pos[1])
	}
	if err != nil {
		return storeCode(fmt.Errorf("run %s of %s: %w", pos[1], d.ID, err))
	}
	tis, err := s.store.Tasks(ctx, d.ID, r.RunID)
	if err != nil {
		return storeCode(fmt.Errorf("tasks of run %s of %s: %w", r.RunID, d.ID, err))
	}
	tis = orderTasks(d, tis)
	if c.json {
		return writeJSON(a.stdout, runDetail{Run: r, Tasks: tis})
	}
	now := a.now()
	if err := printRun(a.stdout, r, now); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	if err := printTasks(a.stdout, tis, now); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	for _, line := range gantt(r, tis, now, ganttWidth) {
		fmt.Fprintln(a.stdout, line)
	}
	return nil
}

// orderTasks sorts task instances as "dags show" lists the tasks: by
// layer, then by ID; tasks the DAG no longer has come last, by ID.
func orderTasks(d *dag.DAG, tis []state.TaskInstance) []state.TaskInstance {
	ids := make([]string, 0, len(d.Tasks()))
	for _, t := range d.Tasks() {
		ids = append(ids, t.ID)
	}
	pos := map[string]int{}
	for i, id := range byLayer(d, ids) {
		pos[id] = i
	}
	out := slices.Clone(tis)
	slices.SortStableFunc(out, func(a, b state.TaskInstance) int {
		pa, oka := pos[a.TaskID]
		pb, okb := pos[b.TaskID]
		switch {
		case oka && okb:
			return pa - pb
		case oka:
			return -1
		case okb:
			return 1
		}
		return strings.Compare(a.TaskID, b.TaskID)
	})
	return out
}

func printTasks(w io.Writer, tis []state.TaskInstance, now time.Time) error {
	tw := table(w)
	fmt.Fprintln(tw, "TASK\tSTATE\tTRY\tFAILURES\tSTARTED\tENDED\tDURATION\tPOOL\tNOTE")
	for _, ti := range tis {
		start, end := taskSpan(ti, now)
		dur := "-"
		if !start.IsZero() {
			dur = fmtDuration(end.Sub(start))
		}
		note := ti.Error
		switch ti.State {
		case state.TaskUpForReschedule:
			note = "waiting for: " + ti.Waiting + "; next poke " + fmtTime(ti.NextTryAt)
		case state.TaskUpForRetry:
			note = "retry at " + fmtTime(ti.NextTryAt) + ": " + ti.Error
		case state.TaskRunning:
			note = "owner " + ti.Owner + ", lease until " + fmtTime(ti.LeaseUntil)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", ti.TaskID, ti.State, ti.Try, ti.Failures,
			fmtTime(ti.StartedAt), fmtTime(ti.EndedAt), dur, orDash(ti.Pool), oneLine(note))
	}
	return tw.Flush()
}

// oneLine keeps the first line of s, at most 100 characters.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > 100 {
		s = string(r[:99]) + "…"
	}
	return orDash(s)
}

// taskSpan returns when a task instance's time on the chart starts (its
// first poke for a sensor, its latest try's start otherwise) and ends (now
// while it runs); zero start when it never started.
func taskSpan(ti state.TaskInstance, now time.Time) (start, end time.Time) {
	start = ti.StartedAt
	if !ti.FirstPokeAt.IsZero() && (start.IsZero() || ti.FirstPokeAt.Before(start)) {
		start = ti.FirstPokeAt
	}
	if start.IsZero() {
		return time.Time{}, time.Time{}
	}
	end = ti.EndedAt
	if ti.State == state.TaskRunning || ti.State == state.TaskUpForReschedule || ti.State == state.TaskUpForRetry ||
		end.IsZero() || end.Before(start) {
		end = now
	}
	return start, end
}

// ganttWidth is the number of columns of the chart's time axis.
const ganttWidth = 50

// gantt draws the run's tasks on a shared time axis of width columns from
// the run's start to its end (now while it runs): one row per task, █ for
// its running time, a state marker (✗ failed or upstream failed, - skipped,
// ▶ running, ↻ waiting for a retry, … waiting), then the duration and the
// state in words.
func gantt(r state.Run, tis []state.TaskInstance, now time.Time, width int) []string {
	t0, t1 := r.StartedAt, r.EndedAt
	if t1.IsZero() {
		t1 = now
	}
	for _, ti := range tis {
		s, e := taskSpan(ti, now)
		if s.IsZero() {
			continue
		}
		if t0.IsZero() || s.Before(t0) {
			t0 = s
		}
		if e.After(t1) {
			t1 = e
		}
	}
	if t0.IsZero() {
		return []string{"Gantt: no task has started yet"}
	}
	total := t1.Sub(t0)
	scale := total
	if scale <= 0 {
		scale = time.Nanosecond
	}
	col := func(t time.Time) float64 { return float64(t.Sub(t0)) / float64(scale) * float64(width) }
	nameW := 4
	for _, ti := range tis {
		nameW = max(nameW, len(ti.TaskID))
	}
	lines := []string{fmt.Sprintf("Gantt: %s .. %s (%s, one column = %s)", fmtTime(t0), fmtTime(t1),
		fmtDuration(total), fmtDuration(total/time.Duration(width)))}
	// The row has one cell more than the axis, for a marker after a bar
	// that ends at the end.
	clamp := func(c int) int { return min(max(c, 0), width) }
	for _, ti := range tis {
		bar := []rune(strings.Repeat(" ", width+1))
		s, e := taskSpan(ti, now)
		right := ""
		// mark is where the state marker goes: after the bar, at the
		// time the task was decided (skipped), or at the end (waiting).
		mark := width
		if !s.IsZero() {
			c0 := min(clamp(int(col(s))), width-1)
			c1 := min(max(c0+1, int(math.Ceil(col(e)))), width)
			for i := c0; i < c1; i++ {
				bar[i] = '█'
			}
			right = fmtDuration(e.Sub(s))
			mark = c1
		} else if !ti.EndedAt.IsZero() {
			mark = clamp(int(col(ti.EndedAt)))
		}
		if m, text := stateMarker(ti); text != "" {
			bar[mark] = m
			right = strings.TrimSpace(right + " " + text)
		}
		lines = append(lines, fmt.Sprintf("%-*s │%s│ %s", nameW, ti.TaskID, string(bar), right))
	}
	return lines
}

// stateMarker returns the chart marker and the text a task state adds;
// none for success.
func stateMarker(ti state.TaskInstance) (rune, string) {
	switch ti.State {
	case state.TaskFailed:
		return '✗', "failed"
	case state.TaskUpstreamFailed:
		return '✗', "upstream failed"
	case state.TaskSkipped:
		return '-', "skipped"
	case state.TaskRunning:
		return '▶', "running"
	case state.TaskUpForRetry:
		return '↻', "retry at " + fmtTime(ti.NextTryAt)
	case state.TaskUpForReschedule:
		return '…', "waiting for: " + oneLine(ti.Waiting)
	case state.TaskQueued:
		return '…', "queued"
	case state.TaskNone:
		return '…', "waiting for upstream"
	}
	return 0, ""
}

func (a *app) clear(ctx context.Context, args []string) error {
	var c common
	fs := a.flagSet("clear", &c)
	all := fs.Bool("all", false, "run every task again, not only the failed, upstream_failed and skipped ones")
	pos, err := a.parse(fs, &c, args, "<dag> <run-id> [--all]", 2, 2)
	if err != nil {
		return err
	}
	s, d, err := a.openDAG(ctx, &c, needs{store: true}, pos[0])
	if err != nil {
		return err
	}
	defer s.Close()
	if err := scheduler.Clear(ctx, s.store, d.ID, pos[1], *all, a.now()); err != nil {
		if errors.Is(err, state.ErrConflict) {
			err = fmt.Errorf("%w (a task is running under a lease: wait for it to finish)", err)
		}
		return storeCode(err)
	}
	if c.json {
		return writeJSON(a.stdout, map[string]any{"dag_id": d.ID, "run_id": pos[1], "cleared": true, "all": *all})
	}
	what := "failed, upstream_failed and skipped tasks"
	if *all {
		what = "all tasks"
	}
	fmt.Fprintf(a.stdout, "cleared run %s of %s (%s); a running scheduler runs them again\n", pos[1], d.ID, what)
	return nil
}

func (a *app) setPaused(ctx context.Context, args []string, paused bool) error {
	var c common
	name := "unpause"
	if paused {
		name = "pause"
	}
	fs := a.flagSet(name, &c)
	pos, err := a.parse(fs, &c, args, "<dag>", 1, 1)
	if err != nil {
		return err
	}
	s, d, err := a.openDAG(ctx, &c, needs{store: true}, pos[0])
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.store.SetPaused(ctx, d.ID, paused); err != nil {
		return fmt.Errorf("%s %s: %w", name, d.ID, err)
	}
	if c.json {
		return writeJSON(a.stdout, map[string]any{"dag_id": d.ID, "paused": paused})
	}
	fmt.Fprintf(a.stdout, "%s %sd\n", d.ID, name)
	return nil
}

func (a *app) prune(ctx context.Context, args []string) error {
	var c common
	fs := a.flagSet("state prune", &c)
	older := fs.Duration("older-than", 720*time.Hour, "delete finished runs and backfills that ended longer ago than this")
	if _, err := a.parse(fs, &c, args, "[--older-than 720h]", 0, 0); err != nil {
		return err
	}
	if *older <= 0 {
		return usageErrorf("--older-than %s: want a positive duration", *older)
	}
	s, err := a.open(ctx, &c, needs{store: true})
	if err != nil {
		return err
	}
	defer s.Close()
	before := a.now().Add(-*older)
	n, err := s.store.Prune(ctx, before)
	if err != nil {
		return fmt.Errorf("prune state before %s: %w", fmtTime(before), err)
	}
	if c.json {
		return writeJSON(a.stdout, map[string]any{"deleted_runs": n, "before": before.UTC()})
	}
	fmt.Fprintf(a.stdout, "deleted %s runs (and finished backfills) that ended before %s\n", thousands(n), fmtTime(before))
	return nil
}
