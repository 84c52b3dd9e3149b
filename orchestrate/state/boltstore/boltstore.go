// Package boltstore owns the embedded implementation of state.Store: one
// local bbolt file holding runs, task instances, backfills, pause flags and
// pool slots. It is the orchestrator's default store.
//
// Every write runs inside a bbolt read-write transaction, and one goroutine
// commits them in turn, so the store's invariants (one run per data
// interval, fenced attempts, leases, pool slots, the per-DAG cap on active
// runs) hold for every goroutine of the process that opened the file.
// Writes that arrive together share one commit (group commit, see
// commit.go); a method returns only once its write is on disk. bbolt locks
// the file, so only one process uses it at a time; schedulers on several
// machines use the Firestore store instead.
//
// Layout (keys are NUL-separated, values JSON unless noted):
//
//	runs      dag \0 runID             -> state.Run (runID sorts by interval)
//	tasks     dag \0 runID \0 taskID   -> state.TaskInstance
//	runstate  state \0 dag \0 runID    -> empty (index: runs by state; the
//	                                      running entries are the DAG's active runs)
//	pools     pool \0 dag \0 runID \0 taskID -> lease end, Unix nanoseconds
//	                                      (big endian): the pool's slot holders
//	backfills id                       -> state.Backfill
//	dags      dag                      -> state.DAGInfo
//
// Errors are the state package's (wrapped with the operation and the IDs),
// plus I/O and encoding errors from the file.
package boltstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labplatform/platform/orchestrate/state"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketRuns      = []byte("runs")
	bucketTasks     = []byte("tasks")
	bucketRunState  = []byte("runstate")
	bucketPools     = []byte("pools")
	bucketBackfills = []byte("backfills")
	bucketDAGs      = []byte("dags")
)

// Options are the optional settings of Open.
type Options struct {
	// Timeout bounds the wait for the file lock held by another process;
	// zero waits forever.
	Timeout time.Duration
	// NoSync skips fsync after each commit. Only for tests: a crash may lose
	// or corrupt recent writes.
	NoSync bool
}

// Store is a state.Store in a bbolt file.
type Store struct {
	db *bolt.DB
	// calls feeds the committer goroutine, the only writer.
	calls chan *call
	// mu guards closed against sends on calls.
	mu     sync.RWMutex
	closed bool
	// committed is closed when the committer has returned.
	committed chan struct{}
}

var _ state.Store = (*Store)(nil)

// Open opens (creating if needed) the store in the file at path.
func Open(path string, opts Options) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.Timeout,
		NoSync:  opts.NoSync,
		// The freelist is rebuilt on open instead of being written at every
		// commit: fewer pages per transaction.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRuns, bucketTasks, bucketRunState, bucketPools, bucketBackfills, bucketDAGs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("create buckets in %s: %w", path, err)
	}
	s := &Store{db: db, calls: make(chan *call), committed: make(chan struct{})}
	go s.commit()
	return s, nil
}

// Close waits for the writes under way and closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.calls)
	s.mu.Unlock()
	<-s.committed
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state file: %w", err)
	}
	return nil
}

// Keys.

const sep = "\x00"

func runKey(dagID, runID string) []byte { return []byte(dagID + sep + runID) }

func taskKey(k state.TaskKey) []byte { return []byte(k.DAGID + sep + k.RunID + sep + k.TaskID) }

func taskPrefix(dagID, runID string) []byte { return []byte(dagID + sep + runID + sep) }

func runStateKey(st state.RunState, dagID, runID string) []byte {
	return []byte(string(st) + sep + dagID + sep + runID)
}

func poolKey(pool string, k state.TaskKey) []byte { return append([]byte(pool+sep), taskKey(k)...) }

func keyName(k state.TaskKey) string { return k.DAGID + "/" + k.RunID + "/" + k.TaskID }

