package summary_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/names"
	contract "github.com/labplatform/platform/contracts/summary"
	"github.com/labplatform/platform/process/internal/summary"
	"github.com/labplatform/platform/testenv"
)

// longHistory makes files of one patient's history, perTest[i] samples of
// genTests[i], sample k in file k%files. Each later file also corrects 200
// results of earlier files (among them the newest result of test 0, so
// Last changes, and its smallest, so Min does) and re-sends 100 unchanged.
func longHistory(pid string, perTest []int, files int) [][]summary.Result {
	rng := rand.New(rand.NewPCG(9, uint64(len(perTest))))
	value := func() float64 { return math.Round((1+rng.Float64()*10)*1000) / 1000 }
	base := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([][]summary.Result, files)
	for i, n := range perTest {
		tc := genTests[i]
		for k := range n {
			v := value()
			at := base.Add(time.Duration(k)*8*time.Hour + time.Duration(i)*time.Minute)
			out[k%files] = append(out[k%files], summary.Result{PatientID: pid, TestCode: tc.code, SampleID: fmt.Sprintf("%s-%d-%05d", pid, i, k),
				Unit: tc.unit, Flag: flagFor(v), Status: "final", Value: v, CollectedAt: at, AnalyzedAt: at.Add(time.Hour)})
		}
	}
	correct := func(f int, r summary.Result, v float64) summary.Result {
		r.Status, r.Value, r.Flag = "corrected", v, flagFor(v)
		r.AnalyzedAt = r.CollectedAt.Add(time.Duration(24*(f+1)) * time.Hour)
		return r
	}
	for f := 1; f < files; f++ {
		var extra []summary.Result
		for range 200 {
			g := rng.IntN(f)
			extra = append(extra, correct(f, out[g][rng.IntN(len(out[g]))], value()))
		}
		for range 100 {
			g := rng.IntN(f)
			extra = append(extra, out[g][rng.IntN(len(out[g]))])
		}
		if f == files-1 {
			newest, smallest := out[0][0], out[0][0]
			for _, file := range out[:f] {
				for _, r := range file {
					if r.TestCode == genTests[0].code && r.Status == "final" {
						if r.CollectedAt.After(newest.CollectedAt) {
							newest = r
						}
						if r.Value < smallest.Value {
							smallest = r
						}
					}
				}
			}
			extra = append(extra, correct(f, newest, 0.5), correct(f, smallest, 10.5))
		}
		out[f] = append(out[f], extra...)
	}
	return out
}

// TestLongHistory: one patient with 22,000 counted results over nine tests,
// 6,000 of one test, delivered in four files with corrections and
// duplicates: every result is counted once, the summary equals the
// recomputation, the ledger is sharded within its bounds, ReadLedger
// reads all of it, and the same rows again change nothing.
func TestLongHistory(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := testenv.NewTestClients(t, env.NewTestPlatform(t))
	perTest := []int{6000, 2000, 2000, 2000, 2000, 2000, 2000, 2000, 2000}
	files := longHistory("HEAVY", perTest, 4)
	u := summary.NewUpdater(c.Firestore, summary.Options{Now: clock(t0)})
	var all []summary.Result
	for i, f := range files {
		st, err := apply(ctx, u, hashOf(fmt.Sprint("history", i)), f)
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		if st.PatientsUpdated != 1 || st.Commits != 1 {
			t.Errorf("file %d: stats %+v, want the patient updated in one commit", i, st)
		}
		all = append(all, f...)
	}
	docs := readAll(t, c.Firestore)
	checkModel(t, docs, all)
	heavy := docs["HEAVY"]
	if n, n0 := heavy.ledger.Len(), len(heavy.ledger[genTests[0].code]); n != 22000 || n0 != 6000 {
		t.Errorf("ledger holds %d results, %d of test %s; want 22,000 and 6,000", n, n0, genTests[0].code)
	}
	root, err := c.Firestore.Collection(names.CollectionPatients).Doc("HEAVY").Collection(contract.CollectionLedger).Doc(contract.LedgerDocID("")).Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rootDoc contract.LedgerDoc
	if err := root.DataTo(&rootDoc); err != nil {
		t.Fatal(err)
	}
	if len(rootDoc.Shards) < 22000/summary.MaxShardEntries {
		t.Errorf("%d shards for 22,000 results", len(rootDoc.Shards))
	}
	t.Logf("%d results in %d shards: %v", heavy.ledger.Len(), len(rootDoc.Shards), rootDoc.Shards)

	read, err := contract.ReadLedger(ctx, c.Firestore, "HEAVY")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(read, heavy.ledger) {
		t.Errorf("ReadLedger read %d entries, the documents hold %d", read.Len(), heavy.ledger.Len())
	}

	// The same rows as one file of another content, cut otherwise: no
	// marker matches, the sharded ledger alone keeps them from counting.
	u = summary.NewUpdater(c.Firestore, summary.Options{Now: clock(t0.Add(time.Hour)), PatientsPerTxn: 7})
	st, err := apply(ctx, u, hashOf("history again"), all)
	if err != nil {
		t.Fatal(err)
	}
	if st.PatientsUpdated != 0 {
		t.Errorf("re-sent history: stats %+v, want nothing updated", st)
	}
	sameDocs(t, "re-sent history", docs, readAll(t, c.Firestore))
}

// legacyDoc is a patient document as the code before the ledger moved out
// wrote it: the ledger in field "counted".
type legacyDoc struct {
	contract.Patient
	Counted contract.Ledger `firestore:"counted"`
}

