package firestoreemu_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	vkit "cloud.google.com/go/firestore/apiv1"
	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/labplatform/platform/testenv/firestoreemu"
)

// Tests of lock ownership across concurrent RPCs. They order the RPCs with
// the test-only hooks in export_test.go (wait until the server has queued a
// request), never with sleeps.

// rawClientFor is the official low-level (apiv1) client for the emulator at
// addr, for RPC sequences the high-level client cannot express.
func rawClientFor(t *testing.T, addr string) *vkit.Client {
	t.Helper()
	gc, err := vkit.NewClient(context.Background(),
		option.WithEndpoint(addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gc.Close() })
	return gc
}

// rawTxn drives one read-write transaction through the low-level client.
type rawTxn struct {
	gc *vkit.Client
	db string
	id []byte
}

func beginRaw(ctx context.Context, t *testing.T, gc *vkit.Client, db string) *rawTxn {
	t.Helper()
	res := must(gc.BeginTransaction(ctx, &pb.BeginTransactionRequest{Database: db}))(t)
	return &rawTxn{gc: gc, db: db, id: res.GetTransaction()}
}

// get reads doc (a path under the database's documents) in the transaction.
func (r *rawTxn) get(ctx context.Context, doc string) error {
	st, err := r.gc.BatchGetDocuments(ctx, &pb.BatchGetDocumentsRequest{
		Database:            r.db,
		Documents:           []string{r.db + "/documents/" + doc},
		ConsistencySelector: &pb.BatchGetDocumentsRequest_Transaction{Transaction: r.id},
	})
	if err != nil {
		return err
	}
	_, err = st.Recv()
	return err
}

func (r *rawTxn) commitSet(ctx context.Context, doc string, n int64) error {
	_, err := r.gc.Commit(ctx, &pb.CommitRequest{Database: r.db, Transaction: r.id, Writes: []*pb.Write{{
		Operation: &pb.Write_Update{Update: &pb.Document{Name: r.db + "/documents/" + doc, Fields: map[string]*pb.Value{"n": intVal(n)}}},
	}}})
	return err
}

func (r *rawTxn) rollback(ctx context.Context) error {
	return r.gc.Rollback(ctx, &pb.RollbackRequest{Database: r.db, Transaction: r.id})
}

// goErr runs f in a goroutine and returns a channel with its result.
func goErr(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// A query in a read-write transaction must hold a lock on every document it
// returns: when the first result it locked stops matching while it waited,
// the document that replaces it must be locked too, or a concurrent
// read-modify-write of that document is lost.
func TestQueryInTransactionLocksEveryResult(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, c := startPrivate(t, firestoreemu.Options{})
	jobs := c.Collection("jobs")
	seed(t, c, "jobs", map[string]map[string]any{
		"D": {"status": "queued", "n": 1, "c": 0},
		"E": {"status": "queued", "n": 2, "c": 0},
	})
	next := jobs.Where("status", "==", "queued").OrderBy("n", firestore.Asc).Limit(1)

	// T1 claims the first queued job (D) and holds it until released.
	t1Holds, t1Release := make(chan struct{}), make(chan struct{})
	var t1Once sync.Once
	t1 := goErr(func() error {
		return c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			snaps, err := tx.Documents(next).GetAll()
			if err != nil {
				return err
			}
			t1Once.Do(func() { close(t1Holds); <-t1Release })
			return tx.Update(snaps[0].Ref, []firestore.Update{{Path: "status", Value: "done"}})
		})
	})
	<-t1Holds

	// T2 runs the same query, waits for D, and then sees E instead.
	t2Got, t2Release := make(chan string, 1), make(chan struct{})
	var t2Once sync.Once
	t2 := goErr(func() error {
		return c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			snaps, err := tx.Documents(next).GetAll()
			if err != nil {
				return err
			}
			if len(snaps) != 1 {
				return fmt.Errorf("query returned %d documents, want 1", len(snaps))
			}
			t2Once.Do(func() { t2Got <- snaps[0].Ref.ID; <-t2Release })
			return tx.Update(snaps[0].Ref, []firestore.Update{{Path: "c", Value: snaps[0].Data()["c"].(int64) + 1}})
		})
	})
	if err := srv.AwaitLockWaiters(ctx, jobs.Doc("D").Path, 1); err != nil {
		t.Fatalf("T2 never queued for D: %v", err)
	}
	close(t1Release)
	if err := <-t1; err != nil {
		t.Fatalf("T1: %v", err)
	}
	if id := <-t2Got; id != "E" {
		close(t2Release)
		t.Fatalf("T2's query returned %s, want E", id)
	}

	// T3 increments E.c while T2 holds its query result; it must wait for
	// T2 (E is locked), not slip in between T2's read and T2's commit.
	t3 := goErr(func() error {
		return c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			snap, err := tx.Get(jobs.Doc("E"))
			if err != nil {
				return err
			}
			return tx.Update(snap.Ref, []firestore.Update{{Path: "c", Value: snap.Data()["c"].(int64) + 1}})
		})
	})
	t3Queued := goErr(func() error { return srv.AwaitLockWaiters(ctx, jobs.Doc("E").Path, 1) })
	var t3Err error
	t3Done := false
	select {
	case t3Err = <-t3: // only without a lock on E
		t3Done = true
	case err := <-t3Queued:
		if err != nil {
			t.Fatalf("waiting for T3 to queue: %v", err)
		}
	}
	close(t2Release)
	if err := <-t2; err != nil {
		t.Fatalf("T2: %v", err)
	}
	if !t3Done {
		t3Err = <-t3
	}
	if t3Err != nil {
		t.Fatalf("T3: %v", t3Err)
	}
	if got := must(jobs.Doc("E").Get(ctx))(t).Data()["c"]; got != int64(2) {
		t.Fatalf("E.c = %v after two committed increments, want 2 (lost update)", got)
	}
}

