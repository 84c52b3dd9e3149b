package firestorestore_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/orchestrate/state"
	"github.com/labplatform/platform/orchestrate/state/firestorestore"
	"github.com/labplatform/platform/orchestrate/state/statetest"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }

var projectSeq atomic.Int64

// freshProject names a Firestore project no other test uses: the emulator
// keeps every project's data apart, so each gets an empty database.
func freshProject() string { return fmt.Sprintf("orch-state-%d", projectSeq.Add(1)) }

// newClient returns a client of project with its own gRPC connection, as a
// separate scheduler process would have.
func newClient(t testing.TB, project string) *firestore.Client {
	t.Helper()
	p := env.Platform
	p.Project = project
	c, err := gcp.NewFirestore(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close firestore client: %v", err)
		}
	})
	return c
}

func newStore(t testing.TB, c *firestore.Client) *firestorestore.Store {
	t.Helper()
	s := firestorestore.New(c, firestorestore.Options{})
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store {
		return newStore(t, newClient(t, freshProject()))
	})
}

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func hourRun(dagID string, hour int) state.Run {
	start := t0.Add(time.Duration(hour) * time.Hour)
	return state.Run{
		DAGID: dagID, RunID: state.RunID(start, start.Add(time.Hour)), Kind: state.KindScheduled,
		LogicalDate: start, IntervalStart: start, IntervalEnd: start.Add(time.Hour),
		DueAt: start.Add(time.Hour), CreatedAt: t0,
	}
}

// twoSchedulers returns two stores on one database, each with its own
// client and connection.
func twoSchedulers(t *testing.T) [2]*firestorestore.Store {
	project := freshProject()
	return [2]*firestorestore.Store{newStore(t, newClient(t, project)), newStore(t, newClient(t, project))}
}