// validID rejects IDs that would break the key layout.
func validID(what, id string) error {
	if id == "" || strings.Contains(id, sep) {
		return fmt.Errorf("invalid %s %q", what, id)
	}
	return nil
}

// Encoding.

func get[T any](b *bolt.Bucket, key []byte) (T, error) {
	var v T
	raw := b.Get(key)
	if raw == nil {
		return v, state.ErrNotFound
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("decode %q: %w", key, err)
	}
	return v, nil
}

func put(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	return b.Put(key, raw)
}

func encodeTime(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())) }

func decodeTime(b []byte) time.Time {
	if len(b) != 8 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)))
}

// forPrefix calls fn for each key of b starting with prefix, in key order.
func forPrefix(b *bolt.Bucket, prefix []byte, fn func(k, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// keysWithPrefix returns copies of the keys of b starting with prefix.
func keysWithPrefix(b *bolt.Bucket, prefix []byte) [][]byte {
	var keys [][]byte
	_ = forPrefix(b, prefix, func(k, _ []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	})
	return keys
}

// DAGs.

// DAG returns the DAG's stored state; a DAG never seen is not paused.
func (s *Store) DAG(_ context.Context, dagID string) (state.DAGInfo, error) {
	info := state.DAGInfo{DAGID: dagID}
	err := s.db.View(func(tx *bolt.Tx) error {
		d, err := get[state.DAGInfo](tx.Bucket(bucketDAGs), []byte(dagID))
		if errors.Is(err, state.ErrNotFound) {
			return nil
		}
		info = d
		return err
	})
	if err != nil {
		return state.DAGInfo{}, fmt.Errorf("get dag %s: %w", dagID, err)
	}
	return info, nil
}

// SetPaused pauses or unpauses a DAG.
func (s *Store) SetPaused(ctx context.Context, dagID string, paused bool) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		return put(tx.Bucket(bucketDAGs), []byte(dagID), state.DAGInfo{DAGID: dagID, Paused: paused})
	})
	if err != nil {
		return fmt.Errorf("set dag %s paused=%t: %w", dagID, paused, err)
	}
	return nil
}

// Runs.

// setRunState moves a run to st, keeping the state index in step.
func setRunState(tx *bolt.Tx, r *state.Run, st state.RunState) error {
	idx := tx.Bucket(bucketRunState)
	if err := idx.Delete(runStateKey(r.State, r.DAGID, r.RunID)); err != nil {
		return err
	}
	r.State = st
	if err := idx.Put(runStateKey(st, r.DAGID, r.RunID), nil); err != nil {
		return err
	}
	return put(tx.Bucket(bucketRuns), runKey(r.DAGID, r.RunID), r)
}

