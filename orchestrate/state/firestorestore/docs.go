package firestorestore

import (
	"maps"
	"slices"
	"time"

	"github.com/labplatform/platform/orchestrate/state"
)

// The stored shapes. Field names are the ones queries use; see README.md
// for the indexes they need.

// param is one run or backfill parameter. Parameters are stored as a list
// of pairs, not a map: Firestore map keys may be neither empty nor "__x__",
// and parameter names may be anything.
type param struct {
	Key   string `firestore:"k"`
	Value string `firestore:"v"`
}

func toParams(m map[string]string) []param {
	var ps []param
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ps = append(ps, param{Key: k, Value: m[k]})
	}
	return ps
}

func fromParams(ps []param) map[string]string {
	if len(ps) == 0 {
		return nil
	}
	m := make(map[string]string, len(ps))
	for _, p := range ps {
		m[p.Key] = p.Value
	}
	return m
}

// dagDoc is a DAG's state: its pause flag and the IDs of its running runs,
// which StartRun counts against the DAG's cap.
type dagDoc struct {
	DAGID  string   `firestore:"dag_id"`
	Paused bool     `firestore:"paused"`
	Active []string `firestore:"active"`
}

type runDoc struct {
	DAGID           string    `firestore:"dag_id"`
	RunID           string    `firestore:"run_id"`
	Kind            string    `firestore:"kind"`
	LogicalDate     time.Time `firestore:"logical_date"`
	IntervalStart   time.Time `firestore:"interval_start"`
	IntervalEnd     time.Time `firestore:"interval_end"`
	Params          []param   `firestore:"params,omitempty"`
	State           string    `firestore:"state"`
	BackfillID      string    `firestore:"backfill_id,omitempty"`
	DueAt           time.Time `firestore:"due_at"`
	CreatedAt       time.Time `firestore:"created_at"`
	StartedAt       time.Time `firestore:"started_at,omitempty"`
	EndedAt         time.Time `firestore:"ended_at,omitempty"`
	DeadlineAlerted bool      `firestore:"deadline_alerted"`
}

func toRunDoc(r state.Run) runDoc {
	return runDoc{
		DAGID:           r.DAGID,
		RunID:           r.RunID,
		Kind:            string(r.Kind),
		LogicalDate:     ts(r.LogicalDate),
		IntervalStart:   ts(r.IntervalStart),
		IntervalEnd:     ts(r.IntervalEnd),
		Params:          toParams(r.Params),
		State:           string(r.State),
		BackfillID:      r.BackfillID,
		DueAt:           ts(r.DueAt),
		CreatedAt:       ts(r.CreatedAt),
		StartedAt:       ts(r.StartedAt),
		EndedAt:         ts(r.EndedAt),
		DeadlineAlerted: r.DeadlineAlerted,
	}
}

func (d runDoc) run() state.Run {
	return state.Run{
		DAGID:           d.DAGID,
		RunID:           d.RunID,
		Kind:            state.RunKind(d.Kind),
		LogicalDate:     utc(d.LogicalDate),
		IntervalStart:   utc(d.IntervalStart),
		IntervalEnd:     utc(d.IntervalEnd),
		Params:          fromParams(d.Params),
		State:           state.RunState(d.State),
		BackfillID:      d.BackfillID,
		DueAt:           utc(d.DueAt),
		CreatedAt:       utc(d.CreatedAt),
		StartedAt:       utc(d.StartedAt),
		EndedAt:         utc(d.EndedAt),
		DeadlineAlerted: d.DeadlineAlerted,
	}
}

type taskDoc struct {
	DAGID    string `firestore:"dag_id"`
	RunID    string `firestore:"run_id"`
	TaskID   string `firestore:"task_id"`
	State    string `firestore:"state"`
	Try      int    `firestore:"try"`
	Failures int    `firestore:"failures"`
	Pool     string `firestore:"pool,omitempty"`
	// PoolSlot records that the current try holds a slot of Pool.
	PoolSlot        bool      `firestore:"pool_slot,omitempty"`
	Owner           string    `firestore:"owner,omitempty"`
	LeaseUntil      time.Time `firestore:"lease_until,omitempty"`
	ReadyAt         time.Time `firestore:"ready_at,omitempty"`
	StartedAt       time.Time `firestore:"started_at,omitempty"`
	EndedAt         time.Time `firestore:"ended_at,omitempty"`
	NextTryAt       time.Time `firestore:"next_try_at,omitempty"`
	FirstPokeAt     time.Time `firestore:"first_poke_at,omitempty"`
	Error           string    `firestore:"error,omitempty"`
	Waiting         string    `firestore:"waiting,omitempty"`
	DeadlineAlerted bool      `firestore:"deadline_alerted"`
}

