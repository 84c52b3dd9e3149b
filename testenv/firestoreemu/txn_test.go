package firestoreemu_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	vkit "cloud.google.com/go/firestore/apiv1"
	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/testenv/firestoreemu"
)

// runParallel runs workers goroutines each calling f iterations times and
// returns the first error.
func runParallel(workers, iterations int, f func(worker, i int) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range iterations {
				if err := f(w, i); err != nil {
					errs <- fmt.Errorf("worker %d iteration %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func increment(ctx context.Context, tx *firestore.Transaction, ref *firestore.DocumentRef) error {
	snap, err := tx.Get(ref)
	if err != nil && status.Code(err) != codes.NotFound {
		return err
	}
	var n int64
	if snap.Exists() {
		n = snap.Data()["n"].(int64)
	}
	return tx.Set(ref, map[string]any{"n": n + 1})
}

func TestConcurrentCounterTransactions(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	counter := c.Doc("counters/one")
	err := runParallel(50, 20, func(int, int) error {
		return c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			return increment(ctx, tx, counter)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := must(counter.Get(ctx))(t).Data()["n"]; n != int64(1000) {
		t.Fatalf("counter = %v, want 1000", n)
	}
}

func TestConcurrentMultiDocumentTransactions(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	var refs []*firestore.DocumentRef
	for i := range 10 {
		refs = append(refs, c.Doc(fmt.Sprintf("counters/c%d", i)))
	}
	err := runParallel(50, 20, func(w, i int) error {
		return c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			// Read in an order that differs per worker: lock order is the
			// server's business, not the caller's.
			order := make([]*firestore.DocumentRef, len(refs))
			for k := range refs {
				order[k] = refs[(k+w)%len(refs)]
			}
			snaps, err := tx.GetAll(order)
			if err != nil {
				return err
			}
			for _, s := range snaps {
				var n int64
				if s.Exists() {
					n = s.Data()["n"].(int64)
				}
				if err := tx.Set(s.Ref, map[string]any{"n": n + 1}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if n := must(r.Get(ctx))(t).Data()["n"]; n != int64(1000) {
			t.Fatalf("%s = %v, want 1000", r.ID, n)
		}
	}
}

func TestQueryInTransactionIsSerializable(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	seed(t, c, "q", map[string]map[string]any{"a": {"k": "x", "n": 0}, "b": {"k": "x", "n": 0}, "c": {"k": "y", "n": 0}})
	q := c.Collection("q").Where("k", "==", "x")
	err := runParallel(10, 10, func(int, int) error {
		return c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			snaps, err := tx.Documents(q).GetAll()
			if err != nil {
				return err
			}
			for _, s := range snaps {
				if err := tx.Update(s.Ref, []firestore.Update{{Path: "n", Value: s.Data()["n"].(int64) + 1}}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int64{"a": 100, "b": 100, "c": 0} {
		if n := must(c.Doc("q/" + id).Get(ctx))(t).Data()["n"]; n != want {
			t.Errorf("%s = %v, want %d", id, n, want)
		}
	}
}

// crossedTransactions runs two transactions that lock x and y in opposite
// orders, which deadlocks unless the server aborts one of them.
func crossedTransactions(t *testing.T, c *firestore.Client, opts ...firestore.TransactionOption) (errA, errB error) {
	ctx := context.Background()
	x, y := c.Doc("d/x"), c.Doc("d/y")
	var holding sync.WaitGroup
	holding.Add(2)
	var once [2]sync.Once
	run := func(idx int, first, second *firestore.DocumentRef) error {
		return c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			a, err := tx.Get(first)
			if err != nil && status.Code(err) != codes.NotFound {
				return err
			}
			once[idx].Do(holding.Done)
			holding.Wait() // both hold their first lock
			b, err := tx.Get(second)
			if err != nil && status.Code(err) != codes.NotFound {
				return err
			}
			for _, s := range []*firestore.DocumentSnapshot{a, b} {
				var n int64
				if s.Exists() {
					n = s.Data()["n"].(int64)
				}
				if err := tx.Set(s.Ref, map[string]any{"n": n + 1}); err != nil {
					return err
				}
			}
			return nil
		}, opts...)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); errA = run(0, x, y) }()
	go func() { defer wg.Done(); errB = run(1, y, x) }()
	wg.Wait()
	return errA, errB
}

func TestDeadlockAbortsExactlyOne(t *testing.T) {
	c := newClient(t)
	errA, errB := crossedTransactions(t, c, firestore.MaxAttempts(1))
	codeA, codeB := status.Code(errA), status.Code(errB)
	if !(codeA == codes.Aborted && errB == nil) && !(codeB == codes.Aborted && errA == nil) {
		t.Fatalf("want exactly one ABORTED: got %v / %v", errA, errB)
	}
}

func TestDeadlockLoserRetriesAndBothCommit(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	errA, errB := crossedTransactions(t, c)
	if errA != nil || errB != nil {
		t.Fatalf("transactions: %v / %v", errA, errB)
	}
	for _, id := range []string{"x", "y"} {
		if n := must(c.Doc("d/" + id).Get(ctx))(t).Data()["n"]; n != int64(2) {
			t.Errorf("%s = %v, want 2", id, n)
		}
	}
}

func TestWriterWaitsForTransactionLock(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	doc := c.Doc("c/locked")
	must(doc.Set(ctx, map[string]any{"n": 1}))(t)
	var blockedErr error
	err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		if _, err := tx.Get(doc); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, blockedErr = doc.Set(wctx, map[string]any{"n": 100})
		return tx.Set(doc, map[string]any{"n": 2})
	}, firestore.MaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, blockedErr, codes.DeadlineExceeded)
	must(doc.Set(ctx, map[string]any{"n": 3}))(t)
	if n := must(doc.Get(ctx))(t).Data()["n"]; n != int64(3) {
		t.Fatalf("n = %v, want 3", n)
	}
}

func TestRollbackReleasesLocks(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	doc := c.Doc("c/d")
	stop := errors.New("stop")
	err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		if _, err := tx.Get(doc); err != nil && status.Code(err) != codes.NotFound {
			return err
		}
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("RunTransaction = %v, want %v", err, stop)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	must(doc.Set(wctx, map[string]any{"n": 1}))(t)
}

func TestReadOnlyTransactions(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	doc := c.Doc("c/d")
	wr := must(doc.Set(ctx, map[string]any{"n": 1}))(t)
	must(doc.Set(ctx, map[string]any{"n": 2}))(t)
	t.Run("cannot write", func(t *testing.T) {
		err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			return tx.Set(doc, map[string]any{"n": 3})
		}, firestore.ReadOnly)
		if err == nil {
			t.Fatal("write in a read-only transaction succeeded")
		}
	})
	t.Run("reads at read time", func(t *testing.T) {
		var got any
		var qn int
		err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			snap, err := tx.Get(doc)
			if err != nil {
				return err
			}
			got = snap.Data()["n"]
			snaps, err := tx.Documents(c.Collection("c").Where("n", "==", 1)).GetAll()
			qn = len(snaps)
			return err
		}, firestore.ReadOnly, firestore.TransactionReadTime(wr.UpdateTime))
		if err != nil {
			t.Fatal(err)
		}
		if got != int64(1) || qn != 1 {
			t.Fatalf("read-only at first write: n = %v, query matched %d; want 1, 1", got, qn)
		}
	})
	t.Run("takes no locks", func(t *testing.T) {
		err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			if _, err := tx.Get(doc); err != nil {
				return err
			}
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := doc.Set(wctx, map[string]any{"n": 5})
			return err
		}, firestore.ReadOnly)
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("server rejects commit with writes", func(t *testing.T) {
		gc := rawClient(t)
		db := "projects/" + projectFor(t) + "/databases/(default)"
		bt := must(gc.BeginTransaction(ctx, &pb.BeginTransactionRequest{Database: db, Options: &pb.TransactionOptions{
			Mode: &pb.TransactionOptions_ReadOnly_{ReadOnly: &pb.TransactionOptions_ReadOnly{}},
		}}))(t)
		_, err := gc.Commit(ctx, &pb.CommitRequest{Database: db, Transaction: bt.GetTransaction(), Writes: []*pb.Write{{
			Operation: &pb.Write_Update{Update: &pb.Document{Name: db + "/documents/c/x"}},
		}}})
		wantCode(t, err, codes.InvalidArgument)
	})
}

func TestReadAfterWriteInTransactionRejected(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	doc := c.Doc("c/d")
	err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		if err := tx.Set(doc, map[string]any{"n": 1}); err != nil {
			return err
		}
		_, err := tx.Get(doc)
		return err
	})
	if err == nil {
		t.Fatal("read after write succeeded")
	}
	_, err = doc.Get(ctx)
	wantCode(t, err, codes.NotFound)
}

// rawClient is the official low-level (apiv1) client, for RPC options the
// high-level client does not expose.
func rawClient(t *testing.T) *vkit.Client {
	t.Helper()
	gc, err := vkit.NewClient(context.Background(),
		option.WithEndpoint(emulatorHost),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gc.Close() })
	return gc
}