// CreateRun stores a new run in state queued with its task instances in
// state none. The run ID must be state.RunID of the interval (it is filled
// in when empty), so a data interval has at most one run.
func (s *Store) CreateRun(ctx context.Context, run state.Run, taskIDs []string) error {
	want := state.RunID(run.IntervalStart, run.IntervalEnd)
	if run.RunID == "" {
		run.RunID = want
	}
	if run.RunID != want {
		return fmt.Errorf("create run %s/%s: run ID is not the interval's ID %s", run.DAGID, run.RunID, want)
	}
	if err := validID("dag ID", run.DAGID); err != nil {
		return fmt.Errorf("create run %s: %w", run.RunID, err)
	}
	for _, id := range taskIDs {
		if err := validID("task ID", id); err != nil {
			return fmt.Errorf("create run %s/%s: %w", run.DAGID, run.RunID, err)
		}
	}
	run.State = state.RunQueued
	err := s.update(ctx, func(tx *bolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		key := runKey(run.DAGID, run.RunID)
		if runs.Get(key) != nil {
			return state.ErrRunExists
		}
		if err := put(runs, key, run); err != nil {
			return err
		}
		if err := tx.Bucket(bucketRunState).Put(runStateKey(run.State, run.DAGID, run.RunID), nil); err != nil {
			return err
		}
		tasks := tx.Bucket(bucketTasks)
		for _, id := range taskIDs {
			k := state.TaskKey{DAGID: run.DAGID, RunID: run.RunID, TaskID: id}
			if err := put(tasks, taskKey(k), state.TaskInstance{TaskKey: k, State: state.TaskNone}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create run %s/%s: %w", run.DAGID, run.RunID, err)
	}
	return nil
}

// Run returns one run.
func (s *Store) Run(_ context.Context, dagID, runID string) (state.Run, error) {
	var r state.Run
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = get[state.Run](tx.Bucket(bucketRuns), runKey(dagID, runID))
		return err
	})
	if err != nil {
		return state.Run{}, fmt.Errorf("get run %s/%s: %w", dagID, runID, err)
	}
	return r, nil
}

// Runs lists runs, newest logical date first. A state filter reads the
// state index instead of every run.
func (s *Store) Runs(_ context.Context, f state.RunFilter) ([]state.Run, error) {
	var out []state.Run
	keep := func(raw []byte) error {
		var r state.Run
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("decode run: %w", err)
		}
		if f.BackfillID == "" || r.BackfillID == f.BackfillID {
			out = append(out, r)
		}
		return nil
	}
	var dagPrefix string
	if f.DAGID != "" {
		dagPrefix = f.DAGID + sep
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		runs := tx.Bucket(bucketRuns)
		if len(f.States) == 0 {
			return forPrefix(runs, []byte(dagPrefix), func(_, v []byte) error { return keep(v) })
		}
		idx := tx.Bucket(bucketRunState)
		for _, st := range slices.Compact(slices.Sorted(slices.Values(f.States))) {
			prefix := []byte(string(st) + sep + dagPrefix)
			err := forPrefix(idx, prefix, func(k, _ []byte) error {
				raw := runs.Get(k[len(st)+len(sep):])
				if raw == nil {
					return fmt.Errorf("state index entry %q has no run", k)
				}
				return keep(raw)
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list runs of %q: %w", f.DAGID, err)
	}
	slices.SortFunc(out, func(a, b state.Run) int {
		return cmp.Or(b.LogicalDate.Compare(a.LogicalDate), cmp.Compare(b.DAGID, a.DAGID), cmp.Compare(b.RunID, a.RunID))
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// LatestRun returns the run with the latest data interval of the given kind
// (any kind when empty).
func (s *Store) LatestRun(_ context.Context, dagID string, kind state.RunKind) (state.Run, error) {
	var found state.Run
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		found, err = latestRun(tx, dagID, kind)
		return err
	})
	if err != nil {
		return state.Run{}, fmt.Errorf("latest %q run of %s: %w", kind, dagID, err)
	}
	return found, nil
}

// latestRun returns the DAG's run with the latest data interval of the
// given kind (any kind when empty), or state.ErrNotFound. Run IDs sort by
// interval, so it walks the DAG's runs backwards and stops at the first
// match.
func latestRun(tx *bolt.Tx, dagID string, kind state.RunKind) (state.Run, error) {
	prefix := []byte(dagID + sep)
	c := tx.Bucket(bucketRuns).Cursor()
	// Seek past the prefix, then step back.
	var k, v []byte
	if k, _ = c.Seek(append(bytes.Clone(prefix[:len(prefix)-1]), sep[0]+1)); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		var r state.Run
		if err := json.Unmarshal(v, &r); err != nil {
			return state.Run{}, fmt.Errorf("decode run %q: %w", k, err)
		}
		if kind == "" || r.Kind == kind {
			return r, nil
		}
	}
	return state.Run{}, state.ErrNotFound
}

// StartRun moves a queued run to running unless the DAG already has
// maxActive running runs (maxActive <= 0 means no cap). Starting a running
// run is a no-op; starting a finished run is ErrConflict.
func (s *Store) StartRun(ctx context.Context, dagID, runID string, maxActive int, now time.Time) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		r, err := get[state.Run](tx.Bucket(bucketRuns), runKey(dagID, runID))
		if err != nil {
			return err
		}
		switch r.State {
		case state.RunRunning:
			return nil
		case state.RunQueued:
		default:
			return fmt.Errorf("run is %s: %w", r.State, state.ErrConflict)
		}
		if maxActive > 0 {
			active := 0
			_ = forPrefix(tx.Bucket(bucketRunState), []byte(string(state.RunRunning)+sep+dagID+sep), func(_, _ []byte) error {
				active++
				return nil
			})
			if active >= maxActive {
				return state.ErrMaxActiveRuns
			}
		}
		r.StartedAt = now
		return setRunState(tx, &r, state.RunRunning)
	})
	if err != nil {
		return fmt.Errorf("start run %s/%s: %w", dagID, runID, err)
	}
	return nil
}

