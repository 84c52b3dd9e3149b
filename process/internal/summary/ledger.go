package summary

import (
	"fmt"
	"slices"

	"cloud.google.com/go/firestore"

	contract "github.com/labplatform/platform/contracts/summary"
)

// Bounds of one ledger document (contract.LedgerDoc): a shard that would
// hold more entries, or more bytes by Firestore's storage-size rules, is
// split in two by the next bit of its entries' contract.ShardHash. 1,000
// entries are at most 7,000 fields (an entry is 6, plus one per test map)
// and about 100 KiB with the sample ids process accepts, far from the
// 20,000 fields and 1 MiB of a document, so a shard is cheap to rewrite and
// a commit carries dozens of them within MaxCommitBytes.
const (
	MaxShardEntries = 1000
	MaxShardBytes   = 256 << 10
)

// shard is one shard of a patient's ledger as a transaction sees it.
type shard struct {
	entries contract.Ledger
	dirty   bool // to be written
	stored  bool // listed before this transaction: its document is there
}

// patientLedger is a patient's ledger as a transaction reads and changes
// it: the directory of shard prefixes ([""] while the root holds every
// entry) and the shards read so far.
type patientLedger struct {
	coll      *firestore.CollectionRef
	prefixes  []string          // sorted
	loaded    map[string]*shard // by prefix
	rootDirty bool              // a sharded root's directory changed
	deleted   []string          // prefixes of shard documents to delete
}

// newPatientLedger returns the ledger whose root document is root. With
// fresh true (the patient document does not exist) it is empty whatever
// root holds: a deleted patient document leaves its subcollection behind,
// and the ledger is the document's.
func newPatientLedger(coll *firestore.CollectionRef, root *firestore.DocumentSnapshot, fresh bool) (*patientLedger, error) {
	l := &patientLedger{coll: coll, prefixes: []string{""}, loaded: map[string]*shard{}}
	if fresh || !root.Exists() {
		l.loaded[""] = &shard{entries: contract.Ledger{}}
		return l, nil
	}
	var doc contract.LedgerDoc
	if err := root.DataTo(&doc); err != nil {
		return nil, fmt.Errorf("decode ledger root: %w", err)
	}
	if len(doc.Shards) == 0 {
		l.loaded[""] = &shard{entries: orEmpty(doc.Counted), stored: true}
		return l, nil
	}
	l.prefixes = slices.Sorted(slices.Values(doc.Shards))
	return l, nil
}

func orEmpty(l contract.Ledger) contract.Ledger {
	if l == nil {
		return contract.Ledger{}
	}
	return l
}

// shardOf is the prefix of the shard of (test, sample).
func (l *patientLedger) shardOf(test, sample string) (string, error) {
	if len(l.prefixes) == 1 && l.prefixes[0] == "" {
		return "", nil
	}
	p, ok := contract.ShardOf(l.prefixes, test, sample)
	if !ok {
		return "", fmt.Errorf("ledger directory of %d shards has none for an entry", len(l.prefixes))
	}
	return p, nil
}

