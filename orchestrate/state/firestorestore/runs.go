package firestorestore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/orchestrate/state"
)

// DAG returns the DAG's stored state; a DAG never seen is not paused.
func (s *Store) DAG(ctx context.Context, dagID string) (state.DAGInfo, error) {
	snap, err := s.dagRef(dagID).Get(ctx)
	if status.Code(err) == codes.NotFound {
		return state.DAGInfo{DAGID: dagID}, nil
	}
	if err != nil {
		return state.DAGInfo{}, fmt.Errorf("get dag %s: %w", dagID, mapCode(err, nil))
	}
	var d dagDoc
	if err := snap.DataTo(&d); err != nil {
		return state.DAGInfo{}, fmt.Errorf("decode dag %s: %w", dagID, err)
	}
	return state.DAGInfo{DAGID: dagID, Paused: d.Paused}, nil
}

// SetPaused pauses or unpauses a DAG. It leaves the DAG's active runs alone.
func (s *Store) SetPaused(ctx context.Context, dagID string, paused bool) error {
	_, err := s.dagRef(dagID).Set(ctx, map[string]any{"dag_id": dagID, "paused": paused}, firestore.MergeAll)
	if err != nil {
		return fmt.Errorf("set dag %s paused=%t: %w", dagID, paused, mapCode(err, nil))
	}
	return nil
}

// decodeDAG decodes a DAG's document; a missing one is the zero state.
func decodeDAG(snap *firestore.DocumentSnapshot, dagID string) (dagDoc, error) {
	if !snap.Exists() {
		return dagDoc{DAGID: dagID}, nil
	}
	var d dagDoc
	if err := snap.DataTo(&d); err != nil {
		return dagDoc{}, fmt.Errorf("decode dag: %w", err)
	}
	return d, nil
}

// decodeRun decodes a run's document; a missing one is NotFound, as from
// Transaction.Get.
func decodeRun(snap *firestore.DocumentSnapshot) (runDoc, error) {
	if !snap.Exists() {
		return runDoc{}, status.Errorf(codes.NotFound, "%q not found", snap.Ref.Path)
	}
	var d runDoc
	if err := snap.DataTo(&d); err != nil {
		return runDoc{}, fmt.Errorf("decode run: %w", err)
	}
	return d, nil
}

// getRun reads a run's document in tx (NotFound when missing).
func getRun(tx *firestore.Transaction, ref *firestore.DocumentRef) (runDoc, error) {
	snaps, err := tx.GetAll([]*firestore.DocumentRef{ref})
	if err != nil {
		return runDoc{}, err
	}
	return decodeRun(snaps[0])
}

// getRunAndDAG reads a run's and its DAG's documents in tx, in one call.
func (s *Store) getRunAndDAG(tx *firestore.Transaction, dagID, runID string) (runDoc, dagDoc, error) {
	snaps, err := tx.GetAll([]*firestore.DocumentRef{s.runRef(dagID, runID), s.dagRef(dagID)})
	if err != nil {
		return runDoc{}, dagDoc{}, err
	}
	r, err := decodeRun(snaps[0])
	if err != nil {
		return runDoc{}, dagDoc{}, err
	}
	d, err := decodeDAG(snaps[1], dagID)
	return r, d, err
}

// CreateRun stores a new queued run and its task instances (state none) in
// one commit. The run's document ID derives from its DAG and data interval,
// so a second run for the same interval fails with state.ErrRunExists. An
// empty RunID is filled in from the interval; another RunID than
// state.RunID(IntervalStart, IntervalEnd) is refused.
func (s *Store) CreateRun(ctx context.Context, run state.Run, taskIDs []string) error {
	id := state.RunID(run.IntervalStart, run.IntervalEnd)
	if run.RunID == "" {
		run.RunID = id
	}
	if run.RunID != id {
		return fmt.Errorf("create run %s/%s: run id is not the data interval's %s", run.DAGID, run.RunID, id)
	}
	run.State = state.RunQueued
	doc := toRunDoc(run)
	ref := s.runRef(run.DAGID, run.RunID)
	err := s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		if err := tx.Create(ref, doc); err != nil {
			return err
		}
		for _, t := range taskIDs {
			k := state.TaskKey{DAGID: run.DAGID, RunID: run.RunID, TaskID: t}
			if err := tx.Set(s.taskRef(k), toTaskDoc(state.TaskInstance{TaskKey: k, State: state.TaskNone})); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create run %s/%s: %w", run.DAGID, run.RunID, mapCode(err, state.ErrRunExists))
	}
	return nil
}

