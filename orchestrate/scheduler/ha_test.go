package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/state"
	"github.com/labplatform/platform/orchestrate/state/firestorestore"
	"github.com/labplatform/platform/testenv/firestoreemu"
)

// The high-availability test runs two schedulers as separate OS processes
// (this test binary re-executed in helper mode) against one Firestore
// emulator, so a scheduler can really be killed with SIGKILL mid-task.

const (
	haHelperEnv  = "ORCHESTRATE_HA_HELPER"
	haOwnerEnv   = "ORCHESTRATE_HA_OWNER"
	haProject    = "orchestrate-ha"
	haExecutions = "ha_executions"
	haLease      = 2 * time.Second
)

func TestMain(m *testing.M) {
	if os.Getenv(haHelperEnv) != "" {
		if err := haHelper(); err != nil {
			fmt.Fprintln(os.Stderr, "ha helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// haDAGs are the DAGs both scheduler processes run. Every task records each
// execution (owner, try, finished) in Firestore, so the test can count them.
func haDAGs(fs *firestore.Client, owner string) []*dag.DAG {
	record := func(hold time.Duration) dag.Operator {
		return dag.Func(func(ctx context.Context, tc *dag.TaskContext) error {
			doc := fs.Collection(haExecutions).NewDoc()
			if _, err := doc.Create(ctx, map[string]any{
				"dag": tc.DAGID, "run": tc.RunID, "task": tc.TaskID, "try": tc.Try, "owner": owner, "finished": false,
			}); err != nil {
				return fmt.Errorf("record execution: %w", err)
			}
			select {
			case <-time.After(hold):
			case <-ctx.Done():
				return ctx.Err()
			}
			_, err := doc.Update(ctx, []firestore.Update{{Path: "finished", Value: true}})
			return err
		})
	}
	work, err := dag.New(dag.DAG{ID: "ha_work", Schedule: "@hourly", Catchup: dag.Catchup{Mode: dag.CatchupLatest}, MaxActiveRuns: 4},
		&dag.Task{ID: "extract", Operator: record(100 * time.Millisecond)},
		&dag.Task{ID: "left", Operator: record(150 * time.Millisecond), Upstream: []string{"extract"}},
		&dag.Task{ID: "right", Operator: record(150 * time.Millisecond), Upstream: []string{"extract"}},
		&dag.Task{ID: "join", Operator: record(50 * time.Millisecond), Upstream: []string{"left", "right"}})
	if err != nil {
		panic(err)
	}
	victim, err := dag.New(dag.DAG{ID: "ha_victim"}, &dag.Task{ID: "slow", Operator: record(4 * time.Second)})
	if err != nil {
		panic(err)
	}
	return []*dag.DAG{work, victim}
}

func haHelper() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	owner := os.Getenv(haOwnerEnv)
	fs, err := gcp.NewFirestore(ctx, config.Platform{Project: haProject, Emulators: config.Emulators{Firestore: os.Getenv(config.EnvFirestoreEmu)}})
	if err != nil {
		return err
	}
	defer fs.Close()
	store := firestorestore.New(fs, firestorestore.Options{})
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("owner", owner)
	s, err := New(store, haDAGs(fs, owner), Options{Owner: owner, Workers: 2, Lease: haLease, PollInterval: 200 * time.Millisecond, Logger: log})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

type haProc struct {
	owner string
	cmd   *exec.Cmd
	// exited is closed when the process has exited; err is its Wait error.
	exited chan struct{}
	err    error
}

func startHAScheduler(t *testing.T, emulator, owner string) *haProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), haHelperEnv+"=1", haOwnerEnv+"="+owner, config.EnvFirestoreEmu+"="+emulator)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &haProc{owner: owner, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	return p
}

type execution struct {
	DAG      string `firestore:"dag"`
	Run      string `firestore:"run"`
	Task     string `firestore:"task"`
	Try      int    `firestore:"try"`
	Owner    string `firestore:"owner"`
	Finished bool   `firestore:"finished"`
}

func executions(t *testing.T, fs *firestore.Client, dagID string) []execution {
	t.Helper()
	docs, err := fs.Collection(haExecutions).Where("dag", "==", dagID).Documents(t.Context()).GetAll()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]execution, len(docs))
	for i, d := range docs {
		if err := d.DataTo(&out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTwoSchedulersShareWorkAndTakeOverAKilledOne(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two scheduler processes; run without -short")
	}
	// A dead client's transaction locks are released after 3 s, not the
	// emulator's default 270 s, so a SIGKILL mid-commit does not stall the test.
	emu, err := firestoreemu.Start(t.Context(), firestoreemu.Options{TransactionIdle: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	fs, err := gcp.NewFirestore(t.Context(), config.Platform{Project: haProject, Emulators: config.Emulators{Firestore: emu.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.Close() })
	store := firestorestore.New(fs, firestorestore.Options{})
	dags := haDAGs(fs, "test")
	work, victim := dags[0], dags[1]

	now := time.Now()
	from := now.Truncate(time.Hour).Add(-24 * time.Hour)
	bf, err := NewBackfill(t.Context(), store, work, BackfillRequest{From: from, To: from.Add(11 * time.Hour), MaxActiveRuns: 4}, now)
	if err != nil {
		t.Fatal(err)
	}
	procs := map[string]*haProc{}
	for _, owner := range []string{"sched-a", "sched-b"} {
		procs[owner] = startHAScheduler(t, emu.Addr(), owner)
	}

	// 1. Both schedulers work through a 12-run backfill; every task runs once.
	waitFor(t, "the backfill to finish", 90*time.Second, func() bool {
		b, err := store.Backfill(t.Context(), bf.ID)
		return err == nil && b.State == state.BackfillDone
	})
	runs, err := store.Runs(t.Context(), state.RunFilter{BackfillID: bf.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 12 {
		t.Fatalf("%d runs, want 12", len(runs))
	}
	inBackfill := map[string]bool{}
	for _, r := range runs {
		inBackfill[r.RunID] = true
	}
	perTask := map[string]int{}
	byOwner := map[string]int{}
	for _, e := range executions(t, fs, work.ID) {
		if !inBackfill[e.Run] {
			continue // the schedule's own latest run
		}
		perTask[e.Run+"/"+e.Task]++
		byOwner[e.Owner]++
		if !e.Finished {
			t.Errorf("execution %+v never finished", e)
		}
	}
	for _, r := range runs {
		if r.State != state.RunSuccess {
			t.Errorf("run %s: %s", r.RunID, r.State)
		}
		for _, task := range work.Tasks() {
			if n := perTask[r.RunID+"/"+task.ID]; n != 1 {
				t.Errorf("task %s of run %s executed %d times, want exactly once", task.ID, r.RunID, n)
			}
		}
	}
	if byOwner["sched-a"] == 0 || byOwner["sched-b"] == 0 {
		t.Errorf("work was not shared: executions by owner %v", byOwner)
	}

	// 2. Kill the scheduler running a task; the other takes it over once the
	// lease expires, and the run completes with no zombie left.
	run, err := Trigger(t.Context(), store, victim, time.Time{}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var first execution
	waitFor(t, "the victim task to start", 30*time.Second, func() bool {
		ex := executions(t, fs, victim.ID)
		if len(ex) > 0 {
			first = ex[0]
		}
		return len(ex) > 0
	})
	killed := procs[first.Owner]
	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-killed.exited
	killedAt := time.Now()
	waitFor(t, "the victim run to finish after the takeover", 30*time.Second, func() bool {
		r, err := store.Run(t.Context(), victim.ID, run.RunID)
		return err == nil && r.State.Finished()
	})
	if took := time.Since(killedAt); took < haLease {
		t.Errorf("task finished %s after the kill, before the %s lease could expire", took, haLease)
	}
	tis, err := store.Tasks(t.Context(), victim.ID, run.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if len(tis) != 1 || tis[0].State != state.TaskSuccess || tis[0].Try != 2 || tis[0].Owner == first.Owner {
		t.Fatalf("victim task %+v, want success on try 2 by the surviving scheduler", tis)
	}
	ex := executions(t, fs, victim.ID)
	if len(ex) != 2 {
		t.Fatalf("victim executions %+v, want the killed try 1 and the finished try 2", ex)
	}
	for _, e := range ex {
		switch e.Try {
		case 1:
			if e.Owner != first.Owner || e.Finished {
				t.Errorf("try 1 %+v: want the killed owner, unfinished", e)
			}
		case 2:
			if e.Owner == first.Owner || !e.Finished {
				t.Errorf("try 2 %+v: want the survivor, finished", e)
			}
		default:
			t.Errorf("unexpected execution %+v", e)
		}
	}
	for owner, p := range procs {
		if p == killed {
			continue
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.exited:
			if p.err != nil {
				t.Errorf("scheduler %s exited with %v after SIGTERM", owner, p.err)
			}
		case <-time.After(40 * time.Second):
			t.Errorf("scheduler %s did not stop after SIGTERM", owner)
		}
	}
}
