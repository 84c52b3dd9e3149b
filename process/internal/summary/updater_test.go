package summary_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/labplatform/platform/contracts/names"
	contract "github.com/labplatform/platform/contracts/summary"
	"github.com/labplatform/platform/process/internal/summary"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }

func hashOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

// clock returns a fixed time, so a rewritten document shows in updated_at.
func clock(t time.Time) func() time.Time { return func() time.Time { return t } }

// apply streams results through one Run and closes it.
func apply(ctx context.Context, u *summary.Updater, hash string, results []summary.Result) (summary.Stats, error) {
	run := u.Begin(hash)
	for _, r := range results {
		if err := run.Add(ctx, r); err != nil {
			st, _ := run.Close(ctx)
			return st, err
		}
	}
	return run.Close(ctx)
}

// readAll reads every patient document and its whole ledger: the ledger
// documents (one collection-group query) and the legacy field. It fails the
// test unless the ledgers have the documented shape: a root, the shards it
// lists and no others, every entry in the shard its hash names, no shard
// over the bounds.
func readAll(t testing.TB, c *firestore.Client) map[string]*patientData {
	t.Helper()
	snaps, err := c.Collection(names.CollectionPatients).Documents(t.Context()).GetAll()
	if err != nil {
		t.Fatal(err)
	}
	type legacyDoc struct {
		contract.Patient
		Counted contract.Ledger `firestore:"counted"`
	}
	docs := make(map[string]*patientData, len(snaps))
	for _, s := range snaps {
		var p legacyDoc
		if err := s.DataTo(&p); err != nil {
			t.Fatalf("decode %s: %v", s.Ref.ID, err)
		}
		_, err := s.DataAt(contract.FieldLegacyCounted)
		docs[s.Ref.ID] = &patientData{doc: &p.Patient, ledger: contract.Ledger{}, legacy: err == nil}
		addLedger(docs[s.Ref.ID].ledger, p.Counted)
	}
	ledgers, err := c.CollectionGroup(contract.CollectionLedger).Documents(t.Context()).GetAll()
	if err != nil {
		t.Fatal(err)
	}
	byPatient := map[string]map[string]contract.LedgerDoc{}
	for _, s := range ledgers {
		id := s.Ref.Parent.Parent.ID
		if byPatient[id] == nil {
			byPatient[id] = map[string]contract.LedgerDoc{}
		}
		var d contract.LedgerDoc
		if err := s.DataTo(&d); err != nil {
			t.Fatalf("decode %s: %v", s.Ref.Path, err)
		}
		byPatient[id][s.Ref.ID] = d
	}
	bad := 0
	for id, ds := range byPatient {
		if err := checkShape(ds); err != nil {
			if bad++; bad <= 5 {
				t.Errorf("ledger of patient %s: %v", id, err)
			}
		}
		p := docs[id]
		if p == nil {
			t.Errorf("ledger of patient %s without a patient document", id)
			continue
		}
		for _, d := range ds {
			addLedger(p.ledger, d.Counted)
		}
	}
	return docs
}

func addLedger(dst, src contract.Ledger) {
	for test, samples := range src {
		for id, c := range samples {
			dst.Put(test, id, c)
		}
	}
}

// checkShape checks one patient's ledger documents, by id.
func checkShape(docs map[string]contract.LedgerDoc) error {
	root, ok := docs[contract.LedgerDocID("")]
	if !ok {
		return errors.New("no root document")
	}
	prefixes := root.Shards
	if len(prefixes) == 0 {
		prefixes = []string{""}
	} else if root.Counted != nil {
		return fmt.Errorf("root lists %d shards and holds %d entries", len(root.Shards), root.Counted.Len())
	}
	if want := len(root.Shards) + 1; len(docs) != want {
		return fmt.Errorf("%d documents, want the root and its %d shards", len(docs), len(root.Shards))
	}
	for _, p := range prefixes {
		d, ok := docs[contract.LedgerDocID(p)]
		if !ok {
			return fmt.Errorf("shard %q listed, no document", p)
		}
		if n := d.Counted.Len(); n > summary.MaxShardEntries {
			return fmt.Errorf("shard %q holds %d entries", p, n)
		}
		for test, samples := range d.Counted {
			for id := range samples {
				if got, ok := contract.ShardOf(root.Shards, test, id); !ok || got != p {
					return fmt.Errorf("an entry of shard %q belongs in %q (%v)", p, got, ok)
				}
			}
		}
	}
	// The prefixes are prefix-free (no hash has two shards) and cover every
	// hash: the shares 2^-len(prefix) sum to 1.
	cover := 0.0
	for _, p := range prefixes {
		cover += math.Ldexp(1, -len(p))
		for _, q := range prefixes {
			if p != q && strings.HasPrefix(q, p) {
				return fmt.Errorf("shards %q and %q overlap", p, q)
			}
		}
	}
	if cover != 1 {
		return fmt.Errorf("shards %v cover %g of the hashes", prefixes, cover)
	}
	return nil
}