// EndRun moves a run from state from (queued or running) to to (success or
// failed). A run in another state than from is ErrConflict. Ending a running
// run drops it from the running index, which frees its active-run slot.
func (s *Store) EndRun(ctx context.Context, dagID, runID string, from, to state.RunState, now time.Time) error {
	if from != state.RunQueued && from != state.RunRunning {
		return fmt.Errorf("end run %s/%s: %q is not a state a run ends from", dagID, runID, from)
	}
	if !to.Finished() {
		return fmt.Errorf("end run %s/%s: %q is not a final run state", dagID, runID, to)
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		r, err := get[state.Run](tx.Bucket(bucketRuns), runKey(dagID, runID))
		if err != nil {
			return err
		}
		if r.State != from {
			return fmt.Errorf("run is %s, not %s: %w", r.State, from, state.ErrConflict)
		}
		r.EndedAt = now
		return setRunState(tx, &r, to)
	})
	if err != nil {
		return fmt.Errorf("end run %s/%s as %s: %w", dagID, runID, to, err)
	}
	return nil
}

// MarkRunDeadlineAlerted records that the run's deadline alert was sent; it
// reports false if it was already recorded.
func (s *Store) MarkRunDeadlineAlerted(ctx context.Context, dagID, runID string) (bool, error) {
	var marked bool
	err := s.update(ctx, func(tx *bolt.Tx) error {
		marked = false
		runs := tx.Bucket(bucketRuns)
		r, err := get[state.Run](runs, runKey(dagID, runID))
		if err != nil || r.DeadlineAlerted {
			return err
		}
		r.DeadlineAlerted, marked = true, true
		return put(runs, runKey(dagID, runID), r)
	})
	if err != nil {
		return false, fmt.Errorf("mark run %s/%s deadline alerted: %w", dagID, runID, err)
	}
	return marked, nil
}

