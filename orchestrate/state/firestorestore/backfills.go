package firestorestore

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/labplatform/platform/orchestrate/state"
)

// getBackfill reads a backfill's document in tx (NotFound when missing).
func getBackfill(tx *firestore.Transaction, ref *firestore.DocumentRef) (backfillDoc, error) {
	snap, err := tx.Get(ref)
	if err != nil {
		return backfillDoc{}, err
	}
	var d backfillDoc
	if err := snap.DataTo(&d); err != nil {
		return backfillDoc{}, fmt.Errorf("decode backfill: %w", err)
	}
	return d, nil
}

// CreateBackfill stores a new backfill; state.ErrExists if its ID is taken.
func (s *Store) CreateBackfill(ctx context.Context, b state.Backfill) error {
	ref := s.backfillRef(b.ID)
	doc := toBackfillDoc(b)
	err := s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		return tx.Create(ref, doc)
	})
	if err != nil {
		return fmt.Errorf("create backfill %s: %w", b.ID, mapCode(err, state.ErrExists))
	}
	return nil
}

// Backfill returns one backfill.
func (s *Store) Backfill(ctx context.Context, id string) (state.Backfill, error) {
	snap, err := s.backfillRef(id).Get(ctx)
	if err != nil {
		return state.Backfill{}, fmt.Errorf("get backfill %s: %w", id, mapCode(err, nil))
	}
	var d backfillDoc
	if err := snap.DataTo(&d); err != nil {
		return state.Backfill{}, fmt.Errorf("decode backfill %s: %w", id, err)
	}
	return d.backfill(), nil
}

// Backfills lists backfills, newest creation first.
func (s *Store) Backfills(ctx context.Context) ([]state.Backfill, error) {
	snaps, err := s.backfills.OrderBy("created_at", firestore.Desc).OrderBy(firestore.DocumentID, firestore.Desc).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("list backfills: %w", mapCode(err, nil))
	}
	out := make([]state.Backfill, len(snaps))
	for i, snap := range snaps {
		var d backfillDoc
		if err := snap.DataTo(&d); err != nil {
			return nil, fmt.Errorf("decode backfill %s: %w", snap.Ref.ID, err)
		}
		out[i] = d.backfill()
	}
	return out, nil
}

// UpdateBackfill replaces a backfill that still has prevUpdatedAt (compared
// at Firestore's microsecond precision) and is not cancelled; ErrConflict
// otherwise.
func (s *Store) UpdateBackfill(ctx context.Context, b state.Backfill, prevUpdatedAt time.Time) error {
	ref := s.backfillRef(b.ID)
	doc := toBackfillDoc(b)
	prev := ts(prevUpdatedAt)
	err := s.txn(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		cur, err := getBackfill(tx, ref)
		if err != nil {
			return err
		}
		if !cur.UpdatedAt.Equal(prev) {
			return fmt.Errorf("updated at %s, not %s: %w", cur.UpdatedAt.Format(time.RFC3339Nano), prev.Format(time.RFC3339Nano), state.ErrConflict)
		}
		if state.BackfillState(cur.State) == state.BackfillCancelled {
			return fmt.Errorf("backfill is cancelled: %w", state.ErrConflict)
		}
		return tx.Set(ref, doc)
	})
	if err != nil {
		return fmt.Errorf("update backfill %s: %w", b.ID, mapCode(err, nil))
	}
	return nil
}
