package summary

import (
	"context"
	"crypto/sha256"
	"fmt"

	"cloud.google.com/go/firestore"

	"github.com/labplatform/platform/contracts/names"
)

// CollectionLedger is the subcollection of a patient document that holds
// its ledger: patients/<patient id>/ledger/<LedgerDocID(prefix)>.
const CollectionLedger = "ledger"

// FieldLegacyCounted is the field of a patient document written before the
// ledger moved out of it: the whole ledger, test code -> sample id ->
// Counted. The writer moves it into CollectionLedger and deletes it the next
// time it updates the patient; until then ReadLedger reads it.
const FieldLegacyCounted = "counted"

// Ledger is a patient's ledger, or part of it: test code -> sample id ->
// the result counted in the test's summary.
type Ledger map[string]map[string]Counted

// Len is the number of entries.
func (l Ledger) Len() int {
	n := 0
	for _, samples := range l {
		n += len(samples)
	}
	return n
}

// Put records c as the entry of (test, sample), creating the test's map.
func (l Ledger) Put(test, sample string, c Counted) {
	if l[test] == nil {
		l[test] = make(map[string]Counted)
	}
	l[test][sample] = c
}

// LedgerDoc is one document of a patient's ledger.
//
// The ledger is a set of shards, each the entries whose ShardHash starts
// with the shard's prefix (a string of '0' and '1'); the prefixes are
// prefix-free and cover every hash. A ledger of one shard has prefix "" and
// lives in the root document (LedgerDocID("")), Shards empty. A sharded
// ledger's root holds no entries, only Shards, and each shard prefix p is
// the document LedgerDocID(p).
type LedgerDoc struct {
	// Shards, in the root of a sharded ledger, lists the shards' prefixes.
	Shards []string `firestore:"shards,omitempty"`
	// Counted holds the shard's entries.
	Counted Ledger `firestore:"counted,omitempty"`
}

// LedgerDocID is the id of the document of the shard with prefix: "root"
// for "", "shard-<prefix>" for the others (such as "shard-101").
func LedgerDocID(prefix string) string {
	if prefix == "" {
		return "root"
	}
	return "shard-" + prefix
}

// ShardHash is what places the entry of (test, sample) in a shard: the
// SHA-256 of the test code, a zero byte and the sample id.
func ShardHash(test, sample string) [sha256.Size]byte {
	b := make([]byte, 0, len(test)+1+len(sample))
	b = append(append(append(b, test...), 0), sample...)
	return sha256.Sum256(b)
}

// HasPrefix reports whether the bits of h, most significant first, start
// with prefix, a string of '0' and '1' of at most 256 characters.
func HasPrefix(h [sha256.Size]byte, prefix string) bool {
	if len(prefix) > 8*len(h) {
		return false
	}
	for i := range len(prefix) {
		if h[i/8]>>(7-i%8)&1 != prefix[i]-'0' {
			return false
		}
	}
	return true
}

// ShardOf returns the prefix among shards (a root's Shards; empty for an
// unsharded ledger) of the shard that holds the entry of (test, sample),
// and false when none does (a malformed directory).
func ShardOf(shards []string, test, sample string) (string, bool) {
	if len(shards) == 0 {
		return "", true
	}
	h := ShardHash(test, sample)
	for _, p := range shards {
		if HasPrefix(h, p) {
			return p, true
		}
	}
	return "", false
}

// legacyPatient is the ledger part of a patient document written before
// the ledger moved out.
type legacyPatient struct {
	Counted Ledger `firestore:"counted"`
}

// ReadLedger reads the whole ledger of a patient in one read-only
// transaction, so as of one point in time: the root document of the
// patient's CollectionLedger and the shards it lists and, for a patient
// document not yet migrated, its field FieldLegacyCounted. The ledger
// belongs to its patient document: without one (never written, or deleted,
// which leaves subcollections behind) the ledger is empty. Errors name no
// patient: the caller adds what it may log.
func ReadLedger(ctx context.Context, client *firestore.Client, patientID string) (Ledger, error) {
	patient := client.Collection(names.CollectionPatients).Doc(patientID)
	ledger := patient.Collection(CollectionLedger)
	var out Ledger
	err := client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		out = Ledger{}
		snaps, err := tx.GetAll([]*firestore.DocumentRef{patient, ledger.Doc(LedgerDocID(""))})
		if err != nil {
			return err
		}
		if !snaps[0].Exists() {
			return nil
		}
		var legacy legacyPatient
		if err := snaps[0].DataTo(&legacy); err != nil {
			return fmt.Errorf("decode field %s: %w", FieldLegacyCounted, err)
		}
		add(out, legacy.Counted)
		if !snaps[1].Exists() {
			return nil
		}
		var root LedgerDoc
		if err := snaps[1].DataTo(&root); err != nil {
			return fmt.Errorf("decode ledger root: %w", err)
		}
		add(out, root.Counted)
		if len(root.Shards) == 0 {
			return nil
		}
		refs := make([]*firestore.DocumentRef, len(root.Shards))
		for i, p := range root.Shards {
			refs[i] = ledger.Doc(LedgerDocID(p))
		}
		if snaps, err = tx.GetAll(refs); err != nil {
			return err
		}
		for _, s := range snaps {
			if !s.Exists() {
				continue // a listed shard is written when listed; tolerate none
			}
			var doc LedgerDoc
			if err := s.DataTo(&doc); err != nil {
				return fmt.Errorf("decode ledger document %s: %w", s.Ref.ID, err)
			}
			add(out, doc.Counted)
		}
		return nil
	}, firestore.ReadOnly)
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	return out, nil
}

func add(dst, src Ledger) {
	for test, samples := range src {
		for sample, c := range samples {
			dst.Put(test, sample, c)
		}
	}
}
