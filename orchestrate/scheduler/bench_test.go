package scheduler

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/state"
	"github.com/labplatform/platform/orchestrate/state/boltstore"
)

// benchActive is the backfill's runs in flight: more raise throughput until
// the store's one writer saturates, then only add latency per task.
const benchActive = 8

// BenchmarkBackfillYearHourly backfills a no-op DAG of three chained tasks
// hourly over one year (8,760 runs, 26,280 tasks) on the embedded store, with
// the scheduler's real loop and clock. It reports the wall time, runs/s and
// the scheduling overhead per task (from the upstream's end, or the run's
// start, to the task's start, as recorded in the store).
// Run it with -benchtime=1x: one iteration is one whole year.
func BenchmarkBackfillYearHourly(b *testing.B) {
	noop := dag.Func(func(context.Context, *dag.TaskContext) error { return nil })
	d, err := dag.New(dag.DAG{ID: "noop", Schedule: "@hourly", Catchup: dag.Catchup{Mode: dag.CatchupLatest}, MaxActiveRuns: 64},
		&dag.Task{ID: "a", Operator: noop},
		&dag.Task{ID: "b", Operator: noop, Upstream: []string{"a"}},
		&dag.Task{ID: "c", Operator: noop, Upstream: []string{"b"}})
	if err != nil {
		b.Fatal(err)
	}
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2025, 12, 31, 23, 0, 0, 0, time.UTC)
	for b.Loop() {
		store, err := boltstore.Open(filepath.Join(b.TempDir(), "state.db"), boltstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		s, err := New(store, []*dag.DAG{d}, Options{Workers: 64, PollInterval: 250 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(b.Context())
		start := time.Now()
		bf, err := NewBackfill(ctx, store, d, BackfillRequest{From: from, To: to, MaxActiveRuns: benchActive}, start)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		for {
			got, err := store.Backfill(ctx, bf.ID)
			if err != nil {
				b.Fatal(err)
			}
			if got.State == state.BackfillDone {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		elapsed := time.Since(start)
		cancel()
		<-done
		b.StopTimer()
		runs, err := store.Runs(b.Context(), state.RunFilter{BackfillID: bf.ID})
		if err != nil {
			b.Fatal(err)
		}
		if len(runs) != 8760 {
			b.Fatalf("%d backfill runs, want 8760", len(runs))
		}
		var overhead []time.Duration
		for _, r := range runs {
			if r.State != state.RunSuccess {
				b.Fatalf("run %s: %s", r.RunID, r.State)
			}
			tis, err := store.Tasks(b.Context(), d.ID, r.RunID)
			if err != nil {
				b.Fatal(err)
			}
			ended := map[string]time.Time{}
			for _, ti := range tis {
				if ti.State != state.TaskSuccess || ti.Try != 1 {
					b.Fatalf("task %v: %s try %d", ti.TaskKey, ti.State, ti.Try)
				}
				ended[ti.TaskID] = ti.EndedAt
			}
			// A task is due when its upstream ended (a root: when the run
			// started and made it ready).
			for _, ti := range tis {
				due := ti.ReadyAt
				if up := map[string]string{"b": "a", "c": "b"}[ti.TaskID]; up != "" {
					due = ended[up]
				}
				overhead = append(overhead, ti.StartedAt.Sub(due))
			}
		}
		slices.Sort(overhead)
		var sum time.Duration
		for _, o := range overhead {
			sum += o
		}
		b.ReportMetric(elapsed.Seconds(), "s/year")
		b.ReportMetric(float64(len(runs))/elapsed.Seconds(), "runs/s")
		b.ReportMetric(float64(len(overhead))/elapsed.Seconds(), "tasks/s")
		b.ReportMetric(float64(sum.Microseconds())/float64(len(overhead))/1000, "ms-overhead/task")
		b.ReportMetric(float64(overhead[len(overhead)/2].Microseconds())/1000, "p50-ms-overhead/task")
		b.ReportMetric(float64(overhead[len(overhead)*99/100].Microseconds())/1000, "p99-ms-overhead/task")
		if err := store.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