func TestNewTransactionInBatchGetAndRunQuery(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	must(c.Doc("c/a").Set(ctx, map[string]any{"n": 1}))(t)
	gc := rawClient(t)
	db := "projects/" + projectFor(t) + "/databases/(default)"
	rw := &pb.TransactionOptions{Mode: &pb.TransactionOptions_ReadWrite_{ReadWrite: &pb.TransactionOptions_ReadWrite{}}}

	stream := must(gc.BatchGetDocuments(ctx, &pb.BatchGetDocumentsRequest{
		Database: db, Documents: []string{db + "/documents/c/a"},
		ConsistencySelector: &pb.BatchGetDocumentsRequest_NewTransaction{NewTransaction: rw},
	}))(t)
	first := must(stream.Recv())(t)
	if len(first.GetTransaction()) == 0 || first.GetFound() == nil {
		t.Fatalf("first BatchGet response = %v, want a transaction and the document", first)
	}
	tid := first.GetTransaction()
	write := &pb.Write{Operation: &pb.Write_Update{Update: &pb.Document{Name: db + "/documents/c/a", Fields: map[string]*pb.Value{"n": {ValueType: &pb.Value_IntegerValue{IntegerValue: 2}}}}}}
	must(gc.Commit(ctx, &pb.CommitRequest{Database: db, Transaction: tid, Writes: []*pb.Write{write}}))(t)
	_, err := gc.Commit(ctx, &pb.CommitRequest{Database: db, Transaction: tid})
	wantCode(t, err, codes.InvalidArgument) // a committed transaction is gone

	qs := must(gc.RunQuery(ctx, &pb.RunQueryRequest{
		Parent:              db + "/documents",
		QueryType:           &pb.RunQueryRequest_StructuredQuery{StructuredQuery: &pb.StructuredQuery{From: []*pb.StructuredQuery_CollectionSelector{{CollectionId: "c"}}}},
		ConsistencySelector: &pb.RunQueryRequest_NewTransaction{NewTransaction: rw},
	}))(t)
	res := must(qs.Recv())(t)
	if len(res.GetTransaction()) == 0 || res.GetDocument().GetFields()["n"].GetIntegerValue() != 2 {
		t.Fatalf("RunQuery with new_transaction = %v", res)
	}
	if err := gc.Rollback(ctx, &pb.RollbackRequest{Database: db, Transaction: res.GetTransaction()}); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
}

