// Package state defines what the orchestrator remembers — runs, task
// instances, backfills, pause flags, pools — and the Store interface both
// implementations satisfy: boltstore (embedded, the default) and
// firestorestore (shared by several schedulers). statetest is the
// conformance suite every implementation passes.
//
// The store, not the scheduler, enforces the invariants that must hold
// across processes: one run per (dag, data interval), fenced task attempts,
// leases, pool slots and the per-DAG cap on active runs.
package state

import (
	"context"
	"errors"
	"time"
)

// Errors every Store returns (wrapped) for the same conditions.
var (
	// ErrNotFound: no such run, task instance or backfill.
	ErrNotFound = errors.New("not found")
	// ErrRunExists: a run for the same (dag, data interval) already exists.
	ErrRunExists = errors.New("run already exists for this data interval")
	// ErrExists: a backfill with the same ID already exists.
	ErrExists = errors.New("already exists")
	// ErrNotClaimable: the task is not in a state that may start now (another
	// scheduler holds an unexpired lease, it is not yet due, or it finished).
	ErrNotClaimable = errors.New("task not claimable")
	// ErrFenced: a newer attempt owns the task; the caller's attempt is stale
	// and must stop without writing.
	ErrFenced = errors.New("stale task attempt")
	// ErrPoolFull: the task's pool has no free slot.
	ErrPoolFull = errors.New("pool has no free slot")
	// ErrMaxActiveRuns: the DAG already runs its maximum number of runs.
	ErrMaxActiveRuns = errors.New("dag has its maximum of active runs")
	// ErrConflict: the object changed state in a way that forbids the
	// operation (for example clearing a run that is still running a task).
	ErrConflict = errors.New("conflicting state")
)

// RunState is a run's state.
type RunState string

// Run states.
const (
	RunQueued  RunState = "queued"
	RunRunning RunState = "running"
	RunSuccess RunState = "success"
	RunFailed  RunState = "failed"
)

// Finished reports whether s is terminal.
func (s RunState) Finished() bool { return s == RunSuccess || s == RunFailed }

// TaskState is a task instance's state.
type TaskState string

// Task states. None is a task whose upstream has not finished yet.
const (
	TaskNone           TaskState = "none"
	TaskQueued         TaskState = "queued"
	TaskRunning        TaskState = "running"
	TaskSuccess        TaskState = "success"
	TaskFailed         TaskState = "failed"
	TaskUpstreamFailed TaskState = "upstream_failed"
	TaskSkipped        TaskState = "skipped"
	TaskUpForRetry     TaskState = "up_for_retry"
	// TaskUpForReschedule is a sensor waiting for its next poke; it holds no
	// worker slot and no pool slot.
	TaskUpForReschedule TaskState = "up_for_reschedule"
)

// Finished reports whether s is terminal.
func (s TaskState) Finished() bool {
	switch s {
	case TaskSuccess, TaskFailed, TaskUpstreamFailed, TaskSkipped:
		return true
	}
	return false
}

// RunKind says how a run was created.
type RunKind string

// Run kinds.
const (
	KindScheduled RunKind = "scheduled"
	KindManual    RunKind = "manual"
	KindBackfill  RunKind = "backfill"
)

// RunID returns the run ID of a data interval. The ID is derived from the
// interval only, so two ways of creating a run for the same interval collide.
func RunID(start, end time.Time) string {
	const f = "20060102T150405Z"
	return start.UTC().Format(f) + "_" + end.UTC().Format(f)
}

// Run is one execution of a DAG for one data interval.
type Run struct {
	DAGID         string            `json:"dag_id"`
	RunID         string            `json:"run_id"`
	Kind          RunKind           `json:"kind"`
	LogicalDate   time.Time         `json:"logical_date"`
	IntervalStart time.Time         `json:"interval_start"`
	IntervalEnd   time.Time         `json:"interval_end"`
	Params        map[string]string `json:"params,omitempty"`
	State         RunState          `json:"state"`
	BackfillID    string            `json:"backfill_id,omitempty"`
	// DueAt is when the run should start: the interval end for scheduled
	// runs, the creation time otherwise. Start - DueAt is the scheduling delay.
	DueAt     time.Time `json:"due_at"`
	CreatedAt time.Time `json:"created_at"`
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// DeadlineAlerted records that the run's deadline-miss alert was sent.
	DeadlineAlerted bool `json:"deadline_alerted,omitempty"`
}