func toTaskDoc(t state.TaskInstance) taskDoc {
	return taskDoc{
		DAGID:           t.DAGID,
		RunID:           t.RunID,
		TaskID:          t.TaskID,
		State:           string(t.State),
		Try:             t.Try,
		Failures:        t.Failures,
		Pool:            t.Pool,
		Owner:           t.Owner,
		LeaseUntil:      ts(t.LeaseUntil),
		ReadyAt:         ts(t.ReadyAt),
		StartedAt:       ts(t.StartedAt),
		EndedAt:         ts(t.EndedAt),
		NextTryAt:       ts(t.NextTryAt),
		FirstPokeAt:     ts(t.FirstPokeAt),
		Error:           t.Error,
		Waiting:         t.Waiting,
		DeadlineAlerted: t.DeadlineAlerted,
	}
}

func (d taskDoc) task() state.TaskInstance {
	return state.TaskInstance{
		TaskKey:         state.TaskKey{DAGID: d.DAGID, RunID: d.RunID, TaskID: d.TaskID},
		State:           state.TaskState(d.State),
		Try:             d.Try,
		Failures:        d.Failures,
		Pool:            d.Pool,
		Owner:           d.Owner,
		LeaseUntil:      utc(d.LeaseUntil),
		ReadyAt:         utc(d.ReadyAt),
		StartedAt:       utc(d.StartedAt),
		EndedAt:         utc(d.EndedAt),
		NextTryAt:       utc(d.NextTryAt),
		FirstPokeAt:     utc(d.FirstPokeAt),
		Error:           d.Error,
		Waiting:         d.Waiting,
		DeadlineAlerted: d.DeadlineAlerted,
	}
}

// poolDoc holds a pool's slot holders: task document ID -> lease expiry. A
// holder whose lease has expired no longer counts.
type poolDoc struct {
	Pool    string               `firestore:"pool"`
	Holders map[string]time.Time `firestore:"holders"`
}

// held counts the holders other than self whose lease runs past now.
func (p poolDoc) held(self string, now time.Time) int {
	n := 0
	for k, until := range p.Holders {
		if k != self && until.After(now) {
			n++
		}
	}
	return n
}

// dropExpired forgets holders whose lease ended by now.
func (p *poolDoc) dropExpired(now time.Time) {
	maps.DeleteFunc(p.Holders, func(_ string, until time.Time) bool { return !until.After(now) })
}

type backfillDoc struct {
	ID            string    `firestore:"id"`
	DAGID         string    `firestore:"dag_id"`
	From          time.Time `firestore:"from"`
	To            time.Time `firestore:"to"`
	Reprocess     string    `firestore:"reprocess"`
	MaxActiveRuns int       `firestore:"max_active_runs"`
	Params        []param   `firestore:"params,omitempty"`
	State         string    `firestore:"state"`
	Total         int       `firestore:"total"`
	Cursor        time.Time `firestore:"cursor"`
	Skipped       int       `firestore:"skipped"`
	CreatedAt     time.Time `firestore:"created_at"`
	UpdatedAt     time.Time `firestore:"updated_at"`
	EndedAt       time.Time `firestore:"ended_at,omitempty"`
}

func toBackfillDoc(b state.Backfill) backfillDoc {
	return backfillDoc{
		ID:            b.ID,
		DAGID:         b.DAGID,
		From:          ts(b.From),
		To:            ts(b.To),
		Reprocess:     string(b.Reprocess),
		MaxActiveRuns: b.MaxActiveRuns,
		Params:        toParams(b.Params),
		State:         string(b.State),
		Total:         b.Total,
		Cursor:        ts(b.Cursor),
		Skipped:       b.Skipped,
		CreatedAt:     ts(b.CreatedAt),
		UpdatedAt:     ts(b.UpdatedAt),
		EndedAt:       ts(b.EndedAt),
	}
}

func (d backfillDoc) backfill() state.Backfill {
	return state.Backfill{
		ID:            d.ID,
		DAGID:         d.DAGID,
		From:          utc(d.From),
		To:            utc(d.To),
		Reprocess:     state.Reprocess(d.Reprocess),
		MaxActiveRuns: d.MaxActiveRuns,
		Params:        fromParams(d.Params),
		State:         state.BackfillState(d.State),
		Total:         d.Total,
		Cursor:        utc(d.Cursor),
		Skipped:       d.Skipped,
		CreatedAt:     utc(d.CreatedAt),
		UpdatedAt:     utc(d.UpdatedAt),
		EndedAt:       utc(d.EndedAt),
	}
}

// withoutRun returns active without runID.
func withoutRun(active []string, runID string) []string {
	return slices.DeleteFunc(slices.Clone(active), func(id string) bool { return id == runID })
}
