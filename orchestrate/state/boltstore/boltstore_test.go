package boltstore_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labplatform/platform/orchestrate/state"
	"github.com/labplatform/platform/orchestrate/state/boltstore"
	"github.com/labplatform/platform/orchestrate/state/statetest"
)

func open(t testing.TB, path string, opts boltstore.Options) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store {
		// The default (fsync) mode: the suite is small enough.
		s := open(t, filepath.Join(t.TempDir(), "state.db"), boltstore.Options{})
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	})
}

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func TestSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path, boltstore.Options{})
	start, end := t0, t0.Add(time.Hour)
	run := state.Run{
		DAGID: "load", RunID: state.RunID(start, end), Kind: state.KindScheduled,
		LogicalDate: start, IntervalStart: start, IntervalEnd: end, DueAt: end, CreatedAt: end,
		Params: map[string]string{"day": "2026-03-01"},
	}
	if err := s.CreateRun(ctx, run, []string{"extract", "load"}); err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	if err := s.StartRun(ctx, "load", run.RunID, 1, end); err != nil {
		t.Fatalf("StartRun: %v", err)
	}
	if err := s.SetTaskStates(ctx, "load", run.RunID, map[string]state.TaskState{"extract": state.TaskQueued}, end); err != nil {
		t.Fatalf("SetTaskStates: %v", err)
	}
	key := state.TaskKey{DAGID: "load", RunID: run.RunID, TaskID: "extract"}
	claim := state.Claim{Key: key, Owner: "s1", Now: end, Lease: time.Minute, Pool: "bq", PoolSlots: 1}
	if _, err := s.ClaimTask(ctx, claim); err != nil {
		t.Fatalf("ClaimTask: %v", err)
	}
	if err := s.SetPaused(ctx, "load", true); err != nil {
		t.Fatalf("SetPaused: %v", err)
	}
	bf := state.Backfill{ID: "bf", DAGID: "load", From: start, To: start, State: state.BackfillRunning, CreatedAt: end, UpdatedAt: end, Cursor: start, Total: 1}
	if err := s.CreateBackfill(ctx, bf); err != nil {
		t.Fatalf("CreateBackfill: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path, boltstore.Options{Timeout: time.Second})
	t.Cleanup(func() { _ = s.Close() })
	r, err := s.Run(ctx, "load", run.RunID)
	if err != nil {
		t.Fatalf("Run after reopen: %v", err)
	}
	if r.State != state.RunRunning || r.Params["day"] != "2026-03-01" {
		t.Errorf("run after reopen = %+v", r)
	}
	if err := s.CreateRun(ctx, run, []string{"x"}); !errors.Is(err, state.ErrRunExists) {
		t.Errorf("CreateRun after reopen: %v, want ErrRunExists", err)
	}
	// The active-run slot, the lease and the pool slot survived too.
	other := run
	other.IntervalStart, other.IntervalEnd, other.LogicalDate = end, end.Add(time.Hour), end
	other.RunID = state.RunID(other.IntervalStart, other.IntervalEnd)
	if err := s.CreateRun(ctx, other, []string{"extract"}); err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	if err := s.StartRun(ctx, "load", other.RunID, 1, end); !errors.Is(err, state.ErrMaxActiveRuns) {
		t.Errorf("StartRun after reopen: %v, want ErrMaxActiveRuns", err)
	}
	if _, err := s.ClaimTask(ctx, state.Claim{Key: key, Owner: "s2", Now: end.Add(time.Second), Lease: time.Minute}); !errors.Is(err, state.ErrNotClaimable) {
		t.Errorf("ClaimTask under the lease after reopen: %v, want ErrNotClaimable", err)
	}
	if err := s.StartRun(ctx, "load", other.RunID, 2, end); err != nil {
		t.Fatalf("StartRun: %v", err)
	}
	if err := s.SetTaskStates(ctx, "load", other.RunID, map[string]state.TaskState{"extract": state.TaskQueued}, end); err != nil {
		t.Fatalf("SetTaskStates: %v", err)
	}
	otherKey := state.TaskKey{DAGID: "load", RunID: other.RunID, TaskID: "extract"}
	if _, err := s.ClaimTask(ctx, state.Claim{Key: otherKey, Owner: "s2", Now: end.Add(time.Second), Lease: time.Minute, Pool: "bq", PoolSlots: 1}); !errors.Is(err, state.ErrPoolFull) {
		t.Errorf("ClaimTask in the full pool after reopen: %v, want ErrPoolFull", err)
	}
	ti, err := s.FinishTask(ctx, state.Finish{Key: key, Try: 1, Owner: "s1", State: state.TaskSuccess, Now: end.Add(2 * time.Second)})
	if err != nil || ti.State != state.TaskSuccess {
		t.Errorf("FinishTask of the attempt started before reopen = %+v, %v", ti, err)
	}
	d, err := s.DAG(ctx, "load")
	if err != nil || !d.Paused {
		t.Errorf("DAG after reopen = %+v, %v; want paused", d, err)
	}
	if _, err := s.Backfill(ctx, "bf"); err != nil {
		t.Errorf("Backfill after reopen: %v", err)
	}
}

func TestOpenLockedTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path, boltstore.Options{})
	t.Cleanup(func() { _ = s.Close() })
	if _, err := boltstore.Open(path, boltstore.Options{Timeout: 50 * time.Millisecond}); err == nil {
		t.Fatal("second Open of a locked file succeeded")
	}
}

func TestCreateRunRejectsForeignRunID(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"), boltstore.Options{NoSync: true})
	t.Cleanup(func() { _ = s.Close() })
	r := state.Run{DAGID: "load", RunID: "manual_1", IntervalStart: t0, IntervalEnd: t0.Add(time.Hour)}
	if err := s.CreateRun(t.Context(), r, nil); err == nil {
		t.Fatal("CreateRun accepted a run ID that is not the interval's")
	}
}