// ResetRun puts a run back to queued for another pass, due now. Reset task
// instances go back to state none with no failures, but keep their Try: it
// is the fencing token and keeps growing.
func (s *Store) ResetRun(ctx context.Context, dagID, runID string, onlyFailed bool, backfillID string, now time.Time) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		r, err := get[state.Run](tx.Bucket(bucketRuns), runKey(dagID, runID))
		if err != nil {
			return err
		}
		tasks := tx.Bucket(bucketTasks)
		var reset []state.TaskInstance
		err = forPrefix(tasks, taskPrefix(dagID, runID), func(k, v []byte) error {
			var ti state.TaskInstance
			if err := json.Unmarshal(v, &ti); err != nil {
				return fmt.Errorf("decode task %q: %w", k, err)
			}
			if ti.State == state.TaskRunning && now.Before(ti.LeaseUntil) {
				return fmt.Errorf("task %s is running until %s: %w", ti.TaskID, ti.LeaseUntil.UTC().Format(time.RFC3339), state.ErrConflict)
			}
			switch {
			case !onlyFailed,
				ti.State == state.TaskFailed, ti.State == state.TaskUpstreamFailed, ti.State == state.TaskSkipped:
				reset = append(reset, ti)
			}
			return nil
		})
		if err != nil {
			return err
		}
		pools := tx.Bucket(bucketPools)
		for _, ti := range reset {
			if ti.Pool != "" {
				if err := pools.Delete(poolKey(ti.Pool, ti.TaskKey)); err != nil {
					return err
				}
			}
			fresh := state.TaskInstance{TaskKey: ti.TaskKey, State: state.TaskNone, Try: ti.Try}
			if err := put(tasks, taskKey(ti.TaskKey), fresh); err != nil {
				return err
			}
		}
		if backfillID != "" {
			r.BackfillID = backfillID
		}
		r.DueAt = now
		r.StartedAt, r.EndedAt, r.DeadlineAlerted = time.Time{}, time.Time{}, false
		return setRunState(tx, &r, state.RunQueued)
	})
	if err != nil {
		return fmt.Errorf("reset run %s/%s: %w", dagID, runID, err)
	}
	return nil
}

// Tasks.

// Tasks returns a run's task instances in task ID order.
func (s *Store) Tasks(_ context.Context, dagID, runID string) ([]state.TaskInstance, error) {
	var out []state.TaskInstance
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketRuns).Get(runKey(dagID, runID)) == nil {
			return state.ErrNotFound
		}
		return forPrefix(tx.Bucket(bucketTasks), taskPrefix(dagID, runID), func(k, v []byte) error {
			var ti state.TaskInstance
			if err := json.Unmarshal(v, &ti); err != nil {
				return fmt.Errorf("decode task %q: %w", k, err)
			}
			out = append(out, ti)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list tasks of %s/%s: %w", dagID, runID, err)
	}
	return out, nil
}

// SetTaskStates moves task instances in state none to queued,
// upstream_failed or skipped; tasks in another state are left alone. An
// unknown task ID is ErrNotFound and nothing changes.
func (s *Store) SetTaskStates(ctx context.Context, dagID, runID string, states map[string]state.TaskState, now time.Time) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketRuns).Get(runKey(dagID, runID)) == nil {
			return state.ErrNotFound
		}
		tasks := tx.Bucket(bucketTasks)
		for id, st := range states {
			k := state.TaskKey{DAGID: dagID, RunID: runID, TaskID: id}
			ti, err := get[state.TaskInstance](tasks, taskKey(k))
			if err != nil {
				return fmt.Errorf("task %s: %w", id, err)
			}
			if ti.State != state.TaskNone {
				continue
			}
			switch st {
			case state.TaskQueued:
				ti.ReadyAt = now
			case state.TaskUpstreamFailed, state.TaskSkipped:
				ti.EndedAt = now
			default:
				return fmt.Errorf("task %s: the scheduler cannot set state %q", id, st)
			}
			ti.State = st
			if err := put(tasks, taskKey(k), ti); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set task states of %s/%s: %w", dagID, runID, err)
	}
	return nil
}

// claimable reports why ti cannot start at now, or nil.
func claimable(ti state.TaskInstance, now time.Time) error {
	switch ti.State {
	case state.TaskQueued:
		return nil
	case state.TaskUpForRetry, state.TaskUpForReschedule:
		if now.Before(ti.NextTryAt) {
			return fmt.Errorf("task is %s until %s: %w", ti.State, ti.NextTryAt.UTC().Format(time.RFC3339Nano), state.ErrNotClaimable)
		}
		return nil
	case state.TaskRunning:
		if now.Before(ti.LeaseUntil) {
			return fmt.Errorf("try %d is leased by %s until %s: %w", ti.Try, ti.Owner, ti.LeaseUntil.UTC().Format(time.RFC3339Nano), state.ErrNotClaimable)
		}
		return nil
	}
	return fmt.Errorf("task is %s: %w", ti.State, state.ErrNotClaimable)
}