// Run returns one run.
func (s *Store) Run(ctx context.Context, dagID, runID string) (state.Run, error) {
	snap, err := s.runRef(dagID, runID).Get(ctx)
	if err != nil {
		return state.Run{}, fmt.Errorf("get run %s/%s: %w", dagID, runID, mapCode(err, nil))
	}
	var d runDoc
	if err := snap.DataTo(&d); err != nil {
		return state.Run{}, fmt.Errorf("decode run %s/%s: %w", dagID, runID, err)
	}
	return d.run(), nil
}

// Runs lists runs, newest logical date first (then newest run ID).
func (s *Store) Runs(ctx context.Context, f state.RunFilter) ([]state.Run, error) {
	q := s.runs.Query
	if f.DAGID != "" {
		q = q.Where("dag_id", "==", f.DAGID)
	}
	switch len(f.States) {
	case 0:
	case 1:
		q = q.Where("state", "==", string(f.States[0]))
	default:
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		q = q.Where("state", "in", states)
	}
	if f.BackfillID != "" {
		q = q.Where("backfill_id", "==", f.BackfillID)
	}
	q = q.OrderBy("logical_date", firestore.Desc).OrderBy(firestore.DocumentID, firestore.Desc)
	if f.Limit > 0 {
		q = q.Limit(f.Limit)
	}
	runs, err := queryRuns(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list runs of dag %q: %w", f.DAGID, mapCode(err, nil))
	}
	return runs, nil
}

func queryRuns(ctx context.Context, q firestore.Query) ([]state.Run, error) {
	it := q.Documents(ctx)
	defer it.Stop()
	var runs []state.Run
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return runs, nil
		}
		if err != nil {
			return nil, err
		}
		var d runDoc
		if err := snap.DataTo(&d); err != nil {
			return nil, fmt.Errorf("decode %s: %w", snap.Ref.ID, err)
		}
		runs = append(runs, d.run())
	}
}

// LatestRun returns the run with the latest data interval (latest interval
// end, then latest start) of the given kind, any kind when empty.
func (s *Store) LatestRun(ctx context.Context, dagID string, kind state.RunKind) (state.Run, error) {
	runs, err := queryRuns(ctx, s.latestRunQuery(dagID, kind))
	if err != nil {
		return state.Run{}, fmt.Errorf("latest %q run of dag %s: %w", kind, dagID, mapCode(err, nil))
	}
	if len(runs) == 0 {
		return state.Run{}, fmt.Errorf("latest %q run of dag %s: %w", kind, dagID, state.ErrNotFound)
	}
	return runs[0], nil
}

// latestRunQuery selects the DAG's run with the latest data interval of the
// given kind (any kind when empty).
func (s *Store) latestRunQuery(dagID string, kind state.RunKind) firestore.Query {
	q := s.runs.Where("dag_id", "==", dagID)
	if kind != "" {
		q = q.Where("kind", "==", string(kind))
	}
	// The document ID is <dag>~<start>_<end>: the tie-breaker orders by start.
	return q.OrderBy("interval_end", firestore.Desc).OrderBy(firestore.DocumentID, firestore.Desc).Limit(1)
}

// StartRun moves a queued run to running unless the DAG document already
// lists maxActive running runs (maxActive <= 0 means no cap). The run joins
// that list in the same transaction.
func (s *Store) StartRun(ctx context.Context, dagID, runID string, maxActive int, now time.Time) error {
	runRef, dagRef := s.runRef(dagID, runID), s.dagRef(dagID)
	err := s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		r, d, err := s.getRunAndDAG(tx, dagID, runID)
		if err != nil {
			return err
		}
		switch state.RunState(r.State) {
		case state.RunRunning:
			return nil
		case state.RunQueued:
		default:
			return fmt.Errorf("run is %s: %w", r.State, state.ErrConflict)
		}
		if maxActive > 0 && len(d.Active) >= maxActive {
			return fmt.Errorf("%d running: %w", len(d.Active), state.ErrMaxActiveRuns)
		}
		r.State = string(state.RunRunning)
		r.StartedAt = ts(now)
		d.Active = append(withoutRun(d.Active, runID), runID)
		if err := tx.Set(runRef, r); err != nil {
			return err
		}
		return tx.Set(dagRef, d)
	})
	if err != nil {
		return fmt.Errorf("start run %s/%s: %w", dagID, runID, mapCode(err, nil))
	}
	return nil
}

