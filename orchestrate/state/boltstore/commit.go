package boltstore

import (
	"context"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Group commit. Every write goes through one committer goroutine, which
// takes the writes waiting when it becomes free and commits them in one
// transaction: one fsync pair for the group instead of one per write. It
// never waits for more writes to arrive (bbolt's DB.Batch waits up to
// MaxBatchDelay, 10 ms by default), so a lone writer pays only a channel
// round trip; concurrent writers share the commit.
//
// A write is a function of the transaction. It must be deterministic (same
// state, same effect and result) and must assign its outputs on every call:
// when one function of a group fails, the transaction is rolled back and the
// others run again without it. Its error stands, because it saw the effects
// of the functions before it, as it would have in a serial order.

// maxGroup bounds the writes committed together.
const maxGroup = 128

// call is one write waiting for the committer.
type call struct {
	fn  func(*bolt.Tx) error
	err chan error
}

// update runs fn in a read-write transaction, possibly shared with other
// writes, and returns its error or the commit's. ctx can only cancel the
// wait for the committer: once handed over, the write runs to its end.
func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	c := &call{fn: fn, err: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return berrors.ErrDatabaseNotOpen
	}
	select {
	case s.calls <- c:
	case <-ctx.Done():
		s.mu.RUnlock()
		return context.Cause(ctx)
	}
	s.mu.RUnlock()
	return <-c.err
}

// commit is the committer goroutine; it returns when calls is closed.
func (s *Store) commit() {
	defer close(s.committed)
	for c := range s.calls {
		group := []*call{c}
	more:
		for len(group) < maxGroup {
			select {
			case c, ok := <-s.calls:
				if !ok {
					break more
				}
				group = append(group, c)
			default:
				break more
			}
		}
		s.commitGroup(group)
	}
}

// commitGroup commits the group's writes in one transaction, leaving out
// the ones that fail.
func (s *Store) commitGroup(group []*call) {
	var failed []*call
	var failures []error
	for len(group) > 0 {
		bad := -1
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, c := range group {
				if err := c.fn(tx); err != nil {
					bad = i
					return err
				}
			}
			return nil
		})
		if bad >= 0 {
			failed = append(failed, group[bad])
			failures = append(failures, err)
			group = append(group[:bad:bad], group[bad+1:]...)
			continue
		}
		for _, c := range group {
			c.err <- err
		}
		if err != nil && len(failed) > 0 {
			// The commit failed, so the failures' view of the group's
			// effects is void: run each alone for its own answer.
			for _, c := range failed {
				c.err <- s.db.Update(c.fn)
			}
			return
		}
		break
	}
	for i, c := range failed {
		c.err <- failures[i]
	}
}
