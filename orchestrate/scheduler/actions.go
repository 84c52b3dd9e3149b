package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/schedule"
	"github.com/labplatform/platform/orchestrate/state"
)

// The operator actions below are what the CLI does without a running
// scheduler: they only write the store, and a scheduler picks the result up.

// ErrUnknownParam: a manual trigger or backfill named a parameter the DAG
// does not declare.
var ErrUnknownParam = errors.New("unknown parameter")

// checkParams rejects parameters d does not declare in its Params.
func checkParams(d *dag.DAG, params map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if _, ok := d.Params[k]; !ok {
			known := slices.Sorted(maps.Keys(d.Params))
			return fmt.Errorf("dag %s: %w %q (known: %s)", d.ID, ErrUnknownParam, k, strings.Join(known, ", "))
		}
	}
	return nil
}

// TriggerInterval returns the data interval a manual trigger at logical date
// at covers: the schedule's interval starting at or containing at; with a
// zero at, the latest complete interval before now. A DAG without a schedule
// gets the empty interval [at, at] (at defaults to now).
func TriggerInterval(d *dag.DAG, at, now time.Time) (dag.Interval, error) {
	sc, err := schedule.For(d)
	if err != nil {
		return dag.Interval{}, err
	}
	if sc == nil {
		if at.IsZero() {
			at = now
		}
		at = at.UTC().Truncate(time.Second)
		return dag.Interval{Start: at, End: at}, nil
	}
	if at.IsZero() {
		cur := sc.Containing(now)
		return sc.Containing(cur.Start.Add(-time.Nanosecond)), nil
	}
	return sc.Containing(at), nil
}

// Trigger creates a manual run of d for the interval TriggerInterval picks,
// with params overriding the DAG's defaults. If a run for that interval
// exists (scheduled, manual or backfill) it returns state.ErrRunExists and
// the existing run: use Clear to run it again.
func Trigger(ctx context.Context, store state.Store, d *dag.DAG, at time.Time, params map[string]string, now time.Time) (state.Run, error) {
	if err := checkParams(d, params); err != nil {
		return state.Run{}, err
	}
	iv, err := TriggerInterval(d, at, now)
	if err != nil {
		return state.Run{}, err
	}
	run := newRun(d, iv, state.KindManual, params, now)
	err = store.CreateRun(ctx, run, taskIDs(d))
	if errors.Is(err, state.ErrRunExists) {
		existing, gerr := store.Run(ctx, d.ID, run.RunID)
		if gerr != nil {
			return state.Run{}, errors.Join(err, gerr)
		}
		return existing, fmt.Errorf("trigger %s for %s: %w", d.ID, iv, err)
	}
	if err != nil {
		return state.Run{}, fmt.Errorf("trigger %s for %s: %w", d.ID, iv, err)
	}
	return run, nil
}

// BackfillRequest describes a new backfill.
type BackfillRequest struct {
	From, To      time.Time
	Reprocess     state.Reprocess
	MaxActiveRuns int
	Params        map[string]string
}