func countMarkers(t testing.TB, c *firestore.Client) int {
	t.Helper()
	snaps, err := c.Collection(names.CollectionSummaryMarkers).Documents(t.Context()).GetAll()
	if err != nil {
		t.Fatal(err)
	}
	return len(snaps)
}

// checkModel compares every document with the model of results.
func checkModel(t *testing.T, docs map[string]*patientData, results []summary.Result) {
	t.Helper()
	want := model(results)
	if len(docs) != len(want) {
		t.Errorf("%d patient documents, want %d", len(docs), len(want))
	}
	bad := 0
	for id, w := range want {
		if d := diffPatient(w, docs[id]); d != nil {
			if bad++; bad <= 5 {
				t.Errorf("patient %s:\n%s", id, strings.Join(d, "\n"))
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d patients differ in all", bad)
	}
}

// sameDocs fails unless the documents are identical, updated_at included.
func sameDocs(t *testing.T, what string, before, after map[string]*patientData) {
	t.Helper()
	if len(before) != len(after) {
		t.Errorf("%s: %d documents, had %d", what, len(after), len(before))
	}
	bad := 0
	for id, b := range before {
		a := after[id]
		d := diffPatient(b, a)
		if a != nil && (!a.doc.UpdatedAt.Equal(b.doc.UpdatedAt) || !exactly(a.doc, b.doc)) {
			d = append(d, fmt.Sprintf("rewritten: updated_at %v, was %v", a.doc.UpdatedAt, b.doc.UpdatedAt))
		}
		if d != nil {
			if bad++; bad <= 5 {
				t.Errorf("%s: patient %s changed:\n%s", what, id, strings.Join(d, "\n"))
			}
		}
	}
}

// exactly compares the aggregates bit for bit.
func exactly(a, b *contract.Patient) bool {
	for code, s := range a.Tests {
		o := b.Tests[code]
		if o == nil || s.Mean != o.Mean || s.M2 != o.M2 {
			return false
		}
	}
	return true
}

func TestUpdaterMatchesModel(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := testenv.NewTestClients(t, env.NewTestPlatform(t))
	ds := generate(1, 3000, "")
	all := append(slices.Clone(ds.a), ds.b...)
	t.Logf("file a: %d results, file b: %d results", len(ds.a), len(ds.b))

	reg := prometheus.NewRegistry()
	metrics := summary.NewMetrics(reg)
	day1 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	u := summary.NewUpdater(c.Firestore, summary.Options{Now: clock(day1), Metrics: metrics})

	st, err := apply(ctx, u, hashOf("a"), ds.a)
	if err != nil {
		t.Fatal(err)
	}
	batchesA, batchesB := batches(ds.a, summary.DefaultPatientsPerTxn), batches(ds.b, summary.DefaultPatientsPerTxn)
	if st.Patients != 3000 || st.Results != len(ds.a) || st.Batches != batchesA || st.BatchesSkipped != 0 || st.PatientsUpdated != 3000 || st.TxnRetries != 0 || st.Commits != batchesA {
		t.Errorf("file a: stats %+v, want 3000 patients, %d results, %d batches and commits, none skipped, 3000 updated, no retries", st, len(ds.a), batchesA)
	}
	checkModel(t, readAll(t, c.Firestore), ds.a)

	u = summary.NewUpdater(c.Firestore, summary.Options{Now: clock(day1.Add(time.Hour)), Metrics: metrics})
	if st, err = apply(ctx, u, hashOf("b"), ds.b); err != nil {
		t.Fatal(err)
	}
	t.Logf("file b: %+v", st)
	updatedB := st.PatientsUpdated
	if st.Batches != batchesB || st.BatchesSkipped != 0 || updatedB == 0 || updatedB > st.Patients {
		t.Errorf("file b: stats %+v, want %d batches, none skipped", st, batchesB)
	}
	docs := readAll(t, c.Firestore)
	checkModel(t, docs, all)
	if n := countMarkers(t, c.Firestore); n != batchesA+batchesB {
		t.Errorf("%d markers, want %d", n, batchesA+batchesB)
	}

	t.Run("same content again changes nothing", func(t *testing.T) {
		u := summary.NewUpdater(c.Firestore, summary.Options{Now: clock(day1.Add(48 * time.Hour)), Metrics: metrics})
		for _, f := range []struct {
			hash    string
			rows    []summary.Result
			batches int
		}{{hash: hashOf("a"), rows: ds.a, batches: batchesA}, {hash: hashOf("b"), rows: ds.b, batches: batchesB}} {
			st, err := apply(ctx, u, f.hash, f.rows)
			if err != nil {
				t.Fatal(err)
			}
			if st.Batches != f.batches || st.BatchesSkipped != st.Batches || st.PatientsUpdated != 0 {
				t.Errorf("stats %+v, want all %d batches skipped and nothing updated", st, f.batches)
			}
		}
		sameDocs(t, "re-applied content", docs, readAll(t, c.Firestore))
	})

	t.Run("same rows under another content hash change nothing", func(t *testing.T) {
		// Another hash, and another batch size: no marker matches, the
		// ledger alone must hold.
		u := summary.NewUpdater(c.Firestore, summary.Options{Now: clock(day1.Add(72 * time.Hour)), PatientsPerTxn: 137})
		rows := slices.Clone(all)
		slices.SortStableFunc(rows, func(a, b summary.Result) int { return strings.Compare(a.PatientID, b.PatientID) })
		st, err := apply(ctx, u, hashOf("a and b, uploaded again as one file"), rows)
		if err != nil {
			t.Fatal(err)
		}
		if st.BatchesSkipped != 0 || st.PatientsUpdated != 0 || st.Batches != batches(rows, 137) {
			t.Errorf("stats %+v, want no batch skipped and nothing updated", st)
		}
		sameDocs(t, "re-sent rows", docs, readAll(t, c.Firestore))
	})

	t.Run("metrics", func(t *testing.T) {
		got := gather(t, reg)
		want := map[string]float64{
			`process_summary_transactions_total{outcome="committed"}`: float64(batchesA + batchesB),
			`process_summary_transactions_total{outcome="skipped"}`:   float64(batchesA + batchesB),
			`process_summary_transaction_retries_total`:               0,
			`process_summary_patients_updated_total`:                  float64(3000 + updatedB),
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %g, want %g (all: %v)", k, got[k], v, got)
			}
		}
	})
}

// batches is how many batches of perTxn patients rows (sorted) make.
func batches(rows []summary.Result, perTxn int) int {
	patients := 0
	for i, r := range rows {
		if i == 0 || r.PatientID != rows[i-1].PatientID {
			patients++
		}
	}
	return (patients + perTxn - 1) / perTxn
}

// gather flattens a registry to "name{label="value"}" -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if labels != nil {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			out[name] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestUpdaterCrashAndRerun stops a run part-way (its context is cancelled
// after four batches committed, with the fifth in flight) and runs the same
// content again from the start: the committed batches are skipped and the
// documents are exact.
func TestUpdaterCrashAndRerun(t *testing.T) {
	t.Parallel()
	c := testenv.NewTestClients(t, env.NewTestPlatform(t))
	const perTxn, patients = 50, 600
	ds := generate(2, patients, "")
	hash := hashOf("crash")
	u := summary.NewUpdater(c.Firestore, summary.Options{PatientsPerTxn: perTxn, Parallel: 1})

	ctx, cancel := context.WithCancel(t.Context())
	run := u.Begin(hash)
	seen, i := 0, 0
	for ; i < len(ds.a); i++ {
		r := ds.a[i]
		if i == 0 || r.PatientID != ds.a[i-1].PatientID {
			seen++
		}
		if err := run.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
		// The first result of patient 5*50+1 started batch 4; with
		// Parallel 1 that waited for batch 3 to finish.
		if seen == 5*perTxn+1 {
			break
		}
	}
	cancel()
	var err error
	for i++; i < len(ds.a) && err == nil; i++ {
		err = run.Add(ctx, ds.a[i])
	}
	if _, cerr := run.Close(ctx); err == nil {
		err = cerr
	}
	if err == nil {
		t.Fatal("the cancelled run reported no error")
	}
	committed := countMarkers(t, c.Firestore)
	t.Logf("crashed run: %v; %d batches committed", err, committed)
	if committed < 4 || committed > 5 {
		t.Fatalf("%d batches committed before the crash, want 4 or 5", committed)
	}
	// The committed batches are exactly the documents of their patients.
	if docs := readAll(t, c.Firestore); len(docs) != committed*perTxn {
		t.Errorf("%d documents after the crash, want %d", len(docs), committed*perTxn)
	}

	st, err := apply(t.Context(), u, hash, ds.a)
	if err != nil {
		t.Fatal(err)
	}
	if st.Batches != patients/perTxn || st.BatchesSkipped != committed {
		t.Errorf("rerun stats %+v, want %d batches, %d skipped", st, patients/perTxn, committed)
	}
	checkModel(t, readAll(t, c.Firestore), ds.a)
}

// TestUpdaterConcurrentRuns applies two files with the same patients at
// the same time, as two workers would: transactions on the same documents
// serialise and nothing is lost or counted twice.
func TestUpdaterConcurrentRuns(t *testing.T) {
	t.Parallel()
	c := testenv.NewTestClients(t, env.NewTestPlatform(t))
	ds := generate(3, 1000, "")
	var g errgroup.Group
	var mu sync.Mutex
	var stats []summary.Stats
	for i, rows := range [][]summary.Result{ds.a, ds.b} {
		g.Go(func() error {
			u := summary.NewUpdater(c.Firestore, summary.Options{PatientsPerTxn: 40, Parallel: 4})
			st, err := apply(t.Context(), u, hashOf(fmt.Sprint("file", i)), rows)
			mu.Lock()
			defer mu.Unlock()
			stats = append(stats, st)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stats: %+v", stats)
	checkModel(t, readAll(t, c.Firestore), append(slices.Clone(ds.a), ds.b...))
}

func TestRunRejects(t *testing.T) {
	t.Parallel()
	c := testenv.NewTestClients(t, env.NewTestPlatform(t))
	u := summary.NewUpdater(c.Firestore, summary.Options{})
	ok := summary.Result{PatientID: "P2", TestCode: "2345-7", SampleID: "S1", Unit: "mmol/L", Flag: "N", Status: "final", Value: 5, CollectedAt: t0}
	tests := []struct {
		name string
		hash string
		rows []summary.Result
		want string
	}{
		{name: "unsorted patients", hash: hashOf("x"), rows: []summary.Result{ok, {PatientID: "P1", TestCode: "2345-7", SampleID: "S2"}}, want: "result 2: results are not sorted by patient id"},
		{name: "slash in patient id", hash: hashOf("x"), rows: []summary.Result{{PatientID: "a/b", TestCode: "2345-7", SampleID: "S2"}}, want: "contains '/'"},
		{name: "empty sample and test", hash: hashOf("x"), rows: []summary.Result{{PatientID: "P1"}}, want: "empty test code; empty sample id"},
		{name: "bad content hash", hash: "not-a-hash", rows: []summary.Result{ok}, want: "is not <md5|sha256>:<lowercase hex digest>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := apply(t.Context(), u, tc.hash, tc.rows)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			for _, r := range tc.rows { // errors reach logs: no patient or sample ids
				for _, id := range []string{r.PatientID, r.SampleID} {
					if len(id) > 1 && err != nil && strings.Contains(err.Error(), id) {
						t.Errorf("error %q names id %q", err, id)
					}
				}
			}
		})
	}
	t.Run("add after close", func(t *testing.T) {
		run := u.Begin(hashOf("y"))
		if _, err := run.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := run.Add(t.Context(), ok); err == nil {
			t.Error("Add after Close succeeded")
		}
	})
	if docs := readAll(t, c.Firestore); len(docs) != 0 {
		t.Errorf("rejected runs wrote %d documents", len(docs))
	}
}

// TestShardFitsDocument checks the bounds of contracts/summary's "Size":
// the legacy design's document is full at about 3,000 counted results (the
// 20,000-field limit rejects 3,400 entries in one document), and a ledger
// shard of MaxShardEntries entries with the longest sample ids process
// accepts (64 bytes), analyzed_at and one entry per test map fits, with
// its size estimate under MaxShardBytes.
func TestShardFitsDocument(t *testing.T) {
	t.Parallel()
	c := testenv.NewTestClients(t, env.NewTestPlatform(t))
	build := func(n, tests int) contract.Ledger {
		l := contract.Ledger{}
		for k := range n {
			sample := fmt.Sprintf("%064d", k)
			l.Put(fmt.Sprintf("%05d-%d", 10000+k%tests, k%10), sample, contract.Counted{Value: 5, Flag: "HH", Status: "preliminary", AnalyzedAt: t0, CollectedAt: t0})
		}
		return l
	}
	doc := c.Firestore.Collection(names.CollectionPatients).Doc("heavy").Collection(contract.CollectionLedger).Doc(contract.LedgerDocID("0"))
	if _, err := doc.Set(t.Context(), contract.LedgerDoc{Counted: build(summary.MaxShardEntries, summary.MaxShardEntries)}); err != nil {
		t.Errorf("a full shard, one test per entry: %v", err)
	}
	if _, err := doc.Set(t.Context(), contract.LedgerDoc{Counted: build(summary.MaxShardEntries, 28)}); err != nil {
		t.Errorf("a full shard of 28 tests: %v", err)
	}
	if n := summary.LedgerBytes(build(summary.MaxShardEntries, 28)); n > summary.MaxShardBytes {
		t.Errorf("a full shard is estimated at %d bytes, over MaxShardBytes", n)
	}
	_, err := doc.Set(t.Context(), contract.LedgerDoc{Counted: build(3400, 28)})
	if err == nil || !strings.Contains(err.Error(), "InvalidArgument") || !strings.Contains(err.Error(), "20000") {
		t.Errorf("3,400 entries: error %v, want InvalidArgument for more than 20000 fields", err)
	}
}

// TestAbortKeepsPartialBatchOpen: a file that stops half-way through a batch
// must not commit that batch, or its marker would make the rerun skip the
// batch's patients the first attempt never saw.
func TestAbortKeepsPartialBatchOpen(t *testing.T) {
	t.Parallel()
	c := testenv.NewTestClients(t, env.NewTestPlatform(t))
	const perTxn, patients = 50, 200
	ds := generate(5, patients, "")
	hash := hashOf("abort")
	u := summary.NewUpdater(c.Firestore, summary.Options{PatientsPerTxn: perTxn, Parallel: 1})
	run := u.Begin(hash)
	seen := 0
	for i, r := range ds.a {
		if i == 0 || r.PatientID != ds.a[i-1].PatientID {
			if seen++; seen > perTxn+perTxn/2 {
				break // the file failed after one and a half batches
			}
		}
		if err := run.Add(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	st, err := run.Abort()
	if err != nil {
		t.Fatal(err)
	}
	if markers := countMarkers(t, c.Firestore); markers != 1 || st.Batches != 1 {
		t.Fatalf("%d markers, %d batches after the abort, want the one full batch", markers, st.Batches)
	}
	st, err = apply(t.Context(), u, hash, ds.a)
	if err != nil {
		t.Fatal(err)
	}
	if st.BatchesSkipped != 1 || st.Batches != patients/perTxn {
		t.Errorf("rerun stats %+v, want %d batches, 1 skipped", st, patients/perTxn)
	}
	checkModel(t, readAll(t, c.Firestore), ds.a)
}