// missing returns the prefixes of the shards not read yet that hold the
// results, or of all of them when all is true.
func (l *patientLedger) missing(results []Result, all bool) ([]string, error) {
	var out []string
	if all {
		for _, p := range l.prefixes {
			if l.loaded[p] == nil {
				out = append(out, p)
			}
		}
		return out, nil
	}
	seen := map[string]bool{}
	for _, r := range results {
		p, err := l.shardOf(r.TestCode, r.SampleID)
		if err != nil {
			return nil, err
		}
		if l.loaded[p] == nil && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// complete reports whether every shard has been read.
func (l *patientLedger) complete() bool { return len(l.loaded) == len(l.prefixes) }

// ref is the document of the shard with prefix p.
func (l *patientLedger) ref(p string) *firestore.DocumentRef {
	return l.coll.Doc(contract.LedgerDocID(p))
}

// load records the shard with prefix p read as snap.
func (l *patientLedger) load(p string, snap *firestore.DocumentSnapshot) error {
	s := &shard{entries: contract.Ledger{}, stored: true}
	if snap.Exists() {
		var doc contract.LedgerDoc
		if err := snap.DataTo(&doc); err != nil {
			return fmt.Errorf("decode ledger shard %s: %w", p, err)
		}
		s.entries = orEmpty(doc.Counted)
	}
	l.loaded[p] = s
	return nil
}

// view returns the entries of the shards read, in a Ledger of its own.
func (l *patientLedger) view() contract.Ledger {
	out := contract.Ledger{}
	for _, s := range l.loaded {
		for test, samples := range s.entries {
			if out[test] == nil {
				out[test] = make(map[string]contract.Counted, len(samples))
			}
			for id, c := range samples {
				out[test][id] = c
			}
		}
	}
	return out
}

// put records c as the entry of (test, sample) in its shard, which must
// have been read.
func (l *patientLedger) put(test, sample string, c contract.Counted) error {
	p, err := l.shardOf(test, sample)
	if err != nil {
		return err
	}
	s := l.loaded[p]
	if s == nil {
		return fmt.Errorf("ledger shard %q changed before it was read", p)
	}
	s.entries.Put(test, sample, c)
	s.dirty = true
	return nil
}

// fits reports whether a shard's entries are within the bounds.
func fits(entries contract.Ledger) bool {
	return entries.Len() <= MaxShardEntries && ledgerBytes(entries) <= MaxShardBytes
}

// split splits every changed shard that no longer fits, again and again
// until each fits.
func (l *patientLedger) split() {
	for _, p := range slices.Clone(l.prefixes) {
		if s := l.loaded[p]; s != nil && s.dirty && !fits(s.entries) {
			l.splitShard(p)
		}
	}
	slices.Sort(l.prefixes)
}

// splitShard replaces the shard p by p+"0" and p+"1", both written (a
// prefix in the directory always has a document written since it was
// listed), and splits them further while they do not fit.
func (l *patientLedger) splitShard(p string) {
	s := l.loaded[p]
	kids := [2]*shard{{entries: contract.Ledger{}, dirty: true}, {entries: contract.Ledger{}, dirty: true}}
	for test, samples := range s.entries {
		for id, c := range samples {
			bit := 0
			if contract.HasPrefix(contract.ShardHash(test, id), p+"1") {
				bit = 1
			}
			kids[bit].entries.Put(test, id, c)
		}
	}
	delete(l.loaded, p)
	l.prefixes = slices.DeleteFunc(l.prefixes, func(q string) bool { return q == p })
	if p != "" && s.stored {
		l.deleted = append(l.deleted, p)
	}
	l.rootDirty = true
	for bit, kid := range kids {
		q := p + string(rune('0'+bit))
		l.loaded[q] = kid
		l.prefixes = append(l.prefixes, q)
		if !fits(kid.entries) && len(q) < 256 {
			l.splitShard(q)
		}
	}
}

// sharded reports whether the root is a directory.
func (l *patientLedger) sharded() bool { return !(len(l.prefixes) == 1 && l.prefixes[0] == "") }

// write is one document write of a commit.
type write struct {
	ref   *firestore.DocumentRef
	data  any // nil: delete
	bytes int // estimated size
}

// writes lists what the ledger's changes write: the changed shards, the
// root when its directory changed, and the deletion of split shards.
func (l *patientLedger) writes() []write {
	var out []write
	if l.sharded() && l.rootDirty {
		doc := contract.LedgerDoc{Shards: slices.Clone(l.prefixes)}
		n := 64
		for _, p := range l.prefixes {
			n += len(p) + 1
		}
		out = append(out, write{ref: l.ref(""), data: doc, bytes: n})
	}
	for _, p := range l.prefixes {
		if s := l.loaded[p]; s != nil && s.dirty {
			out = append(out, write{ref: l.ref(p), data: contract.LedgerDoc{Counted: s.entries}, bytes: 64 + ledgerBytes(s.entries)})
		}
	}
	for _, p := range l.deleted {
		out = append(out, write{ref: l.ref(p), bytes: 64})
	}
	return out
}

// Sizes by Firestore's storage-size rules: a string is its length plus
// one, a number or timestamp 8 bytes, a map the sum of its keys and values.
func strSize(s string) int { return len(s) + 1 }

func entrySize(sample string, c contract.Counted) int {
	n := strSize(sample) + strSize("value") + 8 + strSize("flag") + strSize(c.Flag) +
		strSize("status") + strSize(c.Status) + strSize("collected_at") + 8
	if !c.AnalyzedAt.IsZero() {
		n += strSize("analyzed_at") + 8
	}
	return n
}

// ledgerBytes estimates the size of a ledger document holding l.
func ledgerBytes(l contract.Ledger) int {
	n := strSize("counted")
	for test, samples := range l {
		n += strSize(test)
		for id, c := range samples {
			n += entrySize(id, c)
		}
	}
	return n
}

// patientBytes estimates the size of a patient document.
func patientBytes(p *contract.Patient) int {
	result := func(r contract.Result) int {
		return strSize(r.SampleID) + strSize(r.Flag) + strSize(r.Status) + 70
	}
	n := 128 + strSize(p.PatientID)
	for code, s := range p.Tests {
		n += strSize(code) + strSize(s.Unit) + 120 + result(s.Last)
		for _, r := range s.Recent {
			n += result(r)
		}
	}
	return n
}