// NewBackfill validates req and stores a running backfill of d over the
// intervals whose start lies in [From, To] and which have ended by now.
func NewBackfill(ctx context.Context, store state.Store, d *dag.DAG, req BackfillRequest, now time.Time) (state.Backfill, error) {
	sc, err := schedule.For(d)
	if err != nil {
		return state.Backfill{}, err
	}
	if sc == nil {
		return state.Backfill{}, fmt.Errorf("dag %s has no schedule to backfill: trigger runs instead", d.ID)
	}
	if err := checkParams(d, req.Params); err != nil {
		return state.Backfill{}, err
	}
	if req.Reprocess == "" {
		req.Reprocess = state.ReprocessMissing
	}
	switch req.Reprocess {
	case state.ReprocessMissing, state.ReprocessFailed, state.ReprocessAll:
	default:
		return state.Backfill{}, fmt.Errorf("reprocess %q: want missing, failed or all", req.Reprocess)
	}
	if req.MaxActiveRuns <= 0 {
		req.MaxActiveRuns = 4
	}
	if req.To.Before(req.From) {
		return state.Backfill{}, fmt.Errorf("backfill range %s..%s: end before start", req.From.Format(time.RFC3339), req.To.Format(time.RFC3339))
	}
	ivs := sc.Between(req.From, req.To)
	for len(ivs) > 0 && ivs[len(ivs)-1].End.After(now) {
		ivs = ivs[:len(ivs)-1]
	}
	if len(ivs) == 0 {
		return state.Backfill{}, fmt.Errorf("backfill %s..%s: no complete data interval in the range", req.From.Format(time.RFC3339), req.To.Format(time.RFC3339))
	}
	b := state.Backfill{
		ID:    fmt.Sprintf("%s-%s", d.ID, now.UTC().Format("20060102T150405.000000")),
		DAGID: d.ID, From: ivs[0].Start, To: ivs[len(ivs)-1].Start,
		Reprocess: req.Reprocess, MaxActiveRuns: req.MaxActiveRuns, Params: req.Params,
		State: state.BackfillRunning, Total: len(ivs), Cursor: ivs[0].Start,
		CreatedAt: now, UpdatedAt: now,
	}
	if err := store.CreateBackfill(ctx, b); err != nil {
		return state.Backfill{}, fmt.Errorf("create backfill of %s: %w", d.ID, err)
	}
	return b, nil
}

// CancelBackfill stops a backfill: no new run is created, its queued runs
// are ended as failed by the next scheduler pass, running ones finish.
func CancelBackfill(ctx context.Context, store state.Store, id string, now time.Time) (state.Backfill, error) {
	for range 10 {
		b, err := store.Backfill(ctx, id)
		if err != nil {
			return state.Backfill{}, fmt.Errorf("cancel backfill %s: %w", id, err)
		}
		if b.State != state.BackfillRunning {
			return b, fmt.Errorf("cancel backfill %s: it is %s: %w", id, b.State, state.ErrConflict)
		}
		prev := b.UpdatedAt
		b.State, b.EndedAt, b.UpdatedAt = state.BackfillCancelled, now, now
		if !now.After(prev) {
			b.UpdatedAt = prev.Add(time.Microsecond)
		}
		err = store.UpdateBackfill(ctx, b, prev)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, state.ErrConflict) {
			return state.Backfill{}, fmt.Errorf("cancel backfill %s: %w", id, err)
		}
	}
	return state.Backfill{}, fmt.Errorf("cancel backfill %s: it kept changing: %w", id, state.ErrConflict)
}

// Clear re-runs a run: its failed, upstream_failed and skipped tasks (or all
// tasks with all) go back to waiting and the run to queued.
func Clear(ctx context.Context, store state.Store, dagID, runID string, all bool, now time.Time) error {
	if err := store.ResetRun(ctx, dagID, runID, !all, "", now); err != nil {
		return fmt.Errorf("clear %s %s: %w", dagID, runID, err)
	}
	return nil
}

// TestTask runs one task of d once for the interval at logical date at, with
// no state read or written (like Airflow's tasks test). A sensor is poked
// once; its result says whether the condition holds and what it waits for.
func TestTask(ctx context.Context, d *dag.DAG, taskID string, at time.Time, params map[string]string, now func() time.Time, log *slog.Logger) (done bool, waiting string, err error) {
	t, ok := d.Task(taskID)
	if !ok {
		return false, "", fmt.Errorf("dag %s has no task %q", d.ID, taskID)
	}
	if err := checkParams(d, params); err != nil {
		return false, "", err
	}
	iv, err := TriggerInterval(d, at, now())
	if err != nil {
		return false, "", err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := newRun(d, iv, state.KindManual, params, now())
	tc := &dag.TaskContext{
		DAGID: d.ID, RunID: r.RunID, TaskID: t.ID, LogicalDate: iv.Start, Interval: iv,
		Params: r.Params, Try: 1, DryRun: true, Logger: log, Now: now,
	}
	if t.IsSensor() {
		return poke(ctx, t, tc)
	}
	if err := run(ctx, t, tc); err != nil {
		return false, "", err
	}
	return true, "", nil
}
