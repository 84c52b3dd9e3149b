package firestoreemu_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/testenv/firestoreemu"
)

// TestSuspendResumeKeepsDocuments: while suspended the port refuses
// connections and a client that was connected gets UNAVAILABLE; after Resume
// the same client reads what was written before, on the same address.
func TestSuspendResumeKeepsDocuments(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	srv, c := startPrivate(t, firestoreemu.Options{})
	addr := srv.Addr()
	must(c.Doc("c/kept").Set(ctx, map[string]any{"v": 1}))(t)
	// A raw stub on its own connection, which is open when the outage
	// starts: the official client retries UNAVAILABLE, this one shows it.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw := pb.NewFirestoreClient(conn)
	docName := "projects/" + projectFor(t) + "/databases/(default)/documents/c/kept"
	if _, err := raw.GetDocument(ctx, &pb.GetDocumentRequest{Name: docName}); err != nil {
		t.Fatalf("raw get before the outage: %v", err)
	}

	if err := srv.Suspend(); err != nil {
		t.Fatal(err)
	}
	if conn, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		if conn != nil {
			conn.Close()
		}
		t.Fatalf("dial %s while suspended: %v, want connection refused", addr, err)
	}
	if _, err := raw.GetDocument(ctx, &pb.GetDocumentRequest{Name: docName}); status.Code(err) != codes.Unavailable {
		t.Fatalf("raw get while suspended: %v, want UNAVAILABLE", err)
	}
	down, cancelDown := context.WithTimeout(ctx, time.Second)
	_, err = c.Doc("c/kept").Get(down)
	cancelDown()
	if !errors.Is(err, context.DeadlineExceeded) && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("client get while suspended: %v, want the deadline (the client retries UNAVAILABLE)", err)
	}

	if err := srv.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != addr {
		t.Fatalf("address after resume = %s, want %s", srv.Addr(), addr)
	}
	snap := must(c.Doc("c/kept").Get(ctx))(t)
	if snap.Data()["v"] != int64(1) {
		t.Fatalf("after resume: %v, want v=1", snap.Data())
	}
	// Suspend and Resume are idempotent.
	if err := srv.Resume(ctx); err != nil {
		t.Fatalf("second resume: %v", err)
	}
}

// TestSuspendAbortsOpenTransactions: a transaction open across an outage is
// aborted, so its locks do not outlive the outage and the client's
// RunTransaction retries it; the retry commits.
func TestSuspendAbortsOpenTransactions(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	srv, c := startPrivate(t, firestoreemu.Options{})
	doc := c.Doc("c/counter")
	must(doc.Set(ctx, map[string]any{"n": 1}))(t)

	attempts := 0
	err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		attempts++
		snap, err := tx.Get(doc) // takes the document's lock
		if err != nil {
			return err
		}
		if attempts == 1 {
			if err := srv.Suspend(); err != nil {
				return err
			}
			if err := srv.Resume(ctx); err != nil {
				return err
			}
		}
		return tx.Set(doc, map[string]any{"n": snap.Data()["n"].(int64) + 1})
	})
	if err != nil {
		t.Fatalf("transaction across an outage: %v", err)
	}
	if attempts != 2 {
		t.Errorf("transaction ran %d times, want 2 (aborted by the outage, then retried)", attempts)
	}
	if n := must(doc.Get(ctx))(t).Data()["n"]; n != int64(2) {
		t.Errorf("n = %v, want 2", n)
	}
}

func TestCloseWhileSuspended(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "firestore.pb")
	srv, c := startPrivate(t, firestoreemu.Options{DataFile: path, FlushInterval: -1})
	must(c.Doc("c/d").Set(ctx, map[string]any{"v": 1}))(t)
	if err := srv.Suspend(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("close while suspended: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("close while suspended did not save: %v", err)
	}
	if err := srv.Suspend(); err == nil {
		t.Error("Suspend after Close succeeded")
	}
	if err := srv.Resume(ctx); err == nil {
		t.Error("Resume after Close succeeded")
	}
}
