package firestorestore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/orchestrate/state"
)

// decodeTask decodes a task instance's document; a missing one is
// NotFound, as from Transaction.Get.
func decodeTask(snap *firestore.DocumentSnapshot) (taskDoc, error) {
	if !snap.Exists() {
		return taskDoc{}, status.Errorf(codes.NotFound, "%q not found", snap.Ref.Path)
	}
	var d taskDoc
	if err := snap.DataTo(&d); err != nil {
		return taskDoc{}, fmt.Errorf("decode task: %w", err)
	}
	return d, nil
}

// decodePool decodes a pool's document; a missing one has no holders.
func decodePool(snap *firestore.DocumentSnapshot, pool string) (poolDoc, error) {
	p := poolDoc{Pool: pool}
	if snap.Exists() {
		if err := snap.DataTo(&p); err != nil {
			return p, fmt.Errorf("decode pool %s: %w", pool, err)
		}
	}
	if p.Holders == nil {
		p.Holders = map[string]time.Time{}
	}
	return p, nil
}

// getTaskAndPool reads a task instance's document and, when pool is not
// empty, the pool's, in one call.
func (s *Store) getTaskAndPool(tx *firestore.Transaction, ref *firestore.DocumentRef, pool string) (taskDoc, poolDoc, error) {
	refs := []*firestore.DocumentRef{ref}
	if pool != "" {
		refs = append(refs, s.poolRef(pool))
	}
	snaps, err := tx.GetAll(refs)
	if err != nil {
		return taskDoc{}, poolDoc{}, err
	}
	t, err := decodeTask(snaps[0])
	if err != nil || pool == "" {
		return t, poolDoc{}, err
	}
	p, err := decodePool(snaps[1], pool)
	return t, p, err
}

// getTaskThenPool reads a task instance's document, then the document of
// the pool whose slot its current try holds, if any.
func (s *Store) getTaskThenPool(tx *firestore.Transaction, ref *firestore.DocumentRef) (taskDoc, poolDoc, error) {
	t, _, err := s.getTaskAndPool(tx, ref, "")
	if err != nil || !t.PoolSlot {
		return t, poolDoc{}, err
	}
	snaps, err := tx.GetAll([]*firestore.DocumentRef{s.poolRef(t.Pool)})
	if err != nil {
		return t, poolDoc{}, err
	}
	p, err := decodePool(snaps[0], t.Pool)
	return t, p, err
}

// Tasks returns a run's task instances ordered by task ID; ErrNotFound if
// the run does not exist.
func (s *Store) Tasks(ctx context.Context, dagID, runID string) ([]state.TaskInstance, error) {
	snaps, err := s.tasksQuery(dagID, runID).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("list tasks of run %s/%s: %w", dagID, runID, mapCode(err, nil))
	}
	if len(snaps) == 0 {
		if _, err := s.runRef(dagID, runID).Get(ctx); err != nil {
			return nil, fmt.Errorf("list tasks of run %s/%s: %w", dagID, runID, mapCode(err, nil))
		}
	}
	tasks := make([]state.TaskInstance, len(snaps))
	for i, snap := range snaps {
		var d taskDoc
		if err := snap.DataTo(&d); err != nil {
			return nil, fmt.Errorf("decode task %s: %w", snap.Ref.ID, err)
		}
		tasks[i] = d.task()
	}
	slices.SortFunc(tasks, func(a, b state.TaskInstance) int { return strings.Compare(a.TaskID, b.TaskID) })
	return tasks, nil
}