// TaskKey names a task instance.
type TaskKey struct {
	DAGID  string `json:"dag_id"`
	RunID  string `json:"run_id"`
	TaskID string `json:"task_id"`
}

// TaskInstance is one task of one run.
type TaskInstance struct {
	TaskKey
	State TaskState `json:"state"`
	// Try is the fencing token: it grows by one at every claim, including a
	// takeover after an expired lease.
	Try int `json:"try"`
	// Failures counts failed executions; the task is retried while
	// Failures <= Retries.
	Failures int    `json:"failures"`
	Pool     string `json:"pool,omitempty"`
	// Owner and LeaseUntil describe the running attempt's lease.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// ReadyAt is when the task became runnable (queued); StartedAt - ReadyAt
	// is the scheduling overhead.
	ReadyAt   time.Time `json:"ready_at,omitzero"`
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// NextTryAt is when an up_for_retry or up_for_reschedule task is due.
	NextTryAt time.Time `json:"next_try_at,omitzero"`
	// FirstPokeAt is a sensor's first poke, to enforce its timeout.
	FirstPokeAt time.Time `json:"first_poke_at,omitzero"`
	Error       string    `json:"error,omitempty"`
	// Waiting is what a sensor is still waiting for.
	Waiting string `json:"waiting,omitempty"`
	// DeadlineAlerted records that the expected-duration alert was sent for
	// the current try.
	DeadlineAlerted bool `json:"deadline_alerted,omitempty"`
}

// Claim asks to start a task instance.
type Claim struct {
	Key   TaskKey
	Owner string
	Now   time.Time
	Lease time.Duration
	// Pool and PoolSlots, when PoolSlots > 0, make the claim take one of the
	// pool's slots; a slot is held until the attempt finishes or its lease
	// expires.
	Pool      string
	PoolSlots int
}

// Finish records the end of an attempt. Only the owner of the current try
// may finish it.
type Finish struct {
	Key   TaskKey
	Try   int
	Owner string
	// State is success, failed, skipped, up_for_retry or up_for_reschedule.
	State     TaskState
	Now       time.Time
	Error     string
	Waiting   string
	NextTryAt time.Time
	// Failed increments Failures.
	Failed bool
}

// BackfillState is a backfill's state.
type BackfillState string

// Backfill states.
const (
	BackfillRunning   BackfillState = "running"
	BackfillCancelled BackfillState = "cancelled"
	BackfillDone      BackfillState = "done"
)

// Reprocess says what a backfill does with intervals that already have a run.
type Reprocess string

// Reprocess policies.
const (
	ReprocessMissing Reprocess = "missing"
	ReprocessFailed  Reprocess = "failed"
	ReprocessAll     Reprocess = "all"
)