// ClaimTask starts an attempt: the try grows by one and the lease is the
// caller's. The first claim sets FirstPokeAt.
func (s *Store) ClaimTask(ctx context.Context, c state.Claim) (state.TaskInstance, error) {
	var out state.TaskInstance
	err := s.update(ctx, func(tx *bolt.Tx) error {
		tasks := tx.Bucket(bucketTasks)
		ti, err := get[state.TaskInstance](tasks, taskKey(c.Key))
		if err != nil {
			return err
		}
		if err := claimable(ti, c.Now); err != nil {
			return err
		}
		pools := tx.Bucket(bucketPools)
		own := poolKey(c.Pool, c.Key)
		if c.PoolSlots > 0 {
			held := 0
			_ = forPrefix(pools, []byte(c.Pool+sep), func(k, v []byte) error {
				if !bytes.Equal(k, own) && c.Now.Before(decodeTime(v)) {
					held++
				}
				return nil
			})
			if held >= c.PoolSlots {
				return fmt.Errorf("pool %s has %d of %d slots taken: %w", c.Pool, held, c.PoolSlots, state.ErrPoolFull)
			}
		}
		if ti.Pool != "" {
			if err := pools.Delete(poolKey(ti.Pool, c.Key)); err != nil {
				return err
			}
		}
		ti.State = state.TaskRunning
		ti.Try++
		ti.Owner = c.Owner
		ti.Pool = c.Pool
		ti.LeaseUntil = c.Now.Add(c.Lease)
		ti.StartedAt = c.Now
		ti.EndedAt = time.Time{}
		ti.NextTryAt = time.Time{}
		ti.DeadlineAlerted = false
		if ti.FirstPokeAt.IsZero() {
			ti.FirstPokeAt = c.Now
		}
		if c.PoolSlots > 0 {
			if err := pools.Put(own, encodeTime(ti.LeaseUntil)); err != nil {
				return err
			}
		}
		out = ti
		return put(tasks, taskKey(c.Key), ti)
	})
	if err != nil {
		return state.TaskInstance{}, fmt.Errorf("claim %s for %s: %w", keyName(c.Key), c.Owner, err)
	}
	return out, nil
}

// current returns the task if try is its current, running attempt owned by
// owner, and ErrFenced otherwise.
func current(tasks *bolt.Bucket, key state.TaskKey, try int, owner string) (state.TaskInstance, error) {
	ti, err := get[state.TaskInstance](tasks, taskKey(key))
	if err != nil {
		return ti, err
	}
	if ti.State != state.TaskRunning || ti.Try != try || ti.Owner != owner {
		return ti, fmt.Errorf("current attempt is try %d (%s) by %q: %w", ti.Try, ti.State, ti.Owner, state.ErrFenced)
	}
	return ti, nil
}

// RenewLease extends the current try's lease (and its pool slot).
func (s *Store) RenewLease(ctx context.Context, key state.TaskKey, try int, owner string, until time.Time) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		tasks := tx.Bucket(bucketTasks)
		ti, err := current(tasks, key, try, owner)
		if err != nil {
			return err
		}
		ti.LeaseUntil = until
		if ti.Pool != "" {
			pools := tx.Bucket(bucketPools)
			if pk := poolKey(ti.Pool, key); pools.Get(pk) != nil {
				if err := pools.Put(pk, encodeTime(until)); err != nil {
					return err
				}
			}
		}
		return put(tasks, taskKey(key), ti)
	})
	if err != nil {
		return fmt.Errorf("renew lease of %s try %d: %w", keyName(key), try, err)
	}
	return nil
}