// TestMigratesLegacyDocuments: documents written by the old code (ledger
// inside) are migrated by the next batch that names their patient, in its
// transaction, even when it changes no result: the ledger moves to its
// documents (sharded when large) and the field is gone. Documents no batch
// named stay as they are and ReadLedger still reads their ledger.
func TestMigratesLegacyDocuments(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := testenv.NewTestClients(t, env.NewTestPlatform(t))
	ds := generate(11, 300, "")
	big := slices.Concat(longHistory("BIG", []int{400, 400, 300, 300, 300, 300, 300, 300, 300}, 1)...) // 2,900: near the old limit
	old := slices.Concat(big, ds.a)
	day1 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	patients := c.Firestore.Collection(names.CollectionPatients)
	for id, p := range model(old) {
		p.doc.UpdatedAt = day1
		if _, err := patients.Doc(id).Set(ctx, legacyDoc{Patient: *p.doc, Counted: p.ledger}); err != nil {
			t.Fatalf("write legacy document: %v", err)
		}
	}

	// File b names most patients; BIG only with a result already counted.
	rows := slices.Concat([]summary.Result{big[0]}, ds.b)
	named := map[string]bool{}
	for _, r := range rows {
		named[r.PatientID] = true
	}
	u := summary.NewUpdater(c.Firestore, summary.Options{Now: clock(day1.Add(time.Hour))})
	st, err := apply(ctx, u, hashOf("b"), rows)
	if err != nil {
		t.Fatal(err)
	}
	if st.LedgersMigrated != len(named) || st.PatientsUpdated >= len(named) {
		t.Errorf("stats %+v, want %d ledgers migrated, fewer patients updated", st, len(named))
	}
	docs := readAll(t, c.Firestore)
	checkModel(t, docs, slices.Concat(old, ds.b))
	for id, d := range docs {
		if d.legacy == named[id] {
			t.Errorf("patient %s: named by the batch %v, legacy ledger field still there %v", id, named[id], d.legacy)
		}
	}
	if b := docs["BIG"]; !b.doc.UpdatedAt.Equal(day1) {
		t.Errorf("BIG: updated_at %v, want %v: migrating changes no result", b.doc.UpdatedAt, day1)
	}
	var root contract.LedgerDoc
	snap, err := patients.Doc("BIG").Collection(contract.CollectionLedger).Doc(contract.LedgerDocID("")).Get(ctx)
	if err == nil {
		err = snap.DataTo(&root)
	}
	if err != nil || len(root.Shards) < 3 {
		t.Errorf("BIG's 2,900 results: root %v shards, error %v; want at least 3 shards", root.Shards, err)
	}

	for id, d := range docs {
		if named[id] {
			continue
		}
		read, err := contract.ReadLedger(ctx, c.Firestore, id)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(read, d.ledger) || read.Len() == 0 {
			t.Errorf("ReadLedger of legacy patient %s: %d entries, want %d", id, read.Len(), d.ledger.Len())
		}
		break
	}

	st, err = apply(ctx, u, hashOf("b, again"), rows)
	if err != nil {
		t.Fatal(err)
	}
	if st.LedgersMigrated != 0 || st.PatientsUpdated != 0 {
		t.Errorf("the rows again: stats %+v, want nothing migrated or updated", st)
	}
	sameDocs(t, "the rows again", docs, readAll(t, c.Firestore))
}

// TestBatchCommittedInParts: batches over a commit's write or byte limit
// are committed in parts, the marker with the last, and stay exactly
// once; a single patient over the limit fails the batch, naming no one.
func TestBatchCommittedInParts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := testenv.NewTestClients(t, env.NewTestPlatform(t))
	ds := generate(12, 200, "")
	u := summary.NewUpdater(c.Firestore, summary.Options{PatientsPerTxn: 50, Parallel: 2})

	summary.SetCommitLimits(u, 25, summary.MaxCommitBytes)
	st, err := apply(ctx, u, hashOf("a"), ds.a)
	if err != nil {
		t.Fatal(err)
	}
	if st.Batches != 4 || st.Commits < 4*5 {
		t.Errorf("write limit: stats %+v, want 4 batches in at least 20 commits", st)
	}
	summary.SetCommitLimits(u, summary.MaxWritesPerCommit, 20_000)
	if st, err = apply(ctx, u, hashOf("b"), ds.b); err != nil {
		t.Fatal(err)
	}
	if st.Commits <= st.Batches {
		t.Errorf("byte limit: stats %+v, want more commits than batches", st)
	}
	if n := countMarkers(t, c.Firestore); n != 8 {
		t.Errorf("%d markers, want 8", n)
	}
	docs := readAll(t, c.Firestore)
	checkModel(t, docs, slices.Concat(ds.a, ds.b))
	if st, err = apply(ctx, u, hashOf("a"), ds.a); err != nil || st.BatchesSkipped != 4 {
		t.Errorf("a again: stats %+v, error %v; want every batch skipped", st, err)
	}

	summary.SetCommitLimits(u, 1, summary.MaxCommitBytes)
	one := []summary.Result{{PatientID: "SOLO1", TestCode: "2345-7", SampleID: "SOLO1-S1", Unit: "mmol/L", Flag: "N", Status: "final", Value: 5, CollectedAt: t0}}
	_, err = apply(ctx, u, hashOf("solo"), one)
	if err == nil || !strings.Contains(err.Error(), "one patient's changes need a commit of 3 writes") || strings.Contains(err.Error(), "SOLO1") {
		t.Errorf("one patient over the limit: error %v", err)
	}
	sameDocs(t, "after the failed batch", docs, readAll(t, c.Firestore))
}