// BenchmarkClaimFinish measures one ClaimTask+FinishTask pair with fsync on
// (the default).
func BenchmarkClaimFinish(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("NoSync=%t", noSync), func(b *testing.B) {
			benchmarkClaimFinish(b, boltstore.Options{NoSync: noSync})
		})
	}
}

func benchmarkClaimFinish(b *testing.B, opts boltstore.Options) {
	ctx := b.Context()
	s := open(b, filepath.Join(b.TempDir(), "state.db"), opts)
	b.Cleanup(func() { _ = s.Close() })
	// One run per iteration, created outside the timer: a year of hourly runs
	// when b.N is 8,760.
	runIDs := make([]string, b.N)
	for i := range b.N {
		start := t0.Add(time.Duration(i) * time.Hour)
		end := start.Add(time.Hour)
		r := state.Run{DAGID: "load", RunID: state.RunID(start, end), Kind: state.KindScheduled, LogicalDate: start, IntervalStart: start, IntervalEnd: end, DueAt: end, CreatedAt: end}
		if err := s.CreateRun(ctx, r, []string{"t"}); err != nil {
			b.Fatal(err)
		}
		if err := s.SetTaskStates(ctx, "load", r.RunID, map[string]state.TaskState{"t": state.TaskQueued}, end); err != nil {
			b.Fatal(err)
		}
		runIDs[i] = r.RunID
	}
	b.ResetTimer()
	for i := range b.N {
		now := t0.Add(time.Duration(i) * time.Hour)
		key := state.TaskKey{DAGID: "load", RunID: runIDs[i], TaskID: "t"}
		ti, err := s.ClaimTask(ctx, state.Claim{Key: key, Owner: "s", Now: now, Lease: time.Minute, Pool: "bq", PoolSlots: 4})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.FinishTask(ctx, state.Finish{Key: key, Try: ti.Try, Owner: "s", State: state.TaskSuccess, Now: now.Add(time.Second)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaimFinishParallel measures ClaimTask+FinishTask pairs from 8
// concurrent workers, as a scheduler with a worker pool issues them.
func BenchmarkClaimFinishParallel(b *testing.B) {
	ctx := b.Context()
	s := open(b, filepath.Join(b.TempDir(), "state.db"), boltstore.Options{})
	b.Cleanup(func() { _ = s.Close() })
	runIDs := make([]string, b.N)
	for i := range b.N {
		start := t0.Add(time.Duration(i) * time.Hour)
		end := start.Add(time.Hour)
		r := state.Run{DAGID: "load", RunID: state.RunID(start, end), Kind: state.KindScheduled, LogicalDate: start, IntervalStart: start, IntervalEnd: end, DueAt: end, CreatedAt: end}
		if err := s.CreateRun(ctx, r, []string{"t"}); err != nil {
			b.Fatal(err)
		}
		if err := s.SetTaskStates(ctx, "load", r.RunID, map[string]state.TaskState{"t": state.TaskQueued}, end); err != nil {
			b.Fatal(err)
		}
		runIDs[i] = r.RunID
	}
	var next atomic.Int64
	b.SetParallelism(4) // 8 workers on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			key := state.TaskKey{DAGID: "load", RunID: runIDs[i], TaskID: "t"}
			ti, err := s.ClaimTask(ctx, state.Claim{Key: key, Owner: "s", Now: t0, Lease: time.Minute, Pool: "bq", PoolSlots: 1 << 20})
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := s.FinishTask(ctx, state.Finish{Key: key, Try: ti.Try, Owner: "s", State: state.TaskSuccess, Now: t0}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRunLifecycle measures one hourly run of three chained tasks from
// creation to success, serially: 11 write transactions. Run it with
// -benchtime=8760x for a year of hourly runs.
func BenchmarkRunLifecycle(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("NoSync=%t", noSync), func(b *testing.B) {
			ctx := b.Context()
			s := open(b, filepath.Join(b.TempDir(), "state.db"), boltstore.Options{NoSync: noSync})
			b.Cleanup(func() { _ = s.Close() })
			taskIDs := []string{"extract", "load", "check"}
			for i := range b.N {
				start := t0.Add(time.Duration(i) * time.Hour)
				end := start.Add(time.Hour)
				r := state.Run{DAGID: "load", RunID: state.RunID(start, end), Kind: state.KindScheduled, LogicalDate: start, IntervalStart: start, IntervalEnd: end, DueAt: end, CreatedAt: end}
				if err := s.CreateRun(ctx, r, taskIDs); err != nil {
					b.Fatal(err)
				}
				if err := s.StartRun(ctx, "load", r.RunID, 1, end); err != nil {
					b.Fatal(err)
				}
				for _, id := range taskIDs {
					if err := s.SetTaskStates(ctx, "load", r.RunID, map[string]state.TaskState{id: state.TaskQueued}, end); err != nil {
						b.Fatal(err)
					}
					key := state.TaskKey{DAGID: "load", RunID: r.RunID, TaskID: id}
					ti, err := s.ClaimTask(ctx, state.Claim{Key: key, Owner: "s", Now: end, Lease: time.Minute, Pool: "bq", PoolSlots: 4})
					if err != nil {
						b.Fatal(err)
					}
					if _, err := s.FinishTask(ctx, state.Finish{Key: key, Try: ti.Try, Owner: "s", State: state.TaskSuccess, Now: end}); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.EndRun(ctx, "load", r.RunID, state.RunRunning, state.RunSuccess, end); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestWriteAfterClose(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"), boltstore.Options{NoSync: true})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.SetPaused(t.Context(), "load", true); err == nil {
		t.Error("SetPaused after Close succeeded")
	}
}
