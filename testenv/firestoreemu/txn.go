package firestoreemu

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"slices"
	"sync"
	"time"

	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// txn is one transaction. Read-write transactions hold exclusive document
// locks from their first read of a document until they commit, roll back,
// are aborted or expire. Read-only transactions hold no locks and read a
// snapshot at readTime.
//
// The RPCs of one read-write transaction run one at a time (sem), so a
// transaction waits for at most one lock: the wait-for graph stays a chain
// and a Commit never queues for a lock behind its own transaction's read.
type txn struct {
	id       string
	readOnly bool
	readTime time.Time     // read-only snapshot time
	internal bool          // a non-transactional commit's short-lived lock holder
	sem      chan struct{} // read-write only: held by the RPC using the transaction

	// Guarded by txnManager.mu.
	held     []string
	heldSet  map[string]struct{}
	waiting  *docLock    // the lock t waits for, or nil
	waiter   *lockWaiter // t's entry in waiting.waiters
	lastUsed time.Time
	busy     int  // RPCs in progress; a busy transaction does not expire
	aborted  bool // wounded: the next use fails with ABORTED
	done     bool // committed, rolled back or expired: never granted a lock again
	queries  []recordedQuery
}

// recordedQuery is a query a read-write transaction ran and the documents
// it returned with their update times. Locks cover the returned documents;
// Commit re-runs the query and aborts when the result changed: a phantom
// (a document that entered the result since) or a changed document.
type recordedQuery struct {
	p    *plannedQuery
	hits []queryHit
}

type queryHit struct {
	name              string
	updSecs, updNanos int64
}

func newRecordedQuery(p *plannedQuery, res queryResult) recordedQuery {
	hits := make([]queryHit, len(res.docs))
	for i, d := range res.docs {
		ut := d.GetUpdateTime()
		hits[i] = queryHit{name: d.GetName(), updSecs: ut.GetSeconds(), updNanos: int64(ut.GetNanos())}
	}
	return recordedQuery{p: p, hits: hits}
}

func (m *txnManager) recordQuery(t *txn, q recordedQuery) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t.queries = append(t.queries, q)
}

// notHeld returns the names of docs that t does not hold a lock on.
func (m *txnManager) notHeld(t *txn, docs []*pb.Document) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, d := range docs {
		if _, ok := t.heldSet[d.GetName()]; !ok {
			out = append(out, d.GetName())
		}
	}
	return out
}

func (m *txnManager) queriesOf(t *txn) []recordedQuery {
	m.mu.Lock()
	defer m.mu.Unlock()
	return t.queries
}

type docLock struct {
	holder  *txn
	waiters []*lockWaiter // FIFO
}

type lockWaiter struct {
	t     *txn
	ready chan error // receives nil when granted, an error when aborted
}

// txnManager owns transactions and the document lock table.
//
// Locks are exclusive and granted first come, first served. A request that
// would close a wait-for cycle is refused with ABORTED (the client's
// RunTransaction retries), except when the requester is a non-transactional
// commit, which instead aborts ("wounds") a transaction in the cycle.
type txnManager struct {
	now  func() time.Time
	idle time.Duration

	mu    sync.Mutex
	txns  map[string]*txn
	locks map[string]*docLock
	seq   uint64
	salt  [8]byte
}

func newTxnManager(now func() time.Time, idle time.Duration) *txnManager {
	m := &txnManager{now: now, idle: idle, txns: make(map[string]*txn), locks: make(map[string]*docLock)}
	_, _ = rand.Read(m.salt[:])
	return m
}

var (
	errTxnAborted = status.Error(codes.Aborted, "Transaction aborted: too much contention on these documents. Please try again.")
	errTxnInvalid = status.Error(codes.InvalidArgument, "The referenced transaction has expired or is no longer valid.")
)

// begin starts a transaction and returns it marked busy; call release.
func (m *txnManager) begin(readOnly bool, readTime time.Time) *txn {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	var id [16]byte
	copy(id[:8], m.salt[:])
	binary.BigEndian.PutUint64(id[8:], m.seq)
	t := &txn{id: string(id[:]), readOnly: readOnly, readTime: readTime, lastUsed: m.now(), busy: 1}
	if !readOnly {
		t.sem = make(chan struct{}, 1)
		t.sem <- struct{}{} // the beginning RPC holds it; call leave
	}
	m.txns[t.id] = t
	return t
}

// enter waits until no other RPC uses the read-write transaction t (the
// caller has it busy through use) and makes the caller its user; call leave.
func (m *txnManager) enter(ctx context.Context, t *txn) error {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var err error
	switch {
	case t.aborted:
		err = errTxnAborted
	case t.done:
		err = errTxnInvalid
	default:
		return nil
	}
	<-t.sem
	return err
}

// leave ends the caller's use of t begun by enter (or begin).
func (m *txnManager) leave(t *txn) { <-t.sem }

// seal marks the read-write transaction t committed just before its writes
// are installed (the caller holds the store lock): from then on a Rollback,
// expiry or wound cannot release its locks under the commit. The locks are
// released by end.
func (m *txnManager) seal(t *txn) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.aborted {
		return errTxnAborted
	}
	if t.done {
		return errTxnInvalid
	}
	t.done = true
	delete(m.txns, t.id)
	return nil
}

// use looks a transaction up for an RPC and marks it busy; call release.
func (m *txnManager) use(id []byte) (*txn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.txns[string(id)]
	if t == nil {
		return nil, errTxnInvalid
	}
	if t.aborted {
		m.endLocked(t)
		return nil, errTxnAborted
	}
	if t.busy == 0 && m.now().Sub(t.lastUsed) > m.idle {
		m.endLocked(t)
		return nil, errTxnInvalid
	}
	t.busy++
	return t, nil
}

