package summary_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	contract "github.com/labplatform/platform/contracts/summary"
	"github.com/labplatform/platform/process/internal/summary"
)

var t0 = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

// glu builds a glucose result of patient P1: sample, value, flag, status,
// collected and analyzed as hours after t0 (analyzed < 0: absent).
func glu(sample string, value float64, flag, status string, collectedH, analyzedH int) summary.Result {
	r := summary.Result{PatientID: "P1", TestCode: "2345-7", SampleID: sample, Unit: "mmol/L", Flag: flag,
		Status: status, Value: value, CollectedAt: t0.Add(time.Duration(collectedH) * time.Hour)}
	if analyzedH >= 0 {
		r.AnalyzedAt = t0.Add(time.Duration(analyzedH) * time.Hour)
	}
	return r
}

// want is what a table test expects of test 2345-7 after the last step.
type want struct {
	changed  int // what the last Fold returned
	count    int64
	mean     float64
	min, max float64
	abnormal int64
	last     string   // sample id of Last
	lastVal  float64  // value of Last
	recent   []string // sample ids of Recent
	statuses string   // "sample=status,..." of the ledger, sorted
}

func TestFold(t *testing.T) {
	tests := []struct {
		name  string
		steps [][]summary.Result // each folded by one Fold call
		want  want
	}{
		{
			name: "late older result does not move last",
			steps: [][]summary.Result{
				{glu("S2", 6, "N", "final", 10, 11)},
				{glu("S1", 4, "N", "final", 2, 30)}, // collected earlier, arrives later
			},
			want: want{changed: 1, count: 2, mean: 5, min: 4, max: 6, last: "S2", lastVal: 6, recent: []string{"S2", "S1"}, statuses: "S1=final,S2=final"},
		},
		{
			name: "corrected replaces and counts once",
			steps: [][]summary.Result{
				{glu("S1", 5, "N", "final", 1, 2), glu("S2", 7, "N", "final", 3, 4)},
				{glu("S1", 6, "N", "corrected", 1, 20)},
			},
			want: want{changed: 1, count: 2, mean: 6.5, min: 6, max: 7, last: "S2", lastVal: 7, recent: []string{"S2", "S1"}, statuses: "S1=corrected,S2=final"},
		},
		{
			name: "correction of the last result changes last's value",
			steps: [][]summary.Result{
				{glu("S1", 5, "N", "final", 1, 2), glu("S2", 7, "N", "final", 3, 4)},
				{glu("S2", 8, "H", "corrected", 3, 20)},
			},
			want: want{changed: 1, count: 2, mean: 6.5, min: 5, max: 8, abnormal: 1, last: "S2", lastVal: 8, recent: []string{"S2", "S1"}, statuses: "S1=final,S2=corrected"},
		},
		{
			name: "preliminary after final is ignored",
			steps: [][]summary.Result{
				{glu("S1", 5, "N", "final", 1, 2)},
				{glu("S1", 9, "H", "preliminary", 1, 30)},
			},
			want: want{changed: 0, count: 1, mean: 5, min: 5, max: 5, last: "S1", lastVal: 5, recent: []string{"S1"}, statuses: "S1=final"},
		},
		{
			name: "final replaces preliminary",
			steps: [][]summary.Result{
				{glu("S1", 9, "H", "preliminary", 1, 2)},
				{glu("S1", 5, "N", "final", 1, 3)},
			},
			want: want{changed: 1, count: 1, mean: 5, min: 5, max: 5, last: "S1", lastVal: 5, recent: []string{"S1"}, statuses: "S1=final"},
		},
		{
			name: "duplicate final is ignored",
			steps: [][]summary.Result{
				{glu("S1", 5, "N", "final", 1, 2)},
				{glu("S1", 5, "N", "final", 1, 2)},
			},
			want: want{changed: 0, count: 1, mean: 5, min: 5, max: 5, last: "S1", lastVal: 5, recent: []string{"S1"}, statuses: "S1=final"},
		},
		{
			name: "same-rank result with other value is a duplicate: first stays",
			steps: [][]summary.Result{
				{glu("S1", 5, "N", "final", 1, -1)},
				{glu("S1", 6, "N", "final", 1, -1)},
			},
			want: want{changed: 0, count: 1, mean: 5, min: 5, max: 5, last: "S1", lastVal: 5, recent: []string{"S1"}, statuses: "S1=final"},
		},
		{
			name: "re-analysed final (later analyzed_at) replaces",
			steps: [][]summary.Result{
				{glu("S1", 5, "N", "final", 1, 2)},
				{glu("S1", 6, "N", "final", 1, 5)},
			},
			want: want{changed: 1, count: 1, mean: 6, min: 6, max: 6, last: "S1", lastVal: 6, recent: []string{"S1"}, statuses: "S1=final"},
		},
		{
			name: "second correction replaces the first; a stale one does not",
			steps: [][]summary.Result{
				{glu("S1", 5, "N", "final", 1, 2)},
				{glu("S1", 6, "N", "corrected", 1, 5)},
				{glu("S1", 7, "N", "corrected", 1, 9), glu("S1", 8, "H", "corrected", 1, 6)},
			},
			want: want{changed: 1, count: 1, mean: 7, min: 7, max: 7, last: "S1", lastVal: 7, recent: []string{"S1"}, statuses: "S1=corrected"},
		},
		{
			name: "final and its correction in one batch count once",
			steps: [][]summary.Result{
				{glu("S1", 5, "N", "final", 1, 2), glu("S1", 4, "N", "corrected", 1, 3), glu("S1", 5, "N", "final", 1, 2)},
			},
			want: want{changed: 1, count: 1, mean: 4, min: 4, max: 4, last: "S1", lastVal: 4, recent: []string{"S1"}, statuses: "S1=corrected"},
		},
		{
			name: "abnormal count drops when a correction is normal",
			steps: [][]summary.Result{
				{glu("S1", 12, "H", "final", 1, 2), glu("S2", 2, "LL", "final", 2, 3), glu("S3", 5, "N", "final", 3, 4)},
				{glu("S1", 5.5, "N", "corrected", 1, 9)},
			},
			want: want{changed: 1, count: 3, mean: 12.5 / 3, min: 2, max: 5.5, abnormal: 1, last: "S3", lastVal: 5, recent: []string{"S3", "S2", "S1"}, statuses: "S1=corrected,S2=final,S3=final"},
		},
		{
			name: "abnormal count rises when a correction is abnormal",
			steps: [][]summary.Result{
				{glu("S1", 5, "N", "final", 1, 2)},
				{glu("S1", 7.5, "H", "corrected", 1, 9)},
			},
			want: want{changed: 1, count: 1, mean: 7.5, min: 7.5, max: 7.5, abnormal: 1, last: "S1", lastVal: 7.5, recent: []string{"S1"}, statuses: "S1=corrected"},
		},
		{
			name: "min recomputed when the corrected value was the min",
			steps: [][]summary.Result{
				{glu("S1", 3, "L", "final", 1, 2), glu("S2", 5, "N", "final", 2, 3), glu("S3", 7, "N", "final", 3, 4)},
				{glu("S1", 6, "N", "corrected", 1, 9)},
			},
			want: want{changed: 1, count: 3, mean: 6, min: 5, max: 7, last: "S3", lastVal: 7, recent: []string{"S3", "S2", "S1"}, statuses: "S1=corrected,S2=final,S3=final"},
		},
		{
			name: "max recomputed when the corrected value was the max",
			steps: [][]summary.Result{
				{glu("S1", 3, "L", "final", 1, 2), glu("S2", 5, "N", "final", 2, 3), glu("S3", 7, "N", "final", 3, 4)},
				{glu("S3", 4, "N", "corrected", 3, 9)},
			},
			want: want{changed: 1, count: 3, mean: 4, min: 3, max: 5, abnormal: 1, last: "S3", lastVal: 4, recent: []string{"S3", "S2", "S1"}, statuses: "S1=final,S2=final,S3=corrected"},
		},
		{
			name: "correction that moves collected_at reorders last and recent",
			steps: [][]summary.Result{
				{glu("S1", 3, "N", "final", 1, 2), glu("S2", 5, "N", "final", 5, 6)},
				{glu("S2", 6, "N", "corrected", 0, 9)}, // the robot had the wrong collection time
			},
			want: want{changed: 1, count: 2, mean: 4.5, min: 3, max: 6, last: "S1", lastVal: 3, recent: []string{"S1", "S2"}, statuses: "S1=final,S2=corrected"},
		},
		{
			name: "same collected_at: higher status, then greater sample id is last",
			steps: [][]summary.Result{
				{glu("S9", 3, "N", "preliminary", 4, 5), glu("S1", 4, "N", "final", 4, 5), glu("S2", 5, "N", "final", 4, 5)},
			},
			want: want{changed: 3, count: 3, mean: 4, min: 3, max: 5, last: "S2", lastVal: 5, recent: []string{"S2", "S1", "S9"}, statuses: "S1=final,S2=final,S9=preliminary"},
		},
		{
			name: "recent keeps the ten newest whatever the arrival order",
			steps: [][]summary.Result{
				{glu("S05", 5, "N", "final", 5, -1), glu("S11", 11, "N", "final", 11, -1), glu("S00", 1, "N", "final", 0, -1)},
				{glu("S03", 3, "N", "final", 3, -1), glu("S08", 8, "N", "final", 8, -1), glu("S01", 1, "N", "final", 1, -1),
					glu("S10", 10, "N", "final", 10, -1), glu("S02", 2, "N", "final", 2, -1)},
				{glu("S06", 6, "N", "final", 6, -1), glu("S09", 9, "N", "final", 9, -1), glu("S04", 4, "N", "final", 4, -1), glu("S07", 7, "N", "final", 7, -1)},
			},
			want: want{changed: 4, count: 12, mean: 67.0 / 12, min: 1, max: 11, last: "S11", lastVal: 11,
				recent:   []string{"S11", "S10", "S09", "S08", "S07", "S06", "S05", "S04", "S03", "S02"},
				statuses: "S00=final,S01=final,S02=final,S03=final,S04=final,S05=final,S06=final,S07=final,S08=final,S09=final,S10=final,S11=final"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := &contract.Patient{PatientID: "P1"}
			ledger := contract.Ledger{}
			var all []summary.Result
			changed := 0
			for _, step := range tc.steps {
				changed = summary.Fold(doc, ledger, step)
				all = append(all, step...)
			}
			w := tc.want
			if changed != w.changed {
				t.Errorf("last Fold changed %d, want %d", changed, w.changed)
			}
			s := doc.Tests["2345-7"]
			if s == nil {
				t.Fatal("no summary of 2345-7")
			}
			if s.Count != w.count || !near(s.Mean, w.mean) || s.Min != w.min || s.Max != w.max || s.Abnormal != w.abnormal || s.Unit != "mmol/L" {
				t.Errorf("count %d mean %g min %g max %g abnormal %d unit %q, want %d %g %g %g %d mmol/L",
					s.Count, s.Mean, s.Min, s.Max, s.Abnormal, s.Unit, w.count, w.mean, w.min, w.max, w.abnormal)
			}
			if s.Last.SampleID != w.last || s.Last.Value != w.lastVal {
				t.Errorf("last = %s (%g), want %s (%g)", s.Last.SampleID, s.Last.Value, w.last, w.lastVal)
			}
			var recent []string
			for _, r := range s.Recent {
				recent = append(recent, r.SampleID)
			}
			if !slices.Equal(recent, w.recent) {
				t.Errorf("recent = %v, want %v", recent, w.recent)
			}
			var statuses []string
			for id, c := range ledger["2345-7"] {
				statuses = append(statuses, id+"="+c.Status)
			}
			slices.Sort(statuses)
			if got := strings.Join(statuses, ","); got != w.statuses {
				t.Errorf("ledger = %s, want %s", got, w.statuses)
			}
			// The incremental document equals the naive recomputation.
			if d := diffPatient(model(all)["P1"], &patientData{doc: doc, ledger: ledger}); d != nil {
				t.Errorf("differs from the model:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

func TestFoldNormalisesTimesAndLeavesInputAlone(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	in := []summary.Result{{PatientID: "P1", TestCode: "2345-7", SampleID: "S1", Unit: "mmol/L", Flag: "N", Status: "final", Value: 5,
		CollectedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456789, berlin)}}
	before := slices.Clone(in)
	doc := &contract.Patient{}
	ledger := contract.Ledger{}
	summary.Fold(doc, ledger, in)
	if in[0] != before[0] {
		t.Errorf("Fold modified its input: %+v", in[0])
	}
	want := time.Date(2026, 1, 2, 2, 4, 5, 123456000, time.UTC)
	c := ledger["2345-7"]["S1"]
	if c.CollectedAt != want || !c.AnalyzedAt.IsZero() || doc.Tests["2345-7"].Last.CollectedAt != want {
		t.Errorf("stored times %v / %v / %v, want %v and zero", c.CollectedAt, c.AnalyzedAt, doc.Tests["2345-7"].Last.CollectedAt, want)
	}
	// A result differing only below the microsecond is the same result.
	again := in[0]
	again.Status = "final"
	again.CollectedAt = again.CollectedAt.Add(100 * time.Nanosecond)
	if n := summary.Fold(doc, ledger, []summary.Result{again}); n != 0 {
		t.Errorf("refolding changed %d", n)
	}
}

// TestFoldRandomMatchesModel folds random data in random chunks and checks
// every patient against the naive model, and that folding everything again
// changes nothing.
func TestFoldRandomMatchesModel(t *testing.T) {
	ds := generate(42, 300, "")
	all := append(slices.Clone(ds.a), ds.b...)
	want := model(all)
	rng := rand.New(rand.NewPCG(3, 4))
	docs := map[string]*patientData{}
	byPatient := map[string][]summary.Result{}
	for _, r := range all {
		byPatient[r.PatientID] = append(byPatient[r.PatientID], r)
	}
	for id, rs := range byPatient {
		d := &patientData{doc: &contract.Patient{PatientID: id}, ledger: contract.Ledger{}}
		for lo := 0; lo < len(rs); {
			hi := lo + 1 + rng.IntN(len(rs)-lo)
			summary.Fold(d.doc, d.ledger, rs[lo:hi])
			lo = hi
		}
		docs[id] = d
		if n := summary.Fold(d.doc, d.ledger, rs); n != 0 {
			t.Errorf("patient %s: folding everything again changed %d", id, n)
		}
	}
	if len(docs) != len(want) {
		t.Fatalf("%d patients, want %d", len(docs), len(want))
	}
	for id, w := range want {
		if d := diffPatient(w, docs[id]); d != nil {
			t.Errorf("patient %s:\n%s", id, strings.Join(d, "\n"))
		}
	}
	t.Logf("%d results, %d patients", len(all), len(want))
}
