package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/civil"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/summary"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }

// TestCheck builds one consistent world and checks that Check finds no
// violation and counts what the world holds; then it breaks one thing at a
// time, expects exactly the invariants that break to be reported, repairs
// it and expects a clean report again. (One world rather than one per case:
// provisioning a platform costs more than a check.)
func TestCheck(t *testing.T) {
	w := newWorld(t)
	t.Run("consistent", func(t *testing.T) {
		w.t = t
		checkConsistent(t, w, w.check())
	})

	// The names of the world's objects (specs order).
	sp := specs()
	a, b, chunk, headerOnly := sp[0].name, sp[1].name, sp[2].name, sp[4].name
	cases := []struct {
		name string
		// brk breaks the world and returns what repairs it.
		brk   func(w *world) (repair func())
		want  []string
		about string // a word of the expected violation's detail
		// holds, for a change that breaks nothing (want empty), says what
		// the report must show of it.
		holds func(*Report) bool
	}{{
		name: "curated row dropped",
		brk: func(w *world) func() {
			obj := w.curatedOf(a, 2)
			rows := w.curated[obj]
			w.writeCurated(obj, a, w.gens[a], rows[:len(rows)-1])
			return func() { w.writeCurated(obj, a, w.gens[a], rows) }
		},
		want:  []string{InvariantSourceRows, InvariantDayCounts},
		about: "neither curated nor quarantine",
	}, {
		name: "line curated and quarantined",
		brk: func(w *world) func() {
			obj, _ := names.QuarantineObject(a, w.gens[a])
			rows := w.quarantine[obj]
			w.writeQuarantine(obj, append(slices.Clone(rows), qRow{4, "bad_value"}))
			return func() { w.writeQuarantine(obj, rows) }
		},
		want:  []string{InvariantSourceRows},
		about: "more than one",
	}, {
		name: "line listed twice",
		brk: func(w *world) func() {
			obj := w.curatedOf(chunk, 2)
			rows := w.curated[obj]
			w.writeCurated(obj, chunk, w.gens[chunk], []result{rows[0], rows[0]})
			return func() { w.writeCurated(obj, chunk, w.gens[chunk], rows) }
		},
		want:  []string{InvariantSourceRows, InvariantDayCounts},
		about: "listed twice",
	}, {
		name: "lineage count changed",
		brk: func(w *world) func() {
			ing := w.lineage(a)
			bad := ing
			bad.RowsQuarantined++
			bad.RowsIn++
			w.setLineage(bad)
			return func() { w.setLineage(ing) }
		},
		want:  []string{InvariantSourceRows},
		about: "rows_quarantined",
	}, {
		name: "lineage stuck processing",
		brk: func(w *world) func() {
			ing := w.lineage(b)
			// A worker that crashed after its outputs, before lineage done.
			bad := ing
			bad.Status, bad.RowsIn, bad.RowsValid, bad.Outputs, bad.Days, bad.Quarantine = lineage.StatusProcessing, 0, 0, []lineage.Output{}, []string{}, nil
			w.setLineage(bad)
			return func() { w.setLineage(ing) }
		},
		want:  []string{InvariantSourceRows, InvariantDayCounts},
		about: "processing",
	}, {
		name: "lineage failed",
		brk: func(w *world) func() {
			ing := w.lineage(headerOnly)
			bad := ing
			bad.Status, bad.Error = lineage.StatusFailed, "open: not found"
			w.setLineage(bad)
			return func() { w.setLineage(ing) }
		},
		want:  []string{InvariantSourceRows},
		about: "failed",
	}, {
		name: "raw object never processed",
		brk: func(w *world) func() {
			name := "robot=R004/date=2026-03-02/late.csv"
			w.upload(names.RawBucket(w.prefix), name, []byte(header+"\n"))
			return func() {
				if err := w.c.Storage.Bucket(names.RawBucket(w.prefix)).Object(name).Delete(w.ctx); err != nil {
					w.t.Fatal(err)
				}
			}
		},
		want:  []string{InvariantSourceRows},
		about: "no lineage",
	}, {
		name: "bigquery row deleted",
		brk: func(w *world) func() {
			row := w.bqRows[len(w.bqRows)-1]
			w.deleteResult(row)
			return func() { w.insert(row) }
		},
		want:  []string{InvariantDayCounts, InvariantSummary},
		about: "lab.results holds",
	}, {
		name: "bigquery duplicate row",
		brk: func(w *world) func() {
			row := w.bqRows[len(w.bqRows)-1]
			w.insert(row)
			return func() {
				w.deleteResult(row)
				w.insert(row)
			}
		},
		want:  []string{InvariantDayCounts},
		about: "distinct",
	}, {
		name: "lab.results read in parts",
		brk: func(w *world) func() {
			old := maxRowsPerQuery
			maxRowsPerQuery = 1 // every raw-object prefix a query of its own
			return func() { maxRowsPerQuery = old }
		},
		holds: func(rep *Report) bool {
			return rep.BigQueryRows == int64(len(w.bqRows)) && rep.Results == int64(len(w.bqRows))
		},
	}, {
		name: "lab.results read in parts holds a row of no known file",
		brk: func(w *world) func() {
			old := maxRowsPerQuery
			maxRowsPerQuery = 1
			row := w.bqRows[len(w.bqRows)-1]
			row.SourceObject, row.SampleID = "robot=R999/date=2026-03-02/stray.csv", "STRAY1"
			w.insert(row)
			return func() {
				maxRowsPerQuery = old
				w.deleteResult(row)
			}
		},
		want:  []string{InvariantDayCounts},
		about: "no known file",
	}, {
		name: "summary count bumped",
		brk: func(w *world) func() {
			return w.changePatient("P1", func(p *summary.Patient) { p.Tests["2345-7"].Count++ })
		},
		want:  []string{InvariantSummary},
		about: "count",
	}, {
		name: "summary and ledger lost a result",
		brk: func(w *world) func() {
			root := w.c.Firestore.Collection(names.CollectionPatients).Doc("P1").Collection(summary.CollectionLedger).Doc(summary.LedgerDocID(""))
			var orig, l summary.LedgerDoc
			snap, err := root.Get(w.ctx)
			if err == nil {
				err = errors.Join(snap.DataTo(&orig), snap.DataTo(&l))
			}
			if err != nil {
				w.t.Fatal(err)
			}
			for id := range l.Counted["2345-7"] {
				delete(l.Counted["2345-7"], id)
				break
			}
			if _, err := root.Set(w.ctx, l); err != nil {
				w.t.Fatal(err)
			}
			restore := w.changePatient("P1", func(p *summary.Patient) { p.Tests["2345-7"].Count-- })
			return func() {
				restore()
				if _, err := root.Set(w.ctx, orig); err != nil {
					w.t.Fatal(err)
				}
			}
		},
		want:  []string{InvariantSummary},
		about: "ledger lacks samples of lab.results",
	}, {
		name: "summary mean bumped",
		brk: func(w *world) func() {
			return w.changePatient("P1", func(p *summary.Patient) { p.Tests["2345-7"].Mean *= 1 + 1e-6 })
		},
		want:  []string{InvariantSummary},
		about: "mean",
	}, {
		name: "summary last changed",
		brk: func(w *world) func() {
			return w.changePatient("P3", func(p *summary.Patient) { p.Tests["2160-0"].Last.Value = 1.4 })
		},
		want:  []string{InvariantSummary},
		about: "last",
	}, {
		name: "summary recent reordered",
		brk: func(w *world) func() {
			return w.changePatient("P1", func(p *summary.Patient) { slices.Reverse(p.Tests["2345-7"].Recent) })
		},
		want:  []string{InvariantSummary},
		about: "recent",
	}, {
		name: "patient without summary",
		brk: func(w *world) func() {
			p := w.patient("P3")
			if _, err := w.c.Firestore.Collection(names.CollectionPatients).Doc("P3").Delete(w.ctx); err != nil {
				w.t.Fatal(err)
			}
			return func() { w.setPatient("P3", p) }
		},
		want:  []string{InvariantSummary},
		about: "no summary document",
	}, {
		name: "day load stale",
		brk: func(w *world) func() {
			l := w.dayLoad("2026-03-02")
			bad := l
			bad.StagingStartedAt = t0.Add(time.Minute + time.Second) // before the third file finished
			w.setDayLoad(bad)
			return func() { w.setDayLoad(l) }
		},
		want:  []string{InvariantDayCounts},
		about: "not loaded since its last file",
	}, {
		name: "raw object rewritten to a colder class",
		brk: func(w *world) func() {
			// The lifecycle enforcer's rewrite: a new generation that keeps
			// the first one in metadata.
			w.uploadMeta(names.RawBucket(w.prefix), a, []byte(sp[0].data), map[string]string{
				names.MetaLifecycleSourceGeneration: strconv.FormatInt(w.gens[a], 10),
				names.MetaLifecycleCreated:          t0.Format(time.RFC3339),
			})
			return func() {}
		},
		holds: func(rep *Report) bool { return rep.Done == len(sp) && rep.LineageOnly == 0 && rep.RowsIn > 0 },
	}, {
		name: "raw object deleted after its day loaded",
		brk: func(w *world) func() {
			if err := w.c.Storage.Bucket(names.RawBucket(w.prefix)).Object(b).Delete(w.ctx); err != nil {
				w.t.Fatal(err)
			}
			return func() {
				w.uploadMeta(names.RawBucket(w.prefix), b, []byte(sp[1].data), map[string]string{
					names.MetaLifecycleSourceGeneration: strconv.FormatInt(w.gens[b], 10),
				})
			}
		},
		holds: func(rep *Report) bool { return rep.Files == len(sp)-1 && rep.LineageOnly == 1 },
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w.t = t
			repair := tc.brk(w)
			rep := w.check()
			if tc.holds != nil {
				if !rep.OK() || !tc.holds(rep) {
					t.Errorf("a change that breaks nothing:\n%s", text(t, rep))
				}
				repair()
				return
			}
			if got := rep.Invariants(); !slices.Equal(got, sortedKinds(tc.want...)) {
				t.Errorf("invariants violated %v, want %v:\n%s", got, tc.want, text(t, rep))
			}
			found := false
			for _, v := range rep.Violations {
				found = found || strings.Contains(v.Detail, tc.about)
			}
			if !found {
				t.Errorf("no violation says %q:\n%s", tc.about, text(t, rep))
			}
			if out := text(t, rep); strings.Contains(out, "all invariants hold") || !strings.Contains(out, tc.want[0]) {
				t.Errorf("report text does not show the violation:\n%s", out)
			}
			repair()
			if rep := w.check(); !rep.OK() {
				t.Fatalf("repaired world still violates:\n%s", text(t, rep))
			}
		})
	}
}