// release ends an RPC's use of t.
func (m *txnManager) release(t *txn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t.busy--
	t.lastUsed = m.now()
}

// end finishes t (commit, rollback or failure): its locks are released.
func (m *txnManager) end(t *txn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.endLocked(t)
}

// endLocked finishes t: a lock request it has queued fails, its locks go to
// the next waiters, and it can take no lock any more.
func (m *txnManager) endLocked(t *txn) {
	t.done = true
	delete(m.txns, t.id)
	m.dropWaitLocked(t, errTxnInvalid)
	m.releaseLocksLocked(t)
}

// dropWaitLocked removes t's queued lock request, failing it with err.
func (m *txnManager) dropWaitLocked(t *txn, err error) {
	if w := t.waiter; w != nil {
		l := t.waiting
		if i := slices.Index(l.waiters, w); i >= 0 {
			l.waiters = slices.Delete(l.waiters, i, i+1)
			w.ready <- err
		}
	}
	t.waiting, t.waiter = nil, nil
}

// abortAll aborts every transaction (used by Reset).
func (m *txnManager) abortAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.txns {
		m.woundLocked(t)
	}
}

// woundLocked aborts t: its locks go to the next waiters and its next use
// fails with ABORTED.
func (m *txnManager) woundLocked(t *txn) {
	t.aborted = true
	m.dropWaitLocked(t, errTxnAborted)
	m.releaseLocksLocked(t)
}

func (m *txnManager) releaseLocksLocked(t *txn) {
	for _, name := range t.held {
		l := m.locks[name]
		if l == nil || l.holder != t {
			continue
		}
		l.holder = nil
		for len(l.waiters) > 0 && l.holder == nil {
			w := l.waiters[0]
			l.waiters = slices.Delete(l.waiters, 0, 1)
			if w.t.done || w.t.aborted {
				// Cannot happen (ending or wounding a transaction
				// dequeues it); never hand a lock to a finished one.
				w.t.waiting, w.t.waiter = nil, nil
				w.ready <- errTxnInvalid
				continue
			}
			m.grantLocked(l, name, w.t)
			w.ready <- nil
		}
		if l.holder == nil {
			delete(m.locks, name)
		}
	}
	t.held = nil
	t.heldSet = nil
}

func (m *txnManager) grantLocked(l *docLock, name string, t *txn) {
	l.holder = t
	t.waiting, t.waiter = nil, nil
	t.held = append(t.held, name)
	if t.heldSet == nil {
		t.heldSet = make(map[string]struct{})
	}
	t.heldSet[name] = struct{}{}
	t.lastUsed = m.now()
}

// lockAll locks names (which must be sorted) for t, waiting as needed.
func (m *txnManager) lockAll(ctx context.Context, t *txn, names []string) error {
	for _, n := range names {
		if err := m.lock(ctx, t, n); err != nil {
			return err
		}
	}
	return nil
}

// lock takes the exclusive lock on name for t.
func (m *txnManager) lock(ctx context.Context, t *txn, name string) error {
	m.mu.Lock()
	if t.aborted {
		m.mu.Unlock()
		return errTxnAborted
	}
	if t.done {
		m.mu.Unlock()
		return errTxnInvalid
	}
	if _, ok := t.heldSet[name]; ok {
		m.mu.Unlock()
		return nil
	}
	l := m.locks[name]
	if l == nil {
		l = &docLock{}
		m.locks[name] = l
	}
	if l.holder == nil && len(l.waiters) == 0 {
		m.grantLocked(l, name, t)
		m.mu.Unlock()
		return nil
	}
	if l.holder != nil {
		if cycle := m.cycleLocked(t, l); cycle != nil {
			if !t.internal {
				// Abort the requester now, so the others in the cycle
				// proceed even before its client rolls back.
				m.woundLocked(t)
				m.mu.Unlock()
				return errTxnAborted
			}
			for _, v := range cycle {
				if !v.internal {
					m.woundLocked(v)
					break
				}
			}
			if l.holder == nil && len(l.waiters) == 0 {
				m.grantLocked(l, name, t)
				m.mu.Unlock()
				return nil
			}
		}
	}
	w := &lockWaiter{t: t, ready: make(chan error, 1)}
	l.waiters = append(l.waiters, w)
	t.waiting, t.waiter = l, w
	m.mu.Unlock()

	select {
	case err := <-w.ready:
		return err
	case <-ctx.Done():
		m.mu.Lock()
		defer m.mu.Unlock()
		select {
		case err := <-w.ready:
			if err != nil {
				return err
			}
			return nil // granted just now; released with the transaction
		default:
		}
		if i := slices.Index(l.waiters, w); i >= 0 {
			l.waiters = slices.Delete(l.waiters, i, i+1)
		}
		t.waiting, t.waiter = nil, nil
		if l.holder == nil && len(l.waiters) == 0 {
			delete(m.locks, name)
		}
		return status.FromContextError(ctx.Err()).Err()
	}
}

// cycleLocked returns the transactions of the wait-for cycle that t would
// close by waiting for l, or nil.
func (m *txnManager) cycleLocked(t *txn, l *docLock) []*txn {
	var path []*txn
	// Every transaction waits for at most one lock, so the wait-for graph
	// is a chain; the bound only guards against a corrupted table.
	for h := l.holder; h != nil && len(path) < 1<<16; {
		if h == t {
			return path
		}
		path = append(path, h)
		if h.waiting == nil {
			return nil
		}
		h = h.waiting.holder
	}
	return nil
}

// expireIdle ends transactions idle for longer than the idle limit.
func (m *txnManager) expireIdle() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for _, t := range m.txns {
		if t.busy == 0 && t.waiting == nil && now.Sub(t.lastUsed) > m.idle {
			m.endLocked(t)
		}
	}
}