// EndRun moves a run from state from (queued or running) to to (success or
// failed) and takes it off the DAG's active runs. A run in another state
// than from is state.ErrConflict.
func (s *Store) EndRun(ctx context.Context, dagID, runID string, from, to state.RunState, now time.Time) error {
	if from != state.RunQueued && from != state.RunRunning {
		return fmt.Errorf("end run %s/%s: %q is not a state a run ends from", dagID, runID, from)
	}
	if !to.Finished() {
		return fmt.Errorf("end run %s/%s: %q is not a final state", dagID, runID, to)
	}
	runRef, dagRef := s.runRef(dagID, runID), s.dagRef(dagID)
	err := s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		r, d, err := s.getRunAndDAG(tx, dagID, runID)
		if err != nil {
			return err
		}
		if state.RunState(r.State) != from {
			return fmt.Errorf("run is %s, not %s: %w", r.State, from, state.ErrConflict)
		}
		r.State = string(to)
		r.EndedAt = ts(now)
		if err := tx.Set(runRef, r); err != nil {
			return err
		}
		if slices.Contains(d.Active, runID) {
			d.Active = withoutRun(d.Active, runID)
			return tx.Set(dagRef, d)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("end run %s/%s as %s: %w", dagID, runID, to, mapCode(err, nil))
	}
	return nil
}

// MarkRunDeadlineAlerted records that the run's deadline alert was sent; it
// reports false if that was already recorded.
func (s *Store) MarkRunDeadlineAlerted(ctx context.Context, dagID, runID string) (bool, error) {
	ref := s.runRef(dagID, runID)
	var marked bool
	err := s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		marked = false
		r, err := getRun(tx, ref)
		if err != nil {
			return err
		}
		if r.DeadlineAlerted {
			return nil
		}
		r.DeadlineAlerted = true
		marked = true
		return tx.Set(ref, r)
	})
	if err != nil {
		return false, fmt.Errorf("mark deadline alert of run %s/%s: %w", dagID, runID, mapCode(err, nil))
	}
	return marked, nil
}

// tasksQuery selects a run's task instances (equality filters only: no
// composite index).
func (s *Store) tasksQuery(dagID, runID string) firestore.Query {
	return s.tasks.Where("dag_id", "==", dagID).Where("run_id", "==", runID)
}

// ResetRun puts a run back to queued, due now, and its task instances (all,
// or only the failed, upstream_failed and skipped ones) back to none, in one
// transaction that also reads the run's tasks, so no claim can slip in
// between the check for running tasks and the reset.
func (s *Store) ResetRun(ctx context.Context, dagID, runID string, onlyFailed bool, backfillID string, now time.Time) error {
	runRef, dagRef := s.runRef(dagID, runID), s.dagRef(dagID)
	err := s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		r, d, err := s.getRunAndDAG(tx, dagID, runID)
		if err != nil {
			return err
		}
		snaps, err := tx.Documents(s.tasksQuery(dagID, runID)).GetAll()
		if err != nil {
			return err
		}
		tasks := make([]taskDoc, len(snaps))
		for i, snap := range snaps {
			if err := snap.DataTo(&tasks[i]); err != nil {
				return fmt.Errorf("decode task %s: %w", snap.Ref.ID, err)
			}
			t := tasks[i]
			if state.TaskState(t.State) == state.TaskRunning && t.LeaseUntil.After(now) {
				return fmt.Errorf("task %s runs under a lease until %s: %w", t.TaskID, t.LeaseUntil.Format(time.RFC3339), state.ErrConflict)
			}
		}
		for i, t := range tasks {
			switch state.TaskState(t.State) {
			case state.TaskFailed, state.TaskUpstreamFailed, state.TaskSkipped:
			default:
				if onlyFailed {
					continue
				}
			}
			// Try and Pool stay: the try is the fencing token and only grows.
			reset := taskDoc{DAGID: t.DAGID, RunID: t.RunID, TaskID: t.TaskID, State: string(state.TaskNone), Try: t.Try, Pool: t.Pool}
			if err := tx.Set(snaps[i].Ref, reset); err != nil {
				return err
			}
		}
		if slices.Contains(d.Active, runID) {
			d.Active = withoutRun(d.Active, runID)
			if err := tx.Set(dagRef, d); err != nil {
				return err
			}
		}
		r.State = string(state.RunQueued)
		r.DueAt = ts(now)
		r.StartedAt, r.EndedAt, r.DeadlineAlerted = time.Time{}, time.Time{}, false
		if backfillID != "" {
			r.BackfillID = backfillID
		}
		return tx.Set(runRef, r)
	})
	if err != nil {
		return fmt.Errorf("reset run %s/%s: %w", dagID, runID, mapCode(err, nil))
	}
	return nil
}

