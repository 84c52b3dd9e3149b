package clean

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/civil"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/labplatform/platform/contracts/schema"
	"github.com/labplatform/platform/testenv/robotsim"
)

// fileTime is the robot simulator's default file time; tests clean as if it
// were now, so its future-timestamp rows are in the future.
var fileTime = time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)

// curated is one curated row, as a test reads it back.
type curated struct {
	day                   civil.Date
	patient, test, sample string
	status, flag, unit    string
	origUnit, fw, version string
	value, orig           float64
	refLow, refHigh       string // "null" or the value
	collected, analyzed   time.Time
	line                  int64
}

// memSink keeps everything Clean produces.
type memSink struct {
	rows        []curated
	quarantined []Quarantined
	results     []Result
	err         error // returned by every call, to test error paths
}

func (s *memSink) Curated(d civil.Date, rec arrow.RecordBatch) error {
	col := func(name string) arrow.Array { return rec.Column(schema.Index(name)) }
	str := func(name string, i int) string { return strings.Clone(col(name).(*array.String).Value(i)) } // the batch is reused after the call
	f64 := func(name string, i int) float64 { return col(name).(*array.Float64).Value(i) }
	optF := func(name string, i int) string {
		if col(name).IsNull(i) {
			return "null"
		}
		return fmt.Sprint(f64(name, i))
	}
	ts := func(name string, i int) time.Time {
		a := col(name).(*array.Timestamp)
		if a.IsNull(i) {
			return time.Time{}
		}
		return time.UnixMicro(int64(a.Value(i))).UTC()
	}
	for i := range int(rec.NumRows()) {
		s.rows = append(s.rows, curated{
			day: d, patient: str(schema.PatientID, i), test: str(schema.TestCode, i), sample: str(schema.SampleID, i),
			status: str(schema.Status, i), flag: str(schema.Flag, i), unit: str(schema.Unit, i),
			origUnit: str(schema.OriginalUnit, i), fw: str(schema.InstrumentFW, i), version: str(schema.SchemaVersion, i),
			value: f64(schema.Value, i), orig: f64(schema.OriginalValue, i),
			refLow: optF(schema.RefLow, i), refHigh: optF(schema.RefHigh, i),
			collected: ts(schema.CollectedAt, i), analyzed: ts(schema.AnalyzedAt, i),
			line: col(schema.SourceLine).(*array.Int64).Value(i),
		})
	}
	return s.err
}

func (s *memSink) Quarantine(q *Quarantined) error {
	c := *q
	c.Raw = bytes.Clone(q.Raw)
	c.Reasons = slices.Clone(q.Reasons)
	s.quarantined = append(s.quarantined, c)
	return s.err
}

func (s *memSink) Result(r *Result) error {
	s.results = append(s.results, *r)
	return s.err
}

func cleanString(t *testing.T, input string, opts Options) (*Report, *memSink) {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return fileTime }
	}
	s := &memSink{}
	rep, err := Clean(context.Background(), strings.NewReader(input), Source{Object: "robot=R001/date=2026-01-05/f.csv", Generation: 7, Robot: "R001"}, s, opts)
	if err != nil {
		t.Fatalf("Clean: %v", err)
	}
	checkAccounting(t, rep, s)
	return rep, s
}

// checkAccounting holds the identity rows_in = valid + quarantined +
// superseded, and that every data line comes out exactly once.
func checkAccounting(t *testing.T, rep *Report, s *memSink) {
	t.Helper()
	if !rep.Balanced() {
		t.Errorf("rows_in %d != valid %d + quarantined %d + superseded %d", rep.RowsIn, rep.RowsValid, rep.RowsQuarantined, rep.RowsSuperseded)
	}
	if int64(len(s.rows)) != rep.RowsValid {
		t.Errorf("%d curated rows, report says %d valid", len(s.rows), rep.RowsValid)
	}
	seen := map[int64]string{}
	see := func(line int64, where string) {
		if prev, ok := seen[line]; ok {
			t.Errorf("line %d is in %s and %s", line, prev, where)
		}
		seen[line] = where
	}
	var superseded int64
	for _, r := range s.rows {
		see(r.line, "curated")
	}
	for _, q := range s.quarantined {
		see(q.Line, "quarantine")
		if slices.Equal(q.Reasons, []string{ReasonSuperseded}) {
			superseded++
		}
	}
	if superseded != rep.RowsSuperseded {
		t.Errorf("%d superseded rows handed out, report says %d", superseded, rep.RowsSuperseded)
	}
	if int64(len(seen)) != rep.RowsIn {
		t.Errorf("%d distinct lines came out, rows_in is %d", len(seen), rep.RowsIn)
	}
	for i := int64(2); i < 2+rep.RowsIn; i++ {
		if _, ok := seen[i]; !ok {
			t.Errorf("line %d is nowhere", i)
			break
		}
	}
	if !slices.IsSortedFunc(s.rows, func(a, b curated) int {
		return strings.Compare(a.patient+"\x00"+a.test+"\x00"+a.sample, b.patient+"\x00"+b.test+"\x00"+b.sample)
	}) && len(rep.Days) == 1 {
		t.Error("curated rows are not sorted by patient, test, sample")
	}
}

