package firestoreemu

import (
	"context"
	"time"
)

// This file is compiled only into the package's tests. It lets the
// conformance tests (package firestoreemu_test) order concurrent RPCs
// deterministically: they wait until the server has observably queued a
// request instead of sleeping. Nothing here changes the emulator's state.

// AwaitLockWaiters blocks until at least n requests wait for the lock on the
// document with full resource name name, or ctx ends.
func (s *Server) AwaitLockWaiters(ctx context.Context, name string, n int) error {
	return awaitCond(ctx, func() bool {
		s.txns.mu.Lock()
		defer s.txns.mu.Unlock()
		l := s.txns.locks[name]
		return l != nil && len(l.waiters) >= n
	})
}

// AwaitTransactionRPCs blocks until at least n RPCs of the open transaction
// id are in progress on the server, or ctx ends.
func (s *Server) AwaitTransactionRPCs(ctx context.Context, id []byte, n int) error {
	return awaitCond(ctx, func() bool {
		s.txns.mu.Lock()
		defer s.txns.mu.Unlock()
		t := s.txns.txns[string(id)]
		return t != nil && t.busy >= n
	})
}

func awaitCond(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
