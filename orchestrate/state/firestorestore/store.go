// Package firestorestore owns the orchestrator's state on Cloud Firestore:
// a state.Store that several scheduler processes share. Every
// check-and-write runs in one Firestore transaction, so the invariants of
// package state (one run per data interval, the active-run cap, fenced
// attempts, leases and pool slots) hold across processes.
//
// Documents live in the collections named by contracts/names
// (orchestrate_dags, orchestrate_runs, orchestrate_tasks,
// orchestrate_backfills, orchestrate_pools). A run's document ID derives from
// its DAG and state.RunID, so a second run for the same data interval fails
// at commit. Times are stored as Firestore timestamps, truncated to
// microseconds and returned in UTC.
//
// Errors wrap the state errors (errors.Is works): a missing document is
// state.ErrNotFound, an existing run state.ErrRunExists, an existing
// backfill state.ErrExists, and a transaction Firestore still aborts after
// the client's retries state.ErrConflict. The gRPC status stays in the chain
// (status.Code works too).
package firestorestore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/orchestrate/state"
)

// Options are the optional settings of a Store.
type Options struct {
	// MaxAttempts bounds how many times one transaction is tried when
	// Firestore aborts it for contention; default
	// firestore.DefaultTransactionMaxAttempts.
	MaxAttempts int
}

// Store is a state.Store on Cloud Firestore.
type Store struct {
	client      *firestore.Client
	maxAttempts int
	dags        *firestore.CollectionRef
	runs        *firestore.CollectionRef
	tasks       *firestore.CollectionRef
	backfills   *firestore.CollectionRef
	pools       *firestore.CollectionRef
}

var _ state.Store = (*Store)(nil)

// New returns a Store on client's database. The caller keeps ownership of
// client: Close does not close it.
func New(client *firestore.Client, opts Options) *Store {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = firestore.DefaultTransactionMaxAttempts
	}
	return &Store{
		client:      client,
		maxAttempts: opts.MaxAttempts,
		dags:        client.Collection(names.CollectionOrchestrateDAGs),
		runs:        client.Collection(names.CollectionOrchestrateRuns),
		tasks:       client.Collection(names.CollectionOrchestrateTasks),
		backfills:   client.Collection(names.CollectionOrchestrateBackfills),
		pools:       client.Collection(names.CollectionOrchestratePools),
	}
}

// Close releases nothing: the Firestore client belongs to the caller.
func (s *Store) Close() error { return nil }

// txn runs f in a read-write transaction.
func (s *Store) txn(ctx context.Context, f func(context.Context, *firestore.Transaction) error) error {
	return s.client.RunTransaction(ctx, f, firestore.MaxAttempts(s.maxAttempts))
}

// grpcError keeps a gRPC error and the state error it stands for in one
// chain, without repeating the sentinel's text.
type grpcError struct {
	sentinel error
	err      error
}

func (e *grpcError) Error() string   { return e.err.Error() }
func (e *grpcError) Unwrap() []error { return []error{e.sentinel, e.err} }

// mapCode makes a Firestore error match the state error of its gRPC code:
// NotFound is state.ErrNotFound, AlreadyExists is exists, Aborted (what
// remains after the client's retries) is state.ErrConflict. Other errors,
// and errors already carrying a state error, are returned as they are.
func mapCode(err error, exists error) error {
	if err == nil {
		return nil
	}
	var ge *grpcError
	if errors.As(err, &ge) {
		return err
	}
	var sentinel error
	switch status.Code(err) {
	case codes.NotFound:
		sentinel = state.ErrNotFound
	case codes.AlreadyExists:
		sentinel = exists
	case codes.Aborted:
		sentinel = state.ErrConflict
	default:
		return err
	}
	if sentinel == nil || errors.Is(err, sentinel) {
		return err
	}
	return &grpcError{sentinel: sentinel, err: err}
}

// Document IDs. Each part is escaped so that any string is a valid,
// distinct ID: bytes outside [A-Za-z0-9_.-] become %XX, and so do a leading
// '_' or '.' (Firestore reserves "__x__", "." and ".."); an empty part is
// "%". Parts are joined with '~', which escaping never produces.

func escapeID(s string) string {
	if s == "" {
		return "%"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		case (c == '_' || c == '.') && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func joinID(parts ...string) string {
	for i, p := range parts {
		parts[i] = escapeID(p)
	}
	return strings.Join(parts, "~")
}

func (s *Store) dagRef(dagID string) *firestore.DocumentRef { return s.dags.Doc(joinID(dagID)) }

func (s *Store) runRef(dagID, runID string) *firestore.DocumentRef {
	return s.runs.Doc(joinID(dagID, runID))
}

func (s *Store) taskRef(k state.TaskKey) *firestore.DocumentRef {
	return s.tasks.Doc(taskID(k))
}

func taskID(k state.TaskKey) string { return joinID(k.DAGID, k.RunID, k.TaskID) }

func (s *Store) poolRef(pool string) *firestore.DocumentRef { return s.pools.Doc(joinID(pool)) }

func (s *Store) backfillRef(id string) *firestore.DocumentRef { return s.backfills.Doc(joinID(id)) }

// ts is how a time is stored: UTC, truncated to Firestore's microseconds.
func ts(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// utc is how a stored time is returned.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func keyString(k state.TaskKey) string { return k.DAGID + "/" + k.RunID + "/" + k.TaskID }