// SetTaskStates moves task instances in state none to queued,
// upstream_failed or skipped, all in one transaction. Tasks no longer in
// state none are left alone; an unknown task is ErrNotFound.
func (s *Store) SetTaskStates(ctx context.Context, dagID, runID string, states map[string]state.TaskState, now time.Time) error {
	ids := slices.Sorted(maps.Keys(states))
	for _, id := range ids {
		switch st := states[id]; st {
		case state.TaskQueued, state.TaskUpstreamFailed, state.TaskSkipped:
		default:
			return fmt.Errorf("set task states of run %s/%s: task %s: %q is not queued, upstream_failed or skipped", dagID, runID, id, st)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	refs := make([]*firestore.DocumentRef, len(ids))
	for i, id := range ids {
		refs[i] = s.taskRef(state.TaskKey{DAGID: dagID, RunID: runID, TaskID: id})
	}
	err := s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snaps, err := tx.GetAll(refs)
		if err != nil {
			return err
		}
		docs := make([]taskDoc, len(snaps))
		for i, snap := range snaps {
			if !snap.Exists() {
				return fmt.Errorf("task %s: %w", ids[i], state.ErrNotFound)
			}
			if err := snap.DataTo(&docs[i]); err != nil {
				return fmt.Errorf("decode task %s: %w", ids[i], err)
			}
		}
		for i, t := range docs {
			if state.TaskState(t.State) != state.TaskNone {
				continue
			}
			st := states[ids[i]]
			t.State = string(st)
			if st == state.TaskQueued {
				t.ReadyAt = ts(now)
			} else {
				t.EndedAt = ts(now)
			}
			if err := tx.Set(refs[i], t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set task states of run %s/%s: %w", dagID, runID, mapCode(err, nil))
	}
	return nil
}

// claimable says why t may not start at now, or "" if it may.
func claimable(t taskDoc, now time.Time) string {
	switch st := state.TaskState(t.State); st {
	case state.TaskQueued:
		return ""
	case state.TaskUpForRetry, state.TaskUpForReschedule:
		if t.NextTryAt.After(now) {
			return fmt.Sprintf("%s until %s", st, t.NextTryAt.Format(time.RFC3339Nano))
		}
		return ""
	case state.TaskRunning:
		if t.LeaseUntil.After(now) {
			return fmt.Sprintf("running under a lease until %s", t.LeaseUntil.Format(time.RFC3339Nano))
		}
		return ""
	default:
		return string(st)
	}
}

// ClaimTask starts an attempt in one transaction: it reads the task (and,
// when c.PoolSlots > 0, the pool's holders), checks that the task may start
// and that the pool has a slot whose holder's lease runs past c.Now, then
// writes the new try and the slot.
func (s *Store) ClaimTask(ctx context.Context, c state.Claim) (state.TaskInstance, error) {
	ref := s.taskRef(c.Key)
	id := taskID(c.Key)
	usePool := c.PoolSlots > 0
	if usePool && c.Pool == "" {
		return state.TaskInstance{}, fmt.Errorf("claim %s: %d pool slots but no pool name", keyString(c.Key), c.PoolSlots)
	}
	slotPool := "" // the pool whose slot the claim takes
	if usePool {
		slotPool = c.Pool
	}
	leaseUntil := ts(c.Now.Add(c.Lease))
	var out state.TaskInstance
	err := s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		t, p, err := s.getTaskAndPool(tx, ref, slotPool)
		if err != nil {
			return err
		}
		if why := claimable(t, c.Now); why != "" {
			return fmt.Errorf("%s: %w", why, state.ErrNotClaimable)
		}
		if usePool {
			if n := p.held(id, c.Now); n >= c.PoolSlots {
				return fmt.Errorf("pool %s: %d of %d slots held: %w", c.Pool, n, c.PoolSlots, state.ErrPoolFull)
			}
			p.dropExpired(c.Now)
			p.Holders[id] = leaseUntil
			if err := tx.Set(s.poolRef(c.Pool), p); err != nil {
				return err
			}
		}
		t.State = string(state.TaskRunning)
		t.Try++
		t.Owner = c.Owner
		t.LeaseUntil = leaseUntil
		t.StartedAt = ts(c.Now)
		t.EndedAt = time.Time{}
		t.NextTryAt = time.Time{}
		t.DeadlineAlerted = false
		if t.FirstPokeAt.IsZero() {
			t.FirstPokeAt = ts(c.Now)
		}
		if c.Pool != "" {
			t.Pool = c.Pool
		}
		t.PoolSlot = usePool
		if err := tx.Set(ref, t); err != nil {
			return err
		}
		out = t.task()
		return nil
	})
	if err != nil {
		return state.TaskInstance{}, fmt.Errorf("claim %s: %w", keyString(c.Key), mapCode(err, nil))
	}
	return out, nil
}

// fenced says why the attempt (try, owner) no longer owns t, or "" if it does.
func fenced(t taskDoc, try int, owner string) string {
	switch {
	case t.Try != try:
		return fmt.Sprintf("try %d is current, not %d", t.Try, try)
	case state.TaskState(t.State) != state.TaskRunning:
		return fmt.Sprintf("task is %s", t.State)
	case t.Owner != owner:
		return fmt.Sprintf("try %d is owned by %s", try, t.Owner)
	}
	return ""
}

// RenewLease extends the current try's lease, and its pool slot with it
// (taking the slot back if a claim dropped it as expired: the try still runs).
func (s *Store) RenewLease(ctx context.Context, key state.TaskKey, try int, owner string, until time.Time) error {
	ref := s.taskRef(key)
	id := taskID(key)
	until = ts(until)
	err := s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		t, p, err := s.getTaskThenPool(tx, ref)
		if err != nil {
			return err
		}
		if why := fenced(t, try, owner); why != "" {
			return fmt.Errorf("%s: %w", why, state.ErrFenced)
		}
		t.LeaseUntil = until
		if t.PoolSlot {
			p.Holders[id] = until
			if err := tx.Set(s.poolRef(t.Pool), p); err != nil {
				return err
			}
		}
		return tx.Set(ref, t)
	})
	if err != nil {
		return fmt.Errorf("renew lease of %s try %d: %w", keyString(key), try, mapCode(err, nil))
	}
	return nil
}