// FinishTask records the outcome of the current try and frees its pool slot.
func (s *Store) FinishTask(ctx context.Context, f state.Finish) (state.TaskInstance, error) {
	var out state.TaskInstance
	err := s.update(ctx, func(tx *bolt.Tx) error {
		switch f.State {
		case state.TaskSuccess, state.TaskFailed, state.TaskSkipped, state.TaskUpForRetry, state.TaskUpForReschedule:
		default:
			return fmt.Errorf("%q is not an attempt outcome", f.State)
		}
		tasks := tx.Bucket(bucketTasks)
		ti, err := current(tasks, f.Key, f.Try, f.Owner)
		if err != nil {
			return err
		}
		if ti.Pool != "" {
			if err := tx.Bucket(bucketPools).Delete(poolKey(ti.Pool, f.Key)); err != nil {
				return err
			}
		}
		ti.State = f.State
		ti.EndedAt = f.Now
		ti.LeaseUntil = time.Time{}
		ti.Error = f.Error
		ti.Waiting = f.Waiting
		ti.NextTryAt = time.Time{}
		if f.State == state.TaskUpForRetry || f.State == state.TaskUpForReschedule {
			ti.NextTryAt = f.NextTryAt
		}
		if f.Failed {
			ti.Failures++
		}
		out = ti
		return put(tasks, taskKey(f.Key), ti)
	})
	if err != nil {
		return state.TaskInstance{}, fmt.Errorf("finish %s try %d as %s: %w", keyName(f.Key), f.Try, f.State, err)
	}
	return out, nil
}

// MarkTaskDeadlineAlerted records that the current try's expected-duration
// alert was sent; it reports false if already recorded, or if try is not
// the current running attempt.
func (s *Store) MarkTaskDeadlineAlerted(ctx context.Context, key state.TaskKey, try int) (bool, error) {
	var marked bool
	err := s.update(ctx, func(tx *bolt.Tx) error {
		marked = false
		tasks := tx.Bucket(bucketTasks)
		ti, err := get[state.TaskInstance](tasks, taskKey(key))
		if err != nil {
			return err
		}
		if ti.Try != try || ti.State != state.TaskRunning || ti.DeadlineAlerted {
			return nil
		}
		ti.DeadlineAlerted, marked = true, true
		return put(tasks, taskKey(key), ti)
	})
	if err != nil {
		return false, fmt.Errorf("mark %s try %d deadline alerted: %w", keyName(key), try, err)
	}
	return marked, nil
}

// Backfills.

// CreateBackfill stores a new backfill (ErrExists if its ID is taken).
func (s *Store) CreateBackfill(ctx context.Context, b state.Backfill) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if err := validID("backfill ID", b.ID); err != nil {
			return err
		}
		bs := tx.Bucket(bucketBackfills)
		if bs.Get([]byte(b.ID)) != nil {
			return state.ErrExists
		}
		return put(bs, []byte(b.ID), b)
	})
	if err != nil {
		return fmt.Errorf("create backfill %s: %w", b.ID, err)
	}
	return nil
}

// Backfill returns one backfill.
func (s *Store) Backfill(_ context.Context, id string) (state.Backfill, error) {
	var b state.Backfill
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		b, err = get[state.Backfill](tx.Bucket(bucketBackfills), []byte(id))
		return err
	})
	if err != nil {
		return state.Backfill{}, fmt.Errorf("get backfill %s: %w", id, err)
	}
	return b, nil
}

// Backfills lists backfills, newest (by CreatedAt) first.
func (s *Store) Backfills(_ context.Context) ([]state.Backfill, error) {
	var out []state.Backfill
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBackfills).ForEach(func(k, v []byte) error {
			var b state.Backfill
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("decode backfill %q: %w", k, err)
			}
			out = append(out, b)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list backfills: %w", err)
	}
	slices.SortFunc(out, func(a, b state.Backfill) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
	})
	return out, nil
}