// kindReasons maps the simulator's malformed kinds to our reason codes.
var kindReasons = map[robotsim.MalformedKind]string{
	robotsim.FieldCount:      ReasonWrongColumnCount,
	robotsim.BadNumber:       ReasonBadValue,
	robotsim.UnknownTest:     ReasonUnknownTest,
	robotsim.UnknownUnit:     ReasonUnknownUnit,
	robotsim.OutOfRange:      ReasonImplausibleValue,
	robotsim.FutureTimestamp: ReasonFutureTimestamp,
	robotsim.TruncatedLine:   ReasonTruncatedLine,
}

// TestCleanGeneratedFiles cleans simulator files of every version with every
// kind of malformed row and checks each line's fate against what the
// simulator says it wrote.
func TestCleanGeneratedFiles(t *testing.T) {
	for _, version := range []string{"v1", "v2", "v3"} {
		for _, alt := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/alternate-units=%v", version, alt), func(t *testing.T) {
				var buf bytes.Buffer
				st, err := robotsim.Generate(&buf, robotsim.GenerateOptions{
					Version: version, Rows: 5000, Seed: 42, Malformed: 0.05, Corrected: 0.03,
					TruncatedLastLine: true, AlternateUnits: alt, Patients: 300,
				})
				if err != nil {
					t.Fatal(err)
				}
				rep, s := cleanString(t, buf.String(), Options{BatchRows: 777})
				if rep.SchemaVersion != version {
					t.Errorf("schema version %q, want %q", rep.SchemaVersion, version)
				}
				if rep.RowsIn != int64(st.Rows) {
					t.Errorf("rows_in %d, simulator wrote %d", rep.RowsIn, st.Rows)
				}
				want := map[int64]string{}
				for _, m := range st.MalformedLines {
					want[int64(m.Line)] = kindReasons[m.Kind]
				}
				got := map[int64]string{}
				for _, q := range s.quarantined {
					if q.Reasons[0] != ReasonSuperseded {
						got[q.Line] = q.Reasons[0]
					}
				}
				for line, reason := range want {
					if got[line] != reason {
						t.Errorf("line %d: quarantined as %q, want %q", line, got[line], reason)
					}
				}
				for line, reason := range got {
					if _, ok := want[line]; !ok {
						t.Errorf("line %d quarantined as %q, but the simulator wrote it valid", line, reason)
					}
				}
				if rep.RowsSuperseded != int64(st.Corrected) {
					t.Errorf("superseded %d, simulator corrected %d results", rep.RowsSuperseded, st.Corrected)
				}
				if rep.RowsValid != int64(st.Valid-st.Corrected) {
					t.Errorf("valid %d, want %d (simulator valid %d minus %d corrected)", rep.RowsValid, st.Valid-st.Corrected, st.Valid, st.Corrected)
				}
				if len(s.results) != len(s.rows) {
					t.Errorf("%d results for %d curated rows", len(s.results), len(s.rows))
				}
				for _, r := range s.rows {
					if r.version != version {
						t.Fatalf("row schema_version %q", r.version)
					}
				}
			})
		}
	}
}

// TestSpilledRunsMatchInMemory forces a tiny memory budget: the output must
// be identical to the one-run output.
func TestSpilledRunsMatchInMemory(t *testing.T) {
	var buf bytes.Buffer
	if _, err := robotsim.Generate(&buf, robotsim.GenerateOptions{Version: "v3", Rows: 20000, Seed: 7, Malformed: 0.01, Corrected: 0.05, Patients: 500}); err != nil {
		t.Fatal(err)
	}
	one, s1 := cleanString(t, buf.String(), Options{})
	many, s2 := cleanString(t, buf.String(), Options{RunBytes: 64 << 10})
	if one.Runs != 1 || many.Runs < 10 {
		t.Fatalf("runs: %d and %d, want 1 and many", one.Runs, many.Runs)
	}
	if !slices.EqualFunc(s1.rows, s2.rows, func(a, b curated) bool { return a == b }) {
		t.Error("curated rows differ between one run and spilled runs")
	}
	if !slices.EqualFunc(s1.results, s2.results, func(a, b Result) bool { return a == b }) {
		t.Error("results differ between one run and spilled runs")
	}
	if one.RowsSuperseded != many.RowsSuperseded || one.RowsValid != many.RowsValid {
		t.Errorf("counts differ: %+v vs %+v", one, many)
	}
}