// Prune deletes finished runs that ended before the given time, with their
// task instances (each run in its own transaction), and finished backfills
// that ended before it. Each DAG's latest scheduled run (the one
// LatestRun(dag, KindScheduled) returns) stays, whatever its age: the
// scheduler continues the schedule from it. It returns the number of runs
// deleted.
func (s *Store) Prune(ctx context.Context, before time.Time) (int, error) {
	before = ts(before)
	refs, err := s.runs.Where("ended_at", "<", before).Select().Documents(ctx).GetAll()
	if err != nil {
		return 0, fmt.Errorf("prune runs ended before %s: %w", before.Format(time.RFC3339), mapCode(err, nil))
	}
	n := 0
	for _, snap := range refs {
		deleted, err := s.pruneRun(ctx, snap.Ref, before)
		if err != nil {
			return n, fmt.Errorf("prune run %s: %w", snap.Ref.ID, mapCode(err, nil))
		}
		if deleted {
			n++
		}
	}
	bfs, err := s.backfills.Where("ended_at", "<", before).Select().Documents(ctx).GetAll()
	if err != nil {
		return n, fmt.Errorf("prune backfills ended before %s: %w", before.Format(time.RFC3339), mapCode(err, nil))
	}
	for _, snap := range bfs {
		if err := s.pruneBackfill(ctx, snap.Ref, before); err != nil {
			return n, fmt.Errorf("prune backfill %s: %w", snap.Ref.ID, mapCode(err, nil))
		}
	}
	return n, nil
}

func (s *Store) pruneRun(ctx context.Context, ref *firestore.DocumentRef, before time.Time) (bool, error) {
	var deleted bool
	err := s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		deleted = false
		r, err := getRun(tx, ref)
		if status.Code(err) == codes.NotFound {
			return nil // pruned by another scheduler
		}
		if err != nil {
			return err
		}
		if !state.RunState(r.State).Finished() || r.EndedAt.IsZero() || !r.EndedAt.Before(before) {
			return nil
		}
		if state.RunKind(r.Kind) == state.KindScheduled {
			// Read in the transaction: a later scheduled run created
			// meanwhile makes this one deletable only after the commit.
			latest, err := tx.Documents(s.latestRunQuery(r.DAGID, state.KindScheduled).Select()).GetAll()
			if err != nil {
				return err
			}
			if len(latest) == 0 || latest[0].Ref.ID == ref.ID {
				return nil // the schedule continues from it
			}
		}
		tasks, err := tx.Documents(s.tasksQuery(r.DAGID, r.RunID).Select()).GetAll()
		if err != nil {
			return err
		}
		for _, t := range tasks {
			if err := tx.Delete(t.Ref); err != nil {
				return err
			}
		}
		deleted = true
		return tx.Delete(ref)
	})
	return deleted, err
}

func (s *Store) pruneBackfill(ctx context.Context, ref *firestore.DocumentRef, before time.Time) error {
	return s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		b, err := getBackfill(tx, ref)
		if status.Code(err) == codes.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		if state.BackfillState(b.State) == state.BackfillRunning || b.EndedAt.IsZero() || !b.EndedAt.Before(before) {
			return nil
		}
		return tx.Delete(ref)
	})
}