// Backfill is a persisted request to run a DAG over a range of intervals.
type Backfill struct {
	ID    string `json:"id"`
	DAGID string `json:"dag_id"`
	// From and To bound the logical dates (interval starts) covered, inclusive.
	From          time.Time         `json:"from"`
	To            time.Time         `json:"to"`
	Reprocess     Reprocess         `json:"reprocess"`
	MaxActiveRuns int               `json:"max_active_runs"`
	Params        map[string]string `json:"params,omitempty"`
	State         BackfillState     `json:"state"`
	// Total is the number of intervals in the range.
	Total int `json:"total"`
	// Cursor is the start of the next interval to consider; intervals before
	// it have been created, reset or skipped.
	Cursor time.Time `json:"cursor"`
	// Skipped counts intervals the reprocess policy left alone.
	Skipped   int       `json:"skipped"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

// RunFilter selects runs. Zero fields match everything.
type RunFilter struct {
	DAGID      string
	States     []RunState
	BackfillID string
	// Limit caps the result; runs come newest logical date first.
	Limit int
}

// DAGInfo is the stored per-DAG state.
type DAGInfo struct {
	DAGID  string `json:"dag_id"`
	Paused bool   `json:"paused"`
}

// Store is the orchestrator's persistent state. Every method is safe for
// concurrent use, and the invariants hold across processes sharing the store.
type Store interface {
	// DAG returns the DAG's stored state (a DAG never seen is not paused).
	DAG(ctx context.Context, dagID string) (DAGInfo, error)
	// SetPaused pauses or unpauses a DAG.
	SetPaused(ctx context.Context, dagID string, paused bool) error

	// CreateRun stores a new run in state queued and its task instances in
	// state none, atomically. It returns ErrRunExists if the DAG already has
	// a run for the same data interval.
	CreateRun(ctx context.Context, run Run, taskIDs []string) error
	// Run returns one run.
	Run(ctx context.Context, dagID, runID string) (Run, error)
	// Runs lists runs, newest logical date first.
	Runs(ctx context.Context, f RunFilter) ([]Run, error)
	// LatestRun returns the run with the latest data interval of the given
	// kind (any kind when empty), or ErrNotFound.
	LatestRun(ctx context.Context, dagID string, kind RunKind) (Run, error)
	// StartRun moves a queued run to running, unless the DAG already has
	// maxActive running runs (ErrMaxActiveRuns). Starting a running run is a
	// no-op.
	StartRun(ctx context.Context, dagID, runID string, maxActive int, now time.Time) error
	// EndRun moves a run from state from (queued or running) to success or
	// failed. A run no longer in state from is ErrConflict: it was ended,
	// cleared or started by someone else meanwhile.
	EndRun(ctx context.Context, dagID, runID string, from, to RunState, now time.Time) error
	// MarkRunDeadlineAlerted records that the run's deadline alert was sent;
	// it reports false if it was already recorded.
	MarkRunDeadlineAlerted(ctx context.Context, dagID, runID string) (bool, error)
	// ResetRun puts a run back to queued for another pass (its DueAt becomes
	// now, so its scheduling delay counts from the reset): with onlyFailed,
	// its failed, upstream_failed and skipped task instances go back to none;
	// otherwise all of them do. backfillID, when set, is recorded on the run.
	// A run with a task running under an unexpired lease is ErrConflict.
	ResetRun(ctx context.Context, dagID, runID string, onlyFailed bool, backfillID string, now time.Time) error

	// Tasks returns a run's task instances.
	Tasks(ctx context.Context, dagID, runID string) ([]TaskInstance, error)
	// SetTaskStates moves task instances that are in state none to queued,
	// upstream_failed or skipped (the scheduler's decisions from trigger
	// rules). A task no longer in state none is left alone.
	SetTaskStates(ctx context.Context, dagID, runID string, states map[string]TaskState, now time.Time) error
	// ClaimTask starts an attempt: the task must be queued, up_for_retry or
	// up_for_reschedule and due, or running with an expired lease. The try
	// grows by one and the lease is the caller's. ErrNotClaimable or
	// ErrPoolFull otherwise.
	ClaimTask(ctx context.Context, c Claim) (TaskInstance, error)
	// RenewLease extends the current try's lease; ErrFenced if the try is
	// no longer current or no longer running.
	RenewLease(ctx context.Context, key TaskKey, try int, owner string, until time.Time) error
	// FinishTask records the outcome of the current try; ErrFenced if a newer
	// try exists or the task is no longer running.
	FinishTask(ctx context.Context, f Finish) (TaskInstance, error)
	// MarkTaskDeadlineAlerted records that the current try's
	// expected-duration alert was sent; it reports false if already recorded
	// or if try is not current.
	MarkTaskDeadlineAlerted(ctx context.Context, key TaskKey, try int) (bool, error)

	// CreateBackfill stores a new backfill (ErrExists if its ID is taken).
	CreateBackfill(ctx context.Context, b Backfill) error
	// Backfill returns one backfill.
	Backfill(ctx context.Context, id string) (Backfill, error)
	// Backfills lists backfills, newest first.
	Backfills(ctx context.Context) ([]Backfill, error)
	// UpdateBackfill replaces a backfill if it still has the given UpdatedAt
	// (optimistic concurrency); ErrConflict otherwise. A cancelled backfill
	// stays cancelled (ErrConflict).
	UpdateBackfill(ctx context.Context, b Backfill, prevUpdatedAt time.Time) error

	// Prune deletes finished runs (and their task instances) that ended
	// before the given time, and finished backfills that ended before it. It
	// keeps each DAG's latest scheduled run, whatever its age: the scheduler
	// continues its schedule from it. It returns the number of runs deleted.
	Prune(ctx context.Context, before time.Time) (int, error)

	Close() error
}