// FinishTask records the outcome of the current try and frees its pool slot.
func (s *Store) FinishTask(ctx context.Context, f state.Finish) (state.TaskInstance, error) {
	switch f.State {
	case state.TaskSuccess, state.TaskFailed, state.TaskSkipped, state.TaskUpForRetry, state.TaskUpForReschedule:
	default:
		return state.TaskInstance{}, fmt.Errorf("finish %s try %d: %q is not an outcome", keyString(f.Key), f.Try, f.State)
	}
	ref := s.taskRef(f.Key)
	id := taskID(f.Key)
	var out state.TaskInstance
	err := s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		t, p, err := s.getTaskThenPool(tx, ref)
		if err != nil {
			return err
		}
		if why := fenced(t, f.Try, f.Owner); why != "" {
			return fmt.Errorf("%s: %w", why, state.ErrFenced)
		}
		if _, held := p.Holders[id]; held {
			delete(p.Holders, id)
			if err := tx.Set(s.poolRef(t.Pool), p); err != nil {
				return err
			}
		}
		t.PoolSlot = false
		t.State = string(f.State)
		t.LeaseUntil = time.Time{}
		t.EndedAt = ts(f.Now)
		t.Error = f.Error
		t.Waiting = f.Waiting
		t.NextTryAt = time.Time{}
		if f.State == state.TaskUpForRetry || f.State == state.TaskUpForReschedule {
			t.NextTryAt = ts(f.NextTryAt)
		}
		if f.Failed {
			t.Failures++
		}
		if err := tx.Set(ref, t); err != nil {
			return err
		}
		out = t.task()
		return nil
	})
	if err != nil {
		return state.TaskInstance{}, fmt.Errorf("finish %s try %d as %s: %w", keyString(f.Key), f.Try, f.State, mapCode(err, nil))
	}
	return out, nil
}

// MarkTaskDeadlineAlerted records that the current try's expected-duration
// alert was sent; false if already recorded or if try is not current.
func (s *Store) MarkTaskDeadlineAlerted(ctx context.Context, key state.TaskKey, try int) (bool, error) {
	ref := s.taskRef(key)
	var marked bool
	err := s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		marked = false
		t, _, err := s.getTaskAndPool(tx, ref, "")
		if err != nil {
			return err
		}
		if t.Try != try || t.DeadlineAlerted {
			return nil
		}
		t.DeadlineAlerted = true
		marked = true
		return tx.Set(ref, t)
	})
	if err != nil {
		return false, fmt.Errorf("mark deadline alert of %s try %d: %w", keyString(key), try, mapCode(err, nil))
	}
	return marked, nil
}
