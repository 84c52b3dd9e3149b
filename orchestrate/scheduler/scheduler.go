// Package scheduler runs DAGs: it creates runs from cron schedules and
// backfills, decides which tasks may run from their trigger rules, claims
// them in the state store under a lease, executes operators and sensors with
// timeouts, retries and pools, and raises alerts.
//
// Deciding and recording are separate: Pass reads the store, decides, and
// records each decision through a Store method that enforces the invariant
// (one run per data interval, fenced attempts, leases, pool slots, active run
// caps), so several schedulers can share one store. Within one process, the
// goroutine that finished a task evaluates its run at once (no polling) and
// launches what became ready, so many runs progress concurrently and their
// store writes share commits.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/notify"
	"github.com/labplatform/platform/orchestrate/schedule"
	"github.com/labplatform/platform/orchestrate/state"
	"github.com/prometheus/client_golang/prometheus"
)

// Options are the scheduler's optional settings.
type Options struct {
	// Owner identifies this scheduler in leases (default host-pid).
	Owner string
	// Workers caps the task attempts executing at once in this process
	// (default 32). Sensors waiting between pokes take no slot.
	Workers int
	// Lease is how long a claimed task stays owned without renewal (default
	// 30s); the lease is renewed every Lease/3 while the task runs. Another
	// scheduler takes the task over when the lease expires.
	Lease time.Duration
	// PollInterval is how often the store is read in full (default 1s).
	PollInterval time.Duration
	// Pools maps a pool name to its slots across all schedulers; a task in a
	// pool not listed here is not limited.
	Pools map[string]int
	// Grace is how long shutdown waits for running tasks before cancelling
	// them (default 30s).
	Grace time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Jitter returns a number in [0, 1) for retry jitter (default math/rand).
	Jitter   func() float64
	Logger   *slog.Logger
	Notifier notify.Notifier
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
}