// Rolling back a transaction while one of its reads waits for a lock fails
// that read and never hands the lock to the finished transaction.
func TestRollbackWhileReadWaitsReleasesEverything(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, c := startPrivate(t, firestoreemu.Options{})
	gc := rawClientFor(t, srv.Addr())
	db := "projects/" + projectFor(t) + "/databases/(default)"
	x := c.Doc("c/x")
	must(x.Set(ctx, map[string]any{"n": 1}))(t)

	holder := beginRaw(ctx, t, gc, db)
	if err := holder.get(ctx, "c/x"); err != nil {
		t.Fatal(err)
	}
	waiter := beginRaw(ctx, t, gc, db)
	read := goErr(func() error { return waiter.get(ctx, "c/x") })
	if err := srv.AwaitLockWaiters(ctx, x.Path, 1); err != nil {
		t.Fatalf("read never queued: %v", err)
	}
	if err := waiter.rollback(ctx); err != nil {
		t.Fatalf("Rollback of the waiting transaction: %v", err)
	}
	wantCode(t, <-read, codes.InvalidArgument)
	if err := holder.rollback(ctx); err != nil {
		t.Fatalf("Rollback of the holder: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := x.Set(wctx, map[string]any{"n": 2}); err != nil {
		t.Fatalf("plain write after both transactions ended: %v (lock leaked)", err)
	}
}

// Two RPCs of one transaction in flight at once: its Commit must not queue
// behind its own read for the same document.
func TestConcurrentRPCsOfOneTransaction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, c := startPrivate(t, firestoreemu.Options{})
	gc := rawClientFor(t, srv.Addr())
	db := "projects/" + projectFor(t) + "/databases/(default)"
	x := c.Doc("c/x")
	must(x.Set(ctx, map[string]any{"n": 1}))(t)

	holder := beginRaw(ctx, t, gc, db)
	if err := holder.get(ctx, "c/x"); err != nil {
		t.Fatal(err)
	}
	tx := beginRaw(ctx, t, gc, db)
	read := goErr(func() error { return tx.get(ctx, "c/x") })
	if err := srv.AwaitLockWaiters(ctx, x.Path, 1); err != nil {
		t.Fatalf("read never queued: %v", err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	commit := goErr(func() error { return tx.commitSet(cctx, "c/x", 3) })
	if err := srv.AwaitTransactionRPCs(ctx, tx.id, 2); err != nil {
		t.Fatalf("commit never arrived: %v", err)
	}
	if err := holder.rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-commit; err != nil {
		t.Fatalf("commit of the transaction whose read was granted: %v", err)
	}
	if n := must(x.Get(ctx))(t).Data()["n"]; n != int64(3) {
		t.Fatalf("n = %v, want 3", n)
	}
}

// Reading other documents while iterating a query's stream works in a
// read-write transaction, even when the query's responses exceed what the
// transport buffers before the client reads them.
func TestReadsWhileIteratingQueryInTransaction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newClient(t)
	big := strings.Repeat("x", 900_000)
	const docs = 24 // about 21 MB of responses, beyond gRPC's largest flow-control window
	err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		for i := range docs {
			if err := tx.Set(c.Doc(fmt.Sprintf("big/%02d", i)), map[string]any{"s": big, "i": i}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	must(c.Doc("side/x").Set(ctx, map[string]any{"n": 1}))(t)
	seen := 0
	err = c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		seen = 0
		it := tx.Documents(c.Collection("big"))
		defer it.Stop()
		for {
			_, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return nil
			}
			if err != nil {
				return err
			}
			seen++
			if _, err := tx.Get(c.Doc("side/x")); err != nil {
				return fmt.Errorf("read while iterating: %w", err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != docs {
		t.Fatalf("iterated %d documents, want %d", seen, docs)
	}
}
