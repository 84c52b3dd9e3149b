package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/notify"
	"github.com/labplatform/platform/orchestrate/state"
)

// errFenced cancels an attempt whose lease another scheduler took over.
var errFenced = errors.New("a newer attempt owns the task")

// stopGrace is how long an operator may keep running after its context is
// cancelled before the attempt is recorded as failed without it.
const stopGrace = 10 * time.Second

// execute runs one claimed attempt and records its outcome, unless a newer
// attempt took the task over meanwhile (then nothing is written).
func (s *Scheduler) execute(d *dag.DAG, t *dag.Task, r state.Run, ti state.TaskInstance) {
	ctx, cancel := context.WithCancelCause(s.taskCtx)
	defer cancel(nil)
	stopRenew := s.renewLease(ctx, cancel, ti)
	log := s.log.With("dag", d.ID, "run", r.RunID, "task", t.ID, "try", ti.Try)
	tc := &dag.TaskContext{
		DAGID: d.ID, RunID: r.RunID, TaskID: t.ID, LogicalDate: r.LogicalDate,
		Interval: dag.Interval{Start: r.IntervalStart, End: r.IntervalEnd},
		Params:   r.Params, Try: ti.Try, Logger: log, Now: s.opts.Now,
	}
	start := s.opts.Now()
	f := state.Finish{Key: ti.TaskKey, Try: ti.Try, Owner: s.opts.Owner}
	var alert *notify.Alert
	if t.IsSensor() {
		done, waiting, err := poke(ctx, t, tc)
		f.Waiting = waiting
		now := s.opts.Now()
		switch {
		case err != nil:
			alert = s.failure(t, ti, &f, err, now)
		case done:
			f.State = state.TaskSuccess
		case now.Sub(firstPoke(ti)) >= t.SensorTimeout:
			f.State = state.TaskFailed
			f.Failed = true
			f.Error = fmt.Sprintf("sensor timed out after %s; still waiting for: %s", t.SensorTimeout, waiting)
			alert = &notify.Alert{Kind: notify.SensorTimeout, Message: f.Error}
		default:
			f.State = state.TaskUpForReschedule
			f.NextTryAt = now.Add(t.PokeInterval)
		}
	} else {
		err := run(ctx, t, tc)
		switch {
		case err == nil:
			f.State = state.TaskSuccess
		case errors.Is(err, dag.ErrSkip):
			f.State = state.TaskSkipped
		default:
			alert = s.failure(t, ti, &f, err, s.opts.Now())
		}
	}
	stopRenew()
	end := s.opts.Now()
	s.m.taskDuration.WithLabelValues(d.ID, t.ID).Observe(end.Sub(start).Seconds())
	if errors.Is(context.Cause(ctx), errFenced) {
		s.m.fenced.Inc()
		log.Warn("attempt discarded: a newer attempt owns the task")
		return
	}
	if s.taskCtx.Err() != nil {
		// Shutdown cancelled the attempt: the worker is going away, the task
		// did not fail. Nothing is recorded; its lease expires and a
		// scheduler runs it again without counting a failure.
		log.Warn("attempt abandoned at shutdown; it runs again when its lease expires")
		return
	}
	f.Now = end
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer wcancel()
	if _, err := s.store.FinishTask(wctx, f); err != nil {
		if errors.Is(err, state.ErrFenced) {
			s.m.fenced.Inc()
			log.Warn("attempt discarded: a newer attempt owns the task")
			return
		}
		log.Error("record task outcome; the lease will expire and the task run again", "err", err)
		return
	}
	s.m.tasks.WithLabelValues(d.ID, string(f.State)).Inc()
	switch f.State {
	case state.TaskFailed, state.TaskUpForRetry:
		log.Warn("task attempt failed", "state", f.State, "err", f.Error, "next_try_at", f.NextTryAt)
	case state.TaskUpForReschedule:
		log.Debug("sensor waiting", "waiting", f.Waiting, "next_poke_at", f.NextTryAt)
	default:
		log.Info("task finished", "state", f.State, "seconds", end.Sub(start).Seconds())
	}
	if t.ExpectedDuration > 0 && end.Sub(start) > t.ExpectedDuration {
		// Finished late between two passes: the running check missed it.
		if a := s.taskDeadline(wctx, t, ti, end); a != nil {
			s.alert(wctx, *a)
		}
	}
	if alert != nil {
		alert.DAGID, alert.RunID, alert.TaskID, alert.Try, alert.At = d.ID, r.RunID, t.ID, ti.Try, end
		s.alert(wctx, *alert)
	}
}

// firstPoke is when a sensor started waiting.
func firstPoke(ti state.TaskInstance) time.Time {
	if ti.FirstPokeAt.IsZero() {
		return ti.ReadyAt
	}
	return ti.FirstPokeAt
}

// failure fills f for a failed attempt: a retry while retries remain,
// otherwise failed with an alert.
func (s *Scheduler) failure(t *dag.Task, ti state.TaskInstance, f *state.Finish, err error, now time.Time) *notify.Alert {
	f.Failed = true
	f.Error = err.Error()
	n := ti.Failures + 1
	if n <= t.Retries {
		f.State = state.TaskUpForRetry
		f.NextTryAt = now.Add(backoff(t, n, s.opts.Jitter()))
		return nil
	}
	f.State = state.TaskFailed
	if t.Retries > 0 {
		return &notify.Alert{Kind: notify.RetriesExhausted, Message: fmt.Sprintf("failed after %d retries: %s", t.Retries, f.Error)}
	}
	return &notify.Alert{Kind: notify.TaskFailed, Message: f.Error}
}

// renewLease extends the attempt's lease every Lease/3 until stopped. If the
// store says a newer attempt owns the task, it cancels the attempt.
func (s *Scheduler) renewLease(ctx context.Context, cancel context.CancelCauseFunc, ti state.TaskInstance) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(s.opts.Lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				until := s.opts.Now().Add(s.opts.Lease)
				err := s.store.RenewLease(ctx, ti.TaskKey, ti.Try, s.opts.Owner, until)
				switch {
				case errors.Is(err, state.ErrFenced):
					cancel(errFenced)
					return
				case err != nil && ctx.Err() == nil:
					s.log.Warn("renew lease", "task", ti.TaskKey, "err", err)
				}
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// run executes an operator under the task's timeout. An operator that
// panics fails the attempt; one that ignores its context is abandoned
// stopGrace after the timeout.
func run(ctx context.Context, t *dag.Task, tc *dag.TaskContext) error {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	_, err := guard(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, t.Operator.Execute(ctx, tc) })
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s: %w", t.Timeout, err)
	}
	return err
}

// poke calls a sensor once under the task's timeout.
func poke(ctx context.Context, t *dag.Task, tc *dag.TaskContext) (done bool, waiting string, err error) {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	type result struct {
		done    bool
		waiting string
	}
	res, err := guard(ctx, func(ctx context.Context) (result, error) {
		d, w, err := t.Sensor.Poke(ctx, tc)
		return result{d, w}, err
	})
	done, waiting = res.done, res.waiting
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("poke timed out after %s: %w", t.Timeout, err)
	}
	return done, waiting, err
}

// guard calls f in its own goroutine, turning a panic into an error and
// giving up stopGrace after ctx ends if f does not return.
func guard[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				ch <- result{err: fmt.Errorf("task panicked: %v", p)}
			}
		}()
		v, err := f(ctx)
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
	}
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-timer.C:
		var zero T
		return zero, fmt.Errorf("task did not stop within %s of its cancellation: %w", stopGrace, ctx.Err())
	}
}
