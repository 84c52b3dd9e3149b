package scheduler

import (
	"context"
	"errors"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/state"
)

// advanceBackfill creates (or resets) runs for the backfill's next intervals
// while it has fewer than MaxActiveRuns unfinished runs, moves its cursor,
// and marks it done when the range is covered and its runs have finished.
// The cursor is saved with optimistic concurrency, so a restart or a second
// scheduler resumes where it stopped; a run created before a crash is
// recognised by its backfill ID and not counted twice.
// It returns the runs it created or reset, for the caller to start.
func (s *Scheduler) advanceBackfill(ctx context.Context, id string) []state.Run {
	s.bfLock.Lock()
	defer s.bfLock.Unlock()
	b, err := s.store.Backfill(ctx, id)
	if err != nil {
		s.log.Error("read backfill", "backfill", id, "err", err)
		return nil
	}
	if b.State != state.BackfillRunning {
		return nil
	}
	d := s.dags[b.DAGID]
	sc := s.scheds[b.DAGID]
	if d == nil || sc == nil {
		return nil
	}
	s.mu.Lock()
	paused := s.paused[d.ID]
	s.mu.Unlock()
	if paused {
		return nil
	}
	now := s.opts.Now()
	prev := b.UpdatedAt
	// The unfinished runs are counted in memory (rebuilt from the store at
	// every full pass, kept current between passes): a store query per
	// finished run would cost more than the rest of the run's scheduling.
	// With several schedulers the cap is therefore approximate between
	// passes; the end of the backfill is checked against the store.
	active := s.backfillActive(id)
	var created []state.Run
	changed := false
	for active < b.MaxActiveRuns && !b.Cursor.After(b.To) {
		iv := dag.Interval{Start: b.Cursor, End: sc.Next(b.Cursor)}
		run, err := s.store.Run(ctx, d.ID, state.RunID(iv.Start, iv.End))
		switch {
		case errors.Is(err, state.ErrNotFound):
			nr := newRun(d, iv, state.KindBackfill, b.Params, now)
			nr.BackfillID = b.ID
			err := s.store.CreateRun(ctx, nr, taskIDs(d))
			if errors.Is(err, state.ErrRunExists) {
				continue // created concurrently: look at it again
			}
			if err != nil {
				s.log.Error("create backfill run", "backfill", id, "run", nr.RunID, "err", err)
				return created
			}
			created = append(created, nr)
			s.trackBackfillRun(nr)
			active++
		case err != nil:
			s.log.Error("read run", "backfill", id, "err", err)
			return created
		case run.BackfillID == b.ID:
			// Ours, created before a restart or by another scheduler.
			if !run.State.Finished() && !s.backfillTracked(run) {
				s.trackBackfillRun(run)
				active++
			}
		case !run.State.Finished():
			if b.Reprocess == state.ReprocessAll || b.Reprocess == state.ReprocessFailed {
				// Wait for that run to finish, then decide.
				s.saveBackfill(ctx, b, prev, changed, now)
				return created
			}
			b.Skipped++
		case b.Reprocess == state.ReprocessAll || (b.Reprocess == state.ReprocessFailed && run.State == state.RunFailed):
			if err := s.store.ResetRun(ctx, d.ID, run.RunID, b.Reprocess == state.ReprocessFailed, b.ID, now); err != nil {
				s.log.Error("reset run for backfill", "backfill", id, "run", run.RunID, "err", err)
				return created
			}
			run.State, run.BackfillID = state.RunQueued, b.ID
			created = append(created, run)
			s.trackBackfillRun(run)
			active++
		default:
			b.Skipped++
		}
		b.Cursor = iv.End
		changed = true
	}
	if b.Cursor.After(b.To) && active == 0 && s.noUnfinishedRuns(ctx, b) {
		b.State = state.BackfillDone
		b.EndedAt = now
		changed = true
	}
	s.saveBackfill(ctx, b, prev, changed, now)
	return created
}

// saveBackfill records the backfill's progress.
func (s *Scheduler) saveBackfill(ctx context.Context, b state.Backfill, prev time.Time, changed bool, now time.Time) {
	if changed {
		b.UpdatedAt = now
		if !now.After(prev) {
			b.UpdatedAt = prev.Add(time.Microsecond)
		}
		err := s.store.UpdateBackfill(ctx, b, prev)
		switch {
		case errors.Is(err, state.ErrConflict):
			// Cancelled or advanced by someone else: the runs created stay
			// (they are found by backfill ID), the next pass re-reads it.
			s.log.Debug("backfill changed meanwhile", "backfill", b.ID)
		case err != nil:
			s.log.Error("save backfill progress", "backfill", b.ID, "err", err)
		}
		if err != nil {
			return
		}
		if b.State == state.BackfillDone {
			s.log.Info("backfill done", "backfill", b.ID, "dag", b.DAGID, "skipped", b.Skipped)
		}
	}
}

func (s *Scheduler) backfillActive(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bfActive[id])
}

func (s *Scheduler) backfillTracked(r state.Run) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bfActive[r.BackfillID][r.DAGID+"/"+r.RunID]
}

func (s *Scheduler) trackBackfillRun(r state.Run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bfActive[r.BackfillID] == nil {
		s.bfActive[r.BackfillID] = map[string]bool{}
	}
	s.bfActive[r.BackfillID][r.DAGID+"/"+r.RunID] = true
}

func (s *Scheduler) forgetBackfillRun(r state.Run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.bfActive[r.BackfillID], r.DAGID+"/"+r.RunID)
}

// noUnfinishedRuns checks in the store that no run of the backfill is
// queued or running (another scheduler may still run some).
func (s *Scheduler) noUnfinishedRuns(ctx context.Context, b state.Backfill) bool {
	runs, err := s.store.Runs(ctx, state.RunFilter{DAGID: b.DAGID, BackfillID: b.ID, States: []state.RunState{state.RunQueued, state.RunRunning}})
	if err != nil {
		s.log.Error("count backfill runs", "backfill", b.ID, "err", err)
		return false
	}
	return len(runs) == 0
}