func TestTransactionExpires(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{}
	_, c := startPrivate(t, firestoreemu.Options{Now: clock.Now, TransactionIdle: 10 * time.Second})
	doc := c.Doc("c/d")
	must(doc.Set(ctx, map[string]any{"n": 1}))(t)
	err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		if _, err := tx.Get(doc); err != nil {
			return err
		}
		clock.Advance(11 * time.Second)
		// The idle transaction's lock is released by expiry, so a plain
		// writer waiting for it gets through.
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := doc.Set(wctx, map[string]any{"n": 50}); err != nil {
			return fmt.Errorf("writer blocked by an expired transaction: %w", err)
		}
		return tx.Set(doc, map[string]any{"n": 2})
	}, firestore.MaxAttempts(1))
	wantCode(t, err, codes.InvalidArgument)
	if n := must(doc.Get(ctx))(t).Data()["n"]; n != int64(50) {
		t.Fatalf("n = %v, want 50 (the expired transaction must not commit)", n)
	}
}

func TestListenAndWriteAreUnimplemented(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gc := rawClient(t)
	db := "projects/" + projectFor(t) + "/databases/(default)"
	listen := must(gc.Listen(ctx))(t)
	_ = listen.Send(&pb.ListenRequest{Database: db})
	_, err := listen.Recv()
	wantCode(t, err, codes.Unimplemented)
	write := must(gc.Write(ctx))(t)
	_ = write.Send(&pb.WriteRequest{Database: db})
	_, err = write.Recv()
	wantCode(t, err, codes.Unimplemented)
}