// checkConsistent holds the report of the untouched world to what the
// world holds.
func checkConsistent(t *testing.T, w *world, rep *Report) {
	t.Helper()
	if !rep.OK() {
		t.Fatalf("violations in a consistent world:\n%s", text(t, rep))
	}
	var rowsIn, valid, quarantined, superseded int64
	curatedPerDay := map[string]int64{}
	for _, s := range w.specs {
		rowsIn += int64(len(s.valid) + len(s.quarantined) + len(s.superseded))
		valid += int64(len(s.valid))
		quarantined += int64(len(s.quarantined))
		superseded += int64(len(s.superseded))
		for _, r := range s.valid {
			curatedPerDay[civil.DateOf(r.collected).String()]++
		}
	}
	bqPerDay := map[string]int64{}
	patients := map[string]bool{}
	for _, r := range w.bqRows {
		bqPerDay[civil.DateOf(r.CollectedAt).String()]++
		patients[r.PatientID] = true
	}
	if rep.Files != len(w.specs) || rep.Done != len(w.specs) || rep.Failed != 0 || rep.NotFinished != 0 || rep.LineageOnly != 0 {
		t.Errorf("files %d done %d failed %d not finished %d lineage only %d, want %d done", rep.Files, rep.Done, rep.Failed, rep.NotFinished, rep.LineageOnly, len(w.specs))
	}
	if rep.RowsIn != rowsIn || rep.RowsValid != valid || rep.RowsQuarantined != quarantined || rep.RowsSuperseded != superseded {
		t.Errorf("rows in/valid/quarantined/superseded %d/%d/%d/%d, want %d/%d/%d/%d",
			rep.RowsIn, rep.RowsValid, rep.RowsQuarantined, rep.RowsSuperseded, rowsIn, valid, quarantined, superseded)
	}
	if rep.CuratedFiles != len(w.curated) || rep.QuarantineFiles != len(w.quarantine) {
		t.Errorf("curated files %d, quarantine files %d; want %d and %d", rep.CuratedFiles, rep.QuarantineFiles, len(w.curated), len(w.quarantine))
	}
	if len(rep.Days) != len(curatedPerDay) {
		t.Fatalf("days %+v, want %d", rep.Days, len(curatedPerDay))
	}
	for _, d := range rep.Days {
		if d.CuratedRows != curatedPerDay[d.Day] || d.LineageRows != curatedPerDay[d.Day] || d.BigQueryRows != bqPerDay[d.Day] ||
			d.Distinct != bqPerDay[d.Day] || !d.Loaded || !d.StagingStartedAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("day %+v: want %d curated and lineage rows, %d distinct and in BigQuery, loaded", d, curatedPerDay[d.Day], bqPerDay[d.Day])
		}
	}
	// The re-sent result makes one day's curated rows exceed its distinct
	// keys: the world exercises bq_load's deduplication.
	if d := rep.Days[len(rep.Days)-1]; d.CuratedRows != d.Distinct+1 {
		t.Errorf("last day %+v: want one duplicate (sample, test)", d)
	}
	if rep.BigQueryRows != int64(len(w.bqRows)) || rep.Patients != len(patients) || rep.Results != int64(len(w.bqRows)) {
		t.Errorf("bigquery rows %d, patients %d, results %d; want %d, %d, %d", rep.BigQueryRows, rep.Patients, rep.Results, len(w.bqRows), len(patients), len(w.bqRows))
	}

	out := text(t, rep)
	for _, want := range []string{"all invariants hold", "2026-03-01", "2026-03-02", "superseded"} {
		if !strings.Contains(out, want) {
			t.Errorf("report text lacks %q:\n%s", want, out)
		}
	}
	var back Report
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.RowsIn != rep.RowsIn || len(back.Days) != len(rep.Days) || back.Days[0].CuratedRows != rep.Days[0].CuratedRows ||
		!back.Days[0].StagingStartedAt.Equal(rep.Days[0].StagingStartedAt) || back.Violations == nil {
		t.Errorf("JSON round trip: %s", data)
	}
}