// UpdateBackfill replaces a backfill if it still has prevUpdatedAt; a
// cancelled backfill cannot leave that state.
func (s *Store) UpdateBackfill(ctx context.Context, b state.Backfill, prevUpdatedAt time.Time) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		bs := tx.Bucket(bucketBackfills)
		cur, err := get[state.Backfill](bs, []byte(b.ID))
		if err != nil {
			return err
		}
		if !cur.UpdatedAt.Equal(prevUpdatedAt) {
			return fmt.Errorf("updated at %s, not %s: %w", cur.UpdatedAt.UTC().Format(time.RFC3339Nano), prevUpdatedAt.UTC().Format(time.RFC3339Nano), state.ErrConflict)
		}
		if cur.State == state.BackfillCancelled && b.State != state.BackfillCancelled {
			return fmt.Errorf("backfill is cancelled: %w", state.ErrConflict)
		}
		return put(bs, []byte(b.ID), b)
	})
	if err != nil {
		return fmt.Errorf("update backfill %s: %w", b.ID, err)
	}
	return nil
}

// Prune deletes finished runs that ended before the given time with their
// task instances, and finished backfills that ended before it. Each DAG's
// latest scheduled run (the one LatestRun(dag, KindScheduled) returns) stays,
// whatever its age: the scheduler continues the schedule from it. It returns
// the number of runs deleted.
func (s *Store) Prune(ctx context.Context, before time.Time) (int, error) {
	var deleted int
	err := s.update(ctx, func(tx *bolt.Tx) error {
		deleted = 0
		runs, tasks := tx.Bucket(bucketRuns), tx.Bucket(bucketTasks)
		idx, pools := tx.Bucket(bucketRunState), tx.Bucket(bucketPools)
		// latest caches each DAG's latest scheduled run ID ("" when none).
		latest := make(map[string]string)
		isLatest := func(r state.Run) (bool, error) {
			if r.Kind != state.KindScheduled {
				return false, nil
			}
			id, ok := latest[r.DAGID]
			if !ok {
				l, err := latestRun(tx, r.DAGID, state.KindScheduled)
				if err != nil {
					return false, fmt.Errorf("latest scheduled run of %s: %w", r.DAGID, err)
				}
				id = l.RunID
				latest[r.DAGID] = id
			}
			return id == r.RunID, nil
		}
		var old []state.Run
		for _, st := range []state.RunState{state.RunSuccess, state.RunFailed} {
			err := forPrefix(idx, []byte(string(st)+sep), func(k, _ []byte) error {
				r, err := get[state.Run](runs, k[len(st)+len(sep):])
				if err != nil {
					return fmt.Errorf("state index entry %q: %w", k, err)
				}
				if r.EndedAt.IsZero() || !r.EndedAt.Before(before) {
					return nil
				}
				if keep, err := isLatest(r); err != nil || keep {
					return err
				}
				old = append(old, r)
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, r := range old {
			for _, k := range keysWithPrefix(tasks, taskPrefix(r.DAGID, r.RunID)) {
				ti, err := get[state.TaskInstance](tasks, k)
				if err != nil {
					return err
				}
				if ti.Pool != "" {
					if err := pools.Delete(poolKey(ti.Pool, ti.TaskKey)); err != nil {
						return err
					}
				}
				if err := tasks.Delete(k); err != nil {
					return err
				}
			}
			if err := idx.Delete(runStateKey(r.State, r.DAGID, r.RunID)); err != nil {
				return err
			}
			if err := runs.Delete(runKey(r.DAGID, r.RunID)); err != nil {
				return err
			}
		}
		deleted = len(old)

		bs := tx.Bucket(bucketBackfills)
		var oldBackfills [][]byte
		err := bs.ForEach(func(k, v []byte) error {
			var b state.Backfill
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("decode backfill %q: %w", k, err)
			}
			if b.State != state.BackfillRunning && !b.EndedAt.IsZero() && b.EndedAt.Before(before) {
				oldBackfills = append(oldBackfills, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range oldBackfills {
			if err := bs.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune state before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return deleted, nil
}