// TestSchedulersShareInvariants races two schedulers, each with its own
// client, on the same run, claim, pool and active-run cap.
func TestSchedulersShareInvariants(t *testing.T) {
	ctx := t.Context()
	s := twoSchedulers(t)
	const n = 6

	// One run per interval across processes.
	var created atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := s[i%2].CreateRun(ctx, hourRun("a", 0), []string{"t0", "t1", "t2", "t3"})
			switch {
			case err == nil:
				created.Add(1)
			case !errors.Is(err, state.ErrRunExists):
				t.Errorf("CreateRun: %v", err)
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Fatalf("%d CreateRun calls succeeded, want 1", created.Load())
	}
	runID := hourRun("a", 0).RunID
	if err := s[1].StartRun(ctx, "a", runID, 1, t0); err != nil {
		t.Fatalf("StartRun: %v", err)
	}
	queued := map[string]state.TaskState{"t0": state.TaskQueued, "t1": state.TaskQueued, "t2": state.TaskQueued, "t3": state.TaskQueued}
	if err := s[0].SetTaskStates(ctx, "a", runID, queued, t0); err != nil {
		t.Fatalf("SetTaskStates: %v", err)
	}

	// One winner per claim, and one pool slot between the two schedulers.
	var won, full atomic.Int32
	for i := range 2 * n {
		wg.Go(func() {
			k := state.TaskKey{DAGID: "a", RunID: runID, TaskID: fmt.Sprintf("t%d", i%4)}
			_, err := s[i%2].ClaimTask(ctx, state.Claim{Key: k, Owner: fmt.Sprintf("sched-%d", i%2), Now: t0, Lease: time.Minute, Pool: "db", PoolSlots: 1})
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, state.ErrPoolFull), errors.Is(err, state.ErrNotClaimable):
				full.Add(1)
			default:
				t.Errorf("ClaimTask: %v", err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 || full.Load() != 2*n-1 {
		t.Fatalf("claims in a pool of 1: %d won, %d refused; want 1 and %d", won.Load(), full.Load(), 2*n-1)
	}
	tis, err := s[1].Tasks(ctx, "a", runID)
	if err != nil {
		t.Fatalf("Tasks: %v", err)
	}
	running := 0
	for _, ti := range tis {
		if ti.State == state.TaskRunning {
			running++
		}
	}
	if running != 1 {
		t.Errorf("%d running tasks, want 1", running)
	}

	// The active-run cap holds across processes.
	var started atomic.Int32
	for h := 1; h <= n; h++ {
		if err := s[0].CreateRun(ctx, hourRun("b", h), nil); err != nil {
			t.Fatalf("CreateRun: %v", err)
		}
	}
	for h := 1; h <= n; h++ {
		wg.Go(func() {
			err := s[h%2].StartRun(ctx, "b", hourRun("b", h).RunID, 2, t0)
			switch {
			case err == nil:
				started.Add(1)
			case !errors.Is(err, state.ErrMaxActiveRuns):
				t.Errorf("StartRun: %v", err)
			}
		})
	}
	wg.Wait()
	if started.Load() != 2 {
		t.Errorf("%d runs started under a cap of 2", started.Load())
	}
}

// TestErrorsKeepStatus checks that a mapped error matches both the state
// error and its gRPC code.
func TestErrorsKeepStatus(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, newClient(t, freshProject()))
	r := hourRun("a", 0)
	if err := s.CreateRun(ctx, r, []string{"t"}); err != nil {
		t.Fatal(err)
	}
	err := s.CreateRun(ctx, r, []string{"t"})
	if !errors.Is(err, state.ErrRunExists) || status.Code(err) != codes.AlreadyExists {
		t.Errorf("duplicate CreateRun: %v (code %s), want ErrRunExists with AlreadyExists", err, status.Code(err))
	}
	_, err = s.Run(ctx, "a", hourRun("a", 1).RunID)
	if !errors.Is(err, state.ErrNotFound) || status.Code(err) != codes.NotFound {
		t.Errorf("Run of unknown run: %v (code %s), want ErrNotFound with NotFound", err, status.Code(err))
	}
	err = s.CreateRun(ctx, state.Run{DAGID: "a", RunID: "custom", IntervalStart: t0, IntervalEnd: t0.Add(time.Hour)}, nil)
	if err == nil {
		t.Errorf("CreateRun with a run ID that is not its interval's: no error")
	}
}

// TestAwkwardIDs stores IDs Firestore would refuse as document IDs
// ("/", reserved "__x__", ".", "..") and IDs that differ only in characters
// the escaping touches.
func TestAwkwardIDs(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, newClient(t, freshProject()))
	dags := []string{"a/b", "a%2Fb", "__x__", ".", "..", "a~b", "a_b", "a.b", "é"}
	for _, dag := range dags {
		if err := s.CreateRun(ctx, hourRun(dag, 0), []string{"/", "__t__"}); err != nil {
			t.Fatalf("CreateRun dag %q: %v", dag, err)
		}
		if err := s.SetPaused(ctx, dag, true); err != nil {
			t.Fatalf("SetPaused %q: %v", dag, err)
		}
	}
	for _, dag := range dags {
		runs, err := s.Runs(ctx, state.RunFilter{DAGID: dag})
		if err != nil || len(runs) != 1 || runs[0].DAGID != dag {
			t.Errorf("Runs of %q = %+v, %v; want its one run", dag, runs, err)
		}
		tis, err := s.Tasks(ctx, dag, hourRun(dag, 0).RunID)
		if err != nil || len(tis) != 2 || tis[0].TaskID != "/" || tis[1].TaskID != "__t__" {
			t.Errorf("Tasks of %q = %+v, %v", dag, tis, err)
		}
		if d, err := s.DAG(ctx, dag); err != nil || !d.Paused {
			t.Errorf("DAG %q = %+v, %v; want paused", dag, d, err)
		}
	}
	if err := s.CreateBackfill(ctx, state.Backfill{ID: "..", DAGID: "a/b", State: state.BackfillRunning}); err != nil {
		t.Fatalf("CreateBackfill: %v", err)
	}
	if b, err := s.Backfill(ctx, ".."); err != nil || b.DAGID != "a/b" {
		t.Errorf("Backfill .. = %+v, %v", b, err)
	}
}

// TestStoredShape reads the documents with the plain client: collections
// from contracts/names, times as Firestore timestamps at microseconds.
func TestStoredShape(t *testing.T) {
	ctx := t.Context()
	c := newClient(t, freshProject())
	s := newStore(t, c)
	r := hourRun("load", 0)
	r.CreatedAt = t0.Add(1234567 * time.Nanosecond)
	// Firestore refuses empty and "__x__" map keys (the emulator does not).
	r.Params = map[string]string{"": "empty", "__x__": "reserved", "day": "2026-03-01"}
	if err := s.CreateRun(ctx, r, []string{"t"}); err != nil {
		t.Fatal(err)
	}
	if err := s.StartRun(ctx, "load", r.RunID, 3, t0); err != nil {
		t.Fatal(err)
	}
	runs, err := c.Collection(names.CollectionOrchestrateRuns).Where("dag_id", "==", "load").Documents(ctx).GetAll()
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs collection: %d documents, %v", len(runs), err)
	}
	created, ok := runs[0].Data()["created_at"].(time.Time)
	if !ok {
		t.Fatalf("created_at is %T, want a timestamp", runs[0].Data()["created_at"])
	}
	if want := t0.Add(1234 * time.Microsecond); !created.Equal(want) {
		t.Errorf("created_at = %s, want %s (microseconds)", created.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
	if params, ok := runs[0].Data()["params"].([]any); !ok || len(params) != 3 {
		t.Errorf("params stored as %T %v, want a list of 3 pairs", runs[0].Data()["params"], runs[0].Data()["params"])
	}
	if got, err := s.Run(ctx, "load", r.RunID); err != nil || !maps.Equal(got.Params, r.Params) {
		t.Errorf("Run params = %v, %v; want %v", got.Params, err, r.Params)
	}
	tasks, err := c.Collection(names.CollectionOrchestrateTasks).Where("run_id", "==", r.RunID).Documents(ctx).GetAll()
	if err != nil || len(tasks) != 1 {
		t.Errorf("tasks collection: %d documents, %v", len(tasks), err)
	}
	dag, err := c.Collection(names.CollectionOrchestrateDAGs).Doc("load").Get(ctx)
	if err != nil {
		t.Fatalf("dag document: %v", err)
	}
	if active, _ := dag.Data()["active"].([]any); len(active) != 1 || active[0] != r.RunID {
		t.Errorf("dag active = %v, want [%s]", dag.Data()["active"], r.RunID)
	}
}

// benchTask creates a run with one queued task and returns its key.
func benchTask(b *testing.B, s *firestorestore.Store) state.TaskKey {
	ctx := b.Context()
	r := hourRun("bench", 0)
	if err := s.CreateRun(ctx, r, []string{"t"}); err != nil {
		b.Fatal(err)
	}
	if err := s.SetTaskStates(ctx, "bench", r.RunID, map[string]state.TaskState{"t": state.TaskQueued}, t0); err != nil {
		b.Fatal(err)
	}
	return state.TaskKey{DAGID: "bench", RunID: r.RunID, TaskID: "t"}
}

// BenchmarkClaimFinish measures one attempt's two transactions (ClaimTask
// then FinishTask up_for_retry) on the emulator, without and with a pool.
func BenchmarkClaimFinish(b *testing.B) {
	for _, slots := range []int{0, 4} {
		b.Run(fmt.Sprintf("pool_slots=%d", slots), func(b *testing.B) {
			s := newStore(b, newClient(b, freshProject()))
			k := benchTask(b, s)
			ctx := b.Context()
			now := t0
			try := 0
			for b.Loop() {
				now = now.Add(time.Second)
				ti, err := s.ClaimTask(ctx, state.Claim{Key: k, Owner: "bench", Now: now, Lease: time.Minute, Pool: "db", PoolSlots: slots})
				if err != nil {
					b.Fatal(err)
				}
				try++
				if ti.Try != try {
					b.Fatalf("Try = %d, want %d", ti.Try, try)
				}
				_, err = s.FinishTask(ctx, state.Finish{Key: k, Try: ti.Try, Owner: "bench", State: state.TaskUpForRetry, Now: now, NextTryAt: now})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPoolSlotFollowsTheTry checks the slot bookkeeping beyond the suite: a
// try that renews an expired lease (no takeover) takes its slot back, and a
// claim naming a pool without slots holds none.
func TestPoolSlotFollowsTheTry(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, newClient(t, freshProject()))
	r := hourRun("a", 0)
	if err := s.CreateRun(ctx, r, []string{"a", "b", "c", "free"}); err != nil {
		t.Fatal(err)
	}
	queued := map[string]state.TaskState{"a": state.TaskQueued, "b": state.TaskQueued, "c": state.TaskQueued, "free": state.TaskQueued}
	if err := s.SetTaskStates(ctx, "a", r.RunID, queued, t0); err != nil {
		t.Fatal(err)
	}
	key := func(id string) state.TaskKey { return state.TaskKey{DAGID: "a", RunID: r.RunID, TaskID: id} }
	pc := func(id string, now time.Time, slots int) state.Claim {
		return state.Claim{Key: key(id), Owner: "s", Now: now, Lease: 10 * time.Second, Pool: "db", PoolSlots: slots}
	}
	if _, err := s.ClaimTask(ctx, pc("free", t0, 0)); err != nil {
		t.Fatalf("claim without slots: %v", err)
	}
	if _, err := s.ClaimTask(ctx, pc("a", t0, 1)); err != nil {
		t.Fatalf("claim a: %v", err)
	}
	if _, err := s.ClaimTask(ctx, pc("b", t0.Add(11*time.Second), 1)); err != nil {
		t.Fatalf("claim b after a's lease expired: %v", err)
	}
	if err := s.RenewLease(ctx, key("a"), 1, "s", t0.Add(time.Hour)); err != nil {
		t.Fatalf("renew a: %v", err)
	}
	if _, err := s.FinishTask(ctx, state.Finish{Key: key("b"), Try: 1, Owner: "s", State: state.TaskSuccess, Now: t0.Add(12 * time.Second)}); err != nil {
		t.Fatalf("finish b: %v", err)
	}
	if _, err := s.ClaimTask(ctx, pc("c", t0.Add(13*time.Second), 1)); !errors.Is(err, state.ErrPoolFull) {
		t.Fatalf("claim c while the renewed a runs: %v, want ErrPoolFull", err)
	}
	if _, err := s.FinishTask(ctx, state.Finish{Key: key("a"), Try: 1, Owner: "s", State: state.TaskSuccess, Now: t0.Add(14 * time.Second)}); err != nil {
		t.Fatalf("finish a: %v", err)
	}
	if _, err := s.ClaimTask(ctx, pc("c", t0.Add(15*time.Second), 1)); err != nil {
		t.Fatalf("claim c after a finished: %v", err)
	}
}