func text(t *testing.T, rep *Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := rep.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n += len(p); f.n > 100 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWrite(t *testing.T) {
	t.Parallel()
	rep := &Report{Prefix: "lab", Days: []Day{{Day: "2026-03-02"}}, Violations: []Violation{{Invariant: InvariantSummary, Subject: "P1/2345-7", Detail: "count 1, lab.results 2"}}}
	if err := rep.Write(&failingWriter{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Write to a failing writer: %v", err)
	}
	var buf bytes.Buffer
	if err := rep.Write(&buf); err != nil || !strings.Contains(buf.String(), "1 violation:\n  summary  P1/2345-7  count 1, lab.results 2") {
		t.Errorf("Write: %v\n%s", err, buf.String())
	}
	for range MaxShown + 5 {
		rep.Violations = append(rep.Violations, Violation{Invariant: InvariantDayCounts, Subject: "2026-03-02", Detail: "day not loaded"})
	}
	buf.Reset()
	if err := rep.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); strings.Count(out, "day not loaded") != MaxShown || !strings.Contains(out, "and 5 more day_counts violations") ||
		!strings.Contains(out, fmt.Sprintf("%d violations:", MaxShown+6)) || !strings.Contains(out, "P1/2345-7") {
		t.Errorf("Write of %d violations:\n%s", len(rep.Violations), out)
	}
}

func TestPhysicalLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{in: "", want: 0},
		{in: "h", want: 1},
		{in: "h\n", want: 1},
		{in: "h\na", want: 2},
		{in: "h\na\n", want: 2},
		{in: "h\r\n\r\na\r\n", want: 3},
		{in: "\n\n", want: 2},
		{in: "h\n" + strings.Repeat("x", 600<<10), want: 2}, // a last line longer than the read buffer
	} {
		got, err := physicalLines(strings.NewReader(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("physicalLines(%.20q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// TestProcessOutputs reads what the real process wrote for a simulator
// file (testdata/README.md says how it was made): every line of the raw
// file is in exactly one of the curated Parquet and the quarantine CSV,
// and the counts are those of process's report.
func TestProcessOutputs(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("testdata", "v3.csv"))
	if err != nil {
		t.Fatal(err)
	}
	pq, err := os.ReadFile(filepath.Join("testdata", "v3.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	qcsv, err := os.ReadFile(filepath.Join("testdata", "v3.quarantine.csv"))
	if err != nil {
		t.Fatal(err)
	}
	repJSON, err := os.ReadFile(filepath.Join("testdata", "v3.report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		RowsIn          int64 `json:"rows_in"`
		RowsValid       int64 `json:"rows_valid"`
		RowsQuarantined int64 `json:"rows_quarantined"`
		RowsSuperseded  int64 `json:"rows_superseded"`
		Days            []struct {
			Date string `json:"date"`
			Rows int64  `json:"rows"`
		} `json:"days"`
	}
	if err := json.Unmarshal(repJSON, &want); err != nil {
		t.Fatal(err)
	}
	if want.RowsSuperseded == 0 || want.RowsQuarantined == 0 || raw[len(raw)-1] == '\n' {
		t.Fatalf("testdata no longer has superseded and quarantined rows and a last line without a line end")
	}

	lines, err := physicalLines(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parseCurated(t.Context(), pq)
	if err != nil {
		t.Fatal(err)
	}
	qrows, err := parseQuarantine(qcsv)
	if err != nil {
		t.Fatal(err)
	}
	src := source{"robot=R001/date=2026-01-05/v3.csv", 1} // process clean's --source and generation
	var l sourceLines
	perDay := map[string]int64{}
	for _, r := range rows {
		if r.src != src || r.sample == "" || r.test == "" {
			t.Fatalf("curated row %+v, want source %v and ids", r, src)
		}
		l.curated = append(l.curated, r.line)
		perDay[r.day.String()]++
	}
	for _, q := range qrows {
		if q.superseded {
			l.superseded = append(l.superseded, q.line)
		} else {
			l.quarantined = append(l.quarantined, q.line)
		}
	}
	if lines-1 != want.RowsIn || int64(len(l.curated)) != want.RowsValid || int64(len(l.quarantined)) != want.RowsQuarantined || int64(len(l.superseded)) != want.RowsSuperseded {
		t.Errorf("lines %d, curated %d, quarantined %d, superseded %d; process reported %+v",
			lines-1, len(l.curated), len(l.quarantined), len(l.superseded), want)
	}
	for _, d := range want.Days {
		if perDay[d.Date] != d.Rows {
			t.Errorf("day %s: %d curated rows, process reported %d", d.Date, perDay[d.Date], d.Rows)
		}
	}
	a := &auditor{rep: &Report{}}
	a.checkLines("v3.csv", lines-1, &l)
	if len(a.rep.Violations) != 0 {
		t.Errorf("violations on process's own outputs: %+v", a.rep.Violations)
	}
	// The same check sees a line lost.
	a.checkLines("v3.csv", lines, &l)
	if len(a.rep.Violations) != 1 || !strings.Contains(a.rep.Violations[0].Detail, "neither") {
		t.Errorf("one line more in the raw file: violations %+v", a.rep.Violations)
	}
}