func TestQueryPhantomAbortsAndRetries(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	seed(t, c, "ph", map[string]map[string]any{"a": {"k": "x"}})
	q := c.Collection("ph").Where("k", "==", "x")
	attempts := 0
	err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		attempts++
		snaps, err := tx.Documents(q).GetAll()
		if err != nil {
			return err
		}
		if attempts == 1 {
			// A document enters the query's result after the transaction
			// read it: committing the count would not be serializable.
			if _, err := c.Doc("ph/b").Set(ctx, map[string]any{"k": "x"}); err != nil {
				return err
			}
		}
		return tx.Set(c.Doc("totals/ph"), map[string]any{"n": len(snaps)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 {
		t.Errorf("attempts = %d, want 2 (first aborted by the phantom)", attempts)
	}
	if n := must(c.Doc("totals/ph").Get(ctx))(t).Data()["n"]; n != int64(2) {
		t.Fatalf("total = %v, want 2", n)
	}
}

// frozenClock is a clock that only moves when the test advances it, so
// several events can fall into one microsecond.
type frozenClock struct{ ns atomic.Int64 }

func newFrozenClock(t time.Time) *frozenClock {
	c := &frozenClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *frozenClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *frozenClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// A commit made after a read-only transaction began is invisible to it, even
// when both happen in the same microsecond of the server clock.
func TestReadOnlySnapshotExcludesSameMicrosecondCommit(t *testing.T) {
	ctx := context.Background()
	clock := newFrozenClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	_, c := startPrivate(t, firestoreemu.Options{Now: clock.Now})
	doc := c.Doc("c/d")
	must(doc.Set(ctx, map[string]any{"n": 1}))(t)
	clock.Advance(time.Millisecond) // BeginTransaction and the write share a microsecond
	var got any
	err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		wr, err := doc.Set(ctx, map[string]any{"n": 2}) // after BeginTransaction
		if err != nil {
			return err
		}
		if !wr.UpdateTime.After(clock.Now()) {
			return fmt.Errorf("commit time %v is not after the snapshot's read time %v", wr.UpdateTime, clock.Now())
		}
		snap, err := tx.Get(doc)
		if err != nil {
			return err
		}
		got = snap.Data()["n"]
		return nil
	}, firestore.ReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	if got != int64(1) {
		t.Fatalf("read-only transaction begun before the write read n = %v, want 1", got)
	}
}