func (o *Options) defaults() {
	if o.Owner == "" {
		host, _ := os.Hostname()
		o.Owner = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if o.Workers <= 0 {
		o.Workers = 32
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Grace <= 0 {
		o.Grace = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Notifier == nil {
		o.Notifier = notify.Log{Logger: o.Logger}
	}
}

// Scheduler runs a set of DAGs against a store.
type Scheduler struct {
	store  state.Store
	dags   map[string]*dag.DAG
	ids    []string
	scheds map[string]*schedule.Schedule
	opts   Options
	log    *slog.Logger
	m      *metrics

	slots chan struct{}
	wg    sync.WaitGroup
	// wake asks Run for a full pass (a task waited for a free slot).
	wake chan struct{}
	// runLocks serialise the evaluation of one run within this process.
	runLocks [64]sync.Mutex
	// bfLock serialises backfill advances within this process.
	bfLock sync.Mutex

	// taskCtx is the parent of every task attempt; cancelled when shutdown
	// grace runs out.
	taskCtx    context.Context
	cancelTask context.CancelFunc

	mu       sync.Mutex
	inflight map[state.TaskKey]bool
	paused   map[string]bool
	// bfActive tracks each backfill's unfinished runs, rebuilt at every
	// full pass and kept current between passes.
	bfActive map[string]map[string]bool
	// starved is set when a ready task found no free worker slot.
	starved atomic.Bool
}

// New returns a scheduler for dags on store.
func New(store state.Store, dags []*dag.DAG, opts Options) (*Scheduler, error) {
	opts.defaults()
	s := &Scheduler{
		store:    store,
		dags:     make(map[string]*dag.DAG, len(dags)),
		scheds:   make(map[string]*schedule.Schedule, len(dags)),
		opts:     opts,
		log:      opts.Logger,
		m:        newMetrics(opts.Registerer),
		slots:    make(chan struct{}, opts.Workers),
		wake:     make(chan struct{}, 1),
		inflight: map[state.TaskKey]bool{},
		paused:   map[string]bool{},
		bfActive: map[string]map[string]bool{},
	}
	s.taskCtx, s.cancelTask = context.WithCancel(context.Background())
	for _, d := range dags {
		if _, dup := s.dags[d.ID]; dup {
			return nil, fmt.Errorf("dag %s registered twice", d.ID)
		}
		sc, err := schedule.For(d)
		if err != nil {
			return nil, fmt.Errorf("dag %s: %w", d.ID, err)
		}
		s.dags[d.ID] = d
		s.scheds[d.ID] = sc
		s.ids = append(s.ids, d.ID)
	}
	slices.Sort(s.ids)
	return s, nil
}

// Run schedules until ctx is done, then waits up to Grace for running tasks
// (cancelling them after that) and returns.
func (s *Scheduler) Run(ctx context.Context) error {
	s.log.Info("scheduler started", "owner", s.opts.Owner, "dags", len(s.ids), "workers", s.opts.Workers)
	ticker := time.NewTicker(s.opts.PollInterval)
	defer ticker.Stop()
	s.pass(ctx)
	for {
		select {
		case <-ctx.Done():
			return s.shutdown()
		case <-ticker.C:
		case <-s.wake:
		}
		s.pass(ctx)
	}
}

// Pass makes one full scheduling pass: it creates due scheduled runs,
// advances backfills, starts queued runs and dispatches ready tasks. Errors
// are logged; the next pass retries.
func (s *Scheduler) Pass(ctx context.Context) { s.pass(ctx) }

// Drain waits until this scheduler executes no task, including the tasks
// that finishing ones launch. Tests use Pass and Drain to step a scheduler
// under a fake clock.
func (s *Scheduler) Drain(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (s *Scheduler) lockRun(dagID, runID string) func() {
	h := fnv.New32a()
	h.Write([]byte(dagID))
	h.Write([]byte{0})
	h.Write([]byte(runID))
	mu := &s.runLocks[h.Sum32()%uint32(len(s.runLocks))]
	mu.Lock()
	return mu.Unlock
}

func (s *Scheduler) shutdown() error {
	s.log.Info("scheduler stopping; waiting for running tasks", "grace", s.opts.Grace)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	timer := time.NewTimer(s.opts.Grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.log.Warn("grace period over; cancelling running tasks")
		s.cancelTask()
		<-done
	}
	s.cancelTask()
	return nil
}

func (s *Scheduler) pass(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	s.m.ticks.Inc()
	now := s.opts.Now()
	for _, id := range s.ids {
		info, err := s.store.DAG(ctx, id)
		if err != nil {
			s.log.Error("read dag state", "dag", id, "err", err)
			continue
		}
		s.mu.Lock()
		s.paused[id] = info.Paused
		s.mu.Unlock()
		if info.Paused {
			continue
		}
		if err := s.planScheduled(ctx, s.dags[id], now); err != nil {
			s.log.Error("schedule runs", "dag", id, "err", err)
		}
	}
	runs, err := s.store.Runs(ctx, state.RunFilter{States: []state.RunState{state.RunQueued, state.RunRunning}})
	if err != nil {
		s.log.Error("list active runs", "err", err)
		return
	}
	slices.Reverse(runs) // oldest first
	active := map[string]map[string]bool{}
	var queued, running float64
	for _, r := range runs {
		if r.BackfillID != "" {
			if active[r.BackfillID] == nil {
				active[r.BackfillID] = map[string]bool{}
			}
			active[r.BackfillID][r.DAGID+"/"+r.RunID] = true
		}
		if r.State == state.RunQueued {
			queued++
		} else {
			running++
		}
	}
	s.m.activeRuns.WithLabelValues(string(state.RunQueued)).Set(queued)
	s.m.activeRuns.WithLabelValues(string(state.RunRunning)).Set(running)
	s.mu.Lock()
	s.bfActive = active
	s.mu.Unlock()

	bfs, err := s.store.Backfills(ctx)
	if err != nil {
		s.log.Error("list backfills", "err", err)
	}
	cancelled := map[string]bool{}
	for _, b := range bfs {
		switch b.State {
		case state.BackfillRunning:
			for _, r := range s.advanceBackfill(ctx, b.ID) {
				s.handleRun(ctx, r)
			}
		case state.BackfillCancelled:
			cancelled[b.ID] = true
		}
	}
	waiting := 0
	for _, r := range runs {
		if r.BackfillID != "" && cancelled[r.BackfillID] && r.State == state.RunQueued {
			if d := s.dags[r.DAGID]; d != nil {
				s.endRun(ctx, d, r, state.RunQueued, state.RunFailed, now, "its backfill was cancelled")
			}
			continue
		}
		waiting += s.handleRun(ctx, r)
	}
	s.m.queueDepth.Set(float64(waiting))
}

// planScheduled creates the runs of d's schedule that are due.
func (s *Scheduler) planScheduled(ctx context.Context, d *dag.DAG, now time.Time) error {
	sc := s.scheds[d.ID]
	if sc == nil {
		return nil
	}
	var last *dag.Interval
	r, err := s.store.LatestRun(ctx, d.ID, state.KindScheduled)
	switch {
	case err == nil:
		last = &dag.Interval{Start: r.IntervalStart, End: r.IntervalEnd}
	case errors.Is(err, state.ErrNotFound):
	default:
		return fmt.Errorf("latest scheduled run: %w", err)
	}
	for _, iv := range schedule.Plan(sc, d.Start, last, now, d.Catchup) {
		run := newRun(d, iv, state.KindScheduled, nil, now)
		run.DueAt = iv.End
		err := s.store.CreateRun(ctx, run, taskIDs(d))
		switch {
		case err == nil:
			s.log.Info("run scheduled", "dag", d.ID, "run", run.RunID)
		case errors.Is(err, state.ErrRunExists):
		default:
			return fmt.Errorf("create run %s: %w", run.RunID, err)
		}
	}
	return nil
}

// handleRun starts a queued run if the DAG has room, evaluates a running
// one, and ends it when all its tasks are finished. It returns the number
// of ready tasks that found no free worker or pool slot.
func (s *Scheduler) handleRun(ctx context.Context, r state.Run) (waiting int) {
	d := s.dags[r.DAGID]
	if d == nil || ctx.Err() != nil {
		return 0
	}
	s.mu.Lock()
	paused := s.paused[r.DAGID]
	s.mu.Unlock()
	if paused {
		return 0
	}
	unlock := s.lockRun(r.DAGID, r.RunID)
	ev := s.startAndEvaluate(ctx, d, r)
	unlock()
	// Alerts go out after the lock: a slow webhook must not stall the
	// other runs hashed to the same lock.
	for _, a := range ev.alerts {
		s.alert(ctx, a)
	}
	if ev.finished {
		s.endRun(ctx, d, r, state.RunRunning, ev.result, s.opts.Now(), "")
	}
	return ev.waiting
}

// evaluation is what evaluating a run found.
type evaluation struct {
	finished bool
	result   state.RunState
	waiting  int
	alerts   []notify.Alert
}

func (s *Scheduler) startAndEvaluate(ctx context.Context, d *dag.DAG, r state.Run) evaluation {
	now := s.opts.Now()
	if r.State == state.RunQueued {
		err := s.store.StartRun(ctx, r.DAGID, r.RunID, d.MaxActiveRuns, now)
		switch {
		case errors.Is(err, state.ErrMaxActiveRuns):
			return evaluation{}
		case err != nil:
			s.log.Error("start run", "dag", r.DAGID, "run", r.RunID, "err", err)
			return evaluation{}
		}
		s.m.schedDelay.WithLabelValues(r.DAGID).Observe(max(0, now.Sub(r.DueAt).Seconds()))
		r.State = state.RunRunning
		r.StartedAt = now
	}
	if r.State != state.RunRunning {
		return evaluation{}
	}
	return s.evaluate(ctx, d, r)
}

// evaluate decides the next states of a running run's tasks and dispatches
// the runnable ones. Only the tasks the DAG defines now count: an instance of
// a task removed since the run was created is ignored, and a task added
// since then is not part of the run (it is passed through).
func (s *Scheduler) evaluate(ctx context.Context, d *dag.DAG, r state.Run) (ev evaluation) {
	now := s.opts.Now()
	all, err := s.store.Tasks(ctx, d.ID, r.RunID)
	if err != nil {
		s.log.Error("read tasks", "dag", d.ID, "run", r.RunID, "err", err)
		return ev
	}
	tis := slices.DeleteFunc(all, func(ti state.TaskInstance) bool {
		_, ok := d.Task(ti.TaskID)
		return !ok
	})
	byID := make(map[string]*state.TaskInstance, len(tis))
	for i := range tis {
		byID[tis[i].TaskID] = &tis[i]
	}
	decisions := map[string]state.TaskState{}
	// A task the run lacks (added to the DAG after the run was created) is
	// passed through: it counts as succeeded once its own upstream allows
	// it to run, so its downstream still waits for what precedes it.
	passed := map[string]state.TaskState{}
	for _, t := range d.Tasks() {
		ti := byID[t.ID]
		if ti != nil && ti.State != state.TaskNone {
			continue
		}
		ups := make([]state.TaskState, 0, len(t.Upstream))
		for _, u := range t.Upstream {
			if uti := byID[u]; uti != nil {
				ups = append(ups, uti.State)
			} else {
				ups = append(ups, passed[u])
			}
		}
		st := decide(t.TriggerRule, ups)
		if ti == nil {
			if st == state.TaskQueued {
				st = state.TaskSuccess
			}
			passed[t.ID] = st
			continue
		}
		if st != state.TaskNone {
			decisions[t.ID] = st
			ti.State = st
			if st == state.TaskQueued {
				ti.ReadyAt = now
			}
		}
	}
	if len(decisions) > 0 {
		if err := s.store.SetTaskStates(ctx, d.ID, r.RunID, decisions, now); err != nil {
			s.log.Error("record task decisions", "dag", d.ID, "run", r.RunID, "err", err)
			return ev
		}
	}
	if finished, result := runOutcome(tis); finished {
		return evaluation{finished: true, result: result}
	}
	if a := s.runDeadline(ctx, d, r, now, "run not finished"); a != nil {
		ev.alerts = append(ev.alerts, *a)
	}
	for _, t := range d.Tasks() {
		ti := byID[t.ID]
		if ti == nil {
			continue
		}
		s.mu.Lock()
		mine := s.inflight[ti.TaskKey]
		s.mu.Unlock()
		claimable := false
		switch ti.State {
		case state.TaskQueued:
			claimable = true
		case state.TaskUpForRetry, state.TaskUpForReschedule:
			claimable = !now.Before(ti.NextTryAt)
		case state.TaskRunning:
			claimable = !now.Before(ti.LeaseUntil)
			if t.ExpectedDuration > 0 && !ti.DeadlineAlerted && now.Sub(ti.StartedAt) > t.ExpectedDuration {
				if a := s.taskDeadline(ctx, t, *ti, now); a != nil {
					ev.alerts = append(ev.alerts, *a)
				}
			}
		}
		if claimable && !mine && !s.claimAndLaunch(ctx, d, t, r, *ti) {
			ev.waiting++
		}
	}
	return ev
}

// runDeadline records and returns the deadline-miss alert of a scheduled
// run still running, or finished, later than its DAG's RunDeadline after its
// data interval ended; nil if there is none to send (or it was sent). Manual
// and backfill runs of old intervals are late by design and never alert.
func (s *Scheduler) runDeadline(ctx context.Context, d *dag.DAG, r state.Run, now time.Time, what string) *notify.Alert {
	if d.RunDeadline <= 0 || r.Kind != state.KindScheduled || r.DeadlineAlerted || !now.After(r.IntervalEnd.Add(d.RunDeadline)) {
		return nil
	}
	first, err := s.store.MarkRunDeadlineAlerted(ctx, d.ID, r.RunID)
	if err != nil {
		s.log.Error("record run deadline alert", "dag", d.ID, "run", r.RunID, "err", err)
		return nil
	}
	if !first {
		return nil
	}
	return &notify.Alert{Kind: notify.DeadlineMissed, DAGID: d.ID, RunID: r.RunID, At: now,
		Message: fmt.Sprintf("%s %s after its data interval ended (deadline %s)", what,
			now.Sub(r.IntervalEnd).Round(time.Second), d.RunDeadline)}
}

// taskDeadline records and returns the alert of an attempt running longer
// than its task's ExpectedDuration; nil if it was already sent.
func (s *Scheduler) taskDeadline(ctx context.Context, t *dag.Task, ti state.TaskInstance, now time.Time) *notify.Alert {
	first, err := s.store.MarkTaskDeadlineAlerted(ctx, ti.TaskKey, ti.Try)
	if err != nil {
		s.log.Error("record task deadline alert", "task", ti.TaskKey, "err", err)
		return nil
	}
	if !first {
		return nil
	}
	return &notify.Alert{Kind: notify.DeadlineMissed, DAGID: ti.DAGID, RunID: ti.RunID, TaskID: ti.TaskID,
		Try: ti.Try, At: now, Message: fmt.Sprintf("task ran for %s, expected at most %s",
			now.Sub(ti.StartedAt).Round(time.Second), t.ExpectedDuration)}
}

// claimAndLaunch claims a task and starts its attempt. It returns false
// when the task must wait for a worker or pool slot.
func (s *Scheduler) claimAndLaunch(ctx context.Context, d *dag.DAG, t *dag.Task, r state.Run, ti state.TaskInstance) bool {
	select {
	case s.slots <- struct{}{}:
	default:
		s.starved.Store(true)
		return false
	}
	claimed, err := s.store.ClaimTask(ctx, state.Claim{
		Key: ti.TaskKey, Owner: s.opts.Owner, Now: s.opts.Now(), Lease: s.opts.Lease,
		Pool: t.Pool, PoolSlots: s.opts.Pools[t.Pool],
	})
	if err != nil {
		<-s.slots
		switch {
		case errors.Is(err, state.ErrNotClaimable):
		case errors.Is(err, state.ErrPoolFull):
			return false
		default:
			s.log.Error("claim task", "task", ti.TaskKey, "err", err)
		}
		return true
	}
	switch ti.State {
	case state.TaskRunning:
		s.m.takeovers.Inc()
		s.log.Warn("task taken over after its lease expired", "dag", ti.DAGID, "run", ti.RunID,
			"task", ti.TaskID, "previous_owner", ti.Owner, "try", claimed.Try)
	case state.TaskQueued:
		s.m.startDelay.Observe(max(0, claimed.StartedAt.Sub(claimed.ReadyAt).Seconds()))
	}
	s.mu.Lock()
	s.inflight[claimed.TaskKey] = true
	s.mu.Unlock()
	s.m.running.Inc()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.execute(d, t, r, claimed)
		s.mu.Lock()
		delete(s.inflight, claimed.TaskKey)
		s.mu.Unlock()
		<-s.slots
		s.m.running.Dec()
		if s.starved.Swap(false) {
			// A slot is free and a ready task waited for one: ask Run for a pass.
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
		s.afterTask(ctx, claimed.TaskKey)
	}()
	return true
}

// afterTask evaluates the run of a task this scheduler just finished, which
// launches its ready downstream tasks at once.
func (s *Scheduler) afterTask(ctx context.Context, key state.TaskKey) {
	if ctx.Err() != nil {
		return
	}
	r, err := s.store.Run(ctx, key.DAGID, key.RunID)
	if err != nil {
		s.log.Error("read run", "dag", key.DAGID, "run", key.RunID, "err", err)
		return
	}
	s.handleRun(ctx, r)
}

// endRun ends a run that is in state from; why, when set, says why it ends
// without its tasks (a cancelled backfill).
func (s *Scheduler) endRun(ctx context.Context, d *dag.DAG, r state.Run, from, result state.RunState, now time.Time, why string) {
	if err := s.store.EndRun(ctx, d.ID, r.RunID, from, result, now); err != nil {
		if errors.Is(err, state.ErrConflict) {
			// Ended, cleared or started by someone else meanwhile.
			s.log.Debug("run changed before it could be ended", "dag", d.ID, "run", r.RunID)
			return
		}
		s.log.Error("end run", "dag", d.ID, "run", r.RunID, "err", err)
		return
	}
	s.m.runs.WithLabelValues(d.ID, string(result)).Inc()
	if r.BackfillID != "" {
		s.forgetBackfillRun(r)
	}
	if why != "" {
		s.log.Info("run ended", "dag", d.ID, "run", r.RunID, "state", result, "why", why)
		return
	}
	s.log.Info("run finished", "dag", d.ID, "run", r.RunID, "state", result)
	if a := s.runDeadline(ctx, d, r, now, "run finished"); a != nil {
		s.alert(ctx, *a)
	}
	if result == state.RunFailed {
		s.alert(ctx, notify.Alert{Kind: notify.RunFailed, DAGID: d.ID, RunID: r.RunID, At: now, Message: "run failed"})
	}
	if r.BackfillID != "" {
		for _, nr := range s.advanceBackfill(ctx, r.BackfillID) {
			s.handleRun(ctx, nr)
		}
	}
}

func (s *Scheduler) alert(ctx context.Context, a notify.Alert) {
	s.m.alerts.WithLabelValues(string(a.Kind)).Inc()
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := s.opts.Notifier.Notify(actx, a); err != nil {
		s.m.alertFailures.Inc()
		s.log.Error("send alert", "kind", a.Kind, "dag", a.DAGID, "run", a.RunID, "task", a.TaskID, "err", err)
	}
}

// backoff returns the delay before retry n (1-based): RetryDelay doubled
// per failure, capped at MaxRetryDelay, then ±20% jitter.
func backoff(t *dag.Task, n int, jitter float64) time.Duration {
	d := float64(t.RetryDelay) * math.Pow(2, float64(n-1))
	d = min(d, float64(t.MaxRetryDelay))
	d *= 0.8 + 0.4*jitter
	return time.Duration(d)
}

func newRun(d *dag.DAG, iv dag.Interval, kind state.RunKind, params map[string]string, now time.Time) state.Run {
	p := make(map[string]string, len(d.Params)+len(params))
	for k, v := range d.Params {
		p[k] = v
	}
	for k, v := range params {
		p[k] = v
	}
	return state.Run{
		DAGID: d.ID, RunID: state.RunID(iv.Start, iv.End), Kind: kind,
		LogicalDate: iv.Start, IntervalStart: iv.Start, IntervalEnd: iv.End,
		Params: p, State: state.RunQueued, DueAt: now, CreatedAt: now,
	}
}

func taskIDs(d *dag.DAG) []string {
	ts := d.Tasks()
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	return ids
}
