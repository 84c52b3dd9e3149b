package summary_test

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	contract "github.com/labplatform/platform/contracts/summary"
	"github.com/labplatform/platform/process/internal/summary"
)

// patientData is what the Updater keeps of a patient: its summary document
// and its whole ledger, wherever it is stored.
type patientData struct {
	doc    *contract.Patient
	ledger contract.Ledger
	legacy bool // the ledger is (also) in the document's legacy field
}

// model computes the documents that folding results, in this order, must
// produce, the naive way: pick the winning result of every (patient, test,
// sample), then summarise each test's winners from scratch. Times must be
// UTC microseconds already.
func model(results []summary.Result) map[string]*patientData {
	type key struct{ patient, test, sample string }
	win := map[key]summary.Result{}
	rank := func(r summary.Result) (int, time.Time) { return contract.StatusRank(r.Status), r.AnalyzedAt }
	for _, r := range results {
		k := key{r.PatientID, r.TestCode, r.SampleID}
		old, ok := win[k]
		if ok {
			or, oa := rank(old)
			nr, na := rank(r)
			if nr < or || nr == or && !na.After(oa) {
				continue
			}
		}
		win[k] = r
	}
	type ptest struct{ patient, test string }
	byTest := map[ptest][]summary.Result{}
	for k, r := range win {
		byTest[ptest{k.patient, k.test}] = append(byTest[ptest{k.patient, k.test}], r)
	}
	docs := map[string]*patientData{}
	for pt, rs := range byTest {
		d := docs[pt.patient]
		if d == nil {
			d = &patientData{doc: &contract.Patient{PatientID: pt.patient, Tests: map[string]*contract.TestSummary{}}, ledger: contract.Ledger{}}
			docs[pt.patient] = d
		}
		s := &contract.TestSummary{Unit: rs[0].Unit, Count: int64(len(rs)), Min: math.Inf(1), Max: math.Inf(-1)}
		ledger := map[string]contract.Counted{}
		var shown []contract.Result
		sum := 0.0
		for _, r := range rs {
			sum += r.Value
			s.Min, s.Max = min(s.Min, r.Value), max(s.Max, r.Value)
			if r.Flag != "N" {
				s.Abnormal++
			}
			ledger[r.SampleID] = contract.Counted{Value: r.Value, Flag: r.Flag, Status: r.Status, AnalyzedAt: r.AnalyzedAt, CollectedAt: r.CollectedAt}
			shown = append(shown, contract.Result{SampleID: r.SampleID, Value: r.Value, Flag: r.Flag, Status: r.Status, CollectedAt: r.CollectedAt})
		}
		s.Mean = sum / float64(len(rs))
		for _, r := range rs {
			s.M2 += (r.Value - s.Mean) * (r.Value - s.Mean)
		}
		// Newest first: collected_at, then status rank, then sample id.
		slices.SortFunc(shown, func(a, b contract.Result) int {
			if c := b.CollectedAt.Compare(a.CollectedAt); c != 0 {
				return c
			}
			if c := cmp.Compare(contract.StatusRank(b.Status), contract.StatusRank(a.Status)); c != 0 {
				return c
			}
			return cmp.Compare(b.SampleID, a.SampleID)
		})
		s.Recent = shown[:min(len(shown), 10)]
		s.Last = s.Recent[0]
		d.doc.Tests[pt.test] = s
		d.ledger[pt.test] = ledger
	}
	return docs
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// diffPatient lists how got differs from want, ignoring UpdatedAt; Mean
// and M2 are compared within 1e-9 (relative).
func diffPatient(wantData, gotData *patientData) []string {
	var diffs []string
	add := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	if gotData == nil || gotData.doc == nil {
		return []string{"document missing"}
	}
	want, got := wantData.doc, gotData.doc
	if got.PatientID != want.PatientID {
		add("patient_id %q, want %q", got.PatientID, want.PatientID)
	}
	if len(got.Tests) != len(want.Tests) || len(gotData.ledger) != len(wantData.ledger) {
		add("%d tests / %d ledgers, want %d", len(got.Tests), len(gotData.ledger), len(want.Tests))
	}
	for code, w := range want.Tests {
		g := got.Tests[code]
		if g == nil {
			add("test %s missing", code)
			continue
		}
		if g.Unit != w.Unit || g.Count != w.Count || g.Min != w.Min || g.Max != w.Max || g.Abnormal != w.Abnormal {
			add("test %s: unit %q count %d min %g max %g abnormal %d, want %q %d %g %g %d",
				code, g.Unit, g.Count, g.Min, g.Max, g.Abnormal, w.Unit, w.Count, w.Min, w.Max, w.Abnormal)
		}
		if !near(g.Mean, w.Mean) || !near(g.M2, w.M2) {
			add("test %s: mean %.15g m2 %.15g, want %.15g %.15g", code, g.Mean, g.M2, w.Mean, w.M2)
		}
		if g.Last != w.Last {
			add("test %s: last %+v, want %+v", code, g.Last, w.Last)
		}
		if !slices.Equal(g.Recent, w.Recent) {
			add("test %s: recent %+v, want %+v", code, g.Recent, w.Recent)
		}
		gl, wl := gotData.ledger[code], wantData.ledger[code]
		if len(gl) != len(wl) {
			add("test %s: %d counted, want %d", code, len(gl), len(wl))
		}
		for id, wc := range wl {
			if gc, ok := gl[id]; !ok || gc != wc {
				add("test %s: counted[%s] = %+v (present %v), want %+v", code, id, gc, ok, wc)
			}
		}
	}
	return diffs
}

// Test codes and units of the generated data (LOINC, UCUM).
var genTests = []struct{ code, unit string }{
	{code: "2345-7", unit: "mmol/L"},  // glucose
	{code: "2160-0", unit: "umol/L"},  // creatinine
	{code: "718-7", unit: "g/dL"},     // hemoglobin
	{code: "2823-3", unit: "mmol/L"},  // potassium
	{code: "6690-2", unit: "10*9/L"},  // leukocytes
	{code: "4548-4", unit: "%"},       // HbA1c
	{code: "2951-2", unit: "mmol/L"},  // sodium
	{code: "1742-6", unit: "U/L"},     // ALT
	{code: "17861-6", unit: "mmol/L"}, // calcium
}

func flagFor(v float64) string {
	switch {
	case v < 2:
		return "LL"
	case v < 3.5:
		return "L"
	case v > 9:
		return "HH"
	case v > 7:
		return "H"
	}
	return "N"
}

// dataset is two files of results with everything the rules must handle.
type dataset struct {
	a, b []summary.Result // each sorted by patient id
}

// generate makes two files for patients patients: file a with preliminary
// and final results; file b with finals for a's preliminaries, corrections
// (some twice, some in the same file as their final), re-sent duplicates,
// stray preliminaries after finals and new samples collected before
// everything in a (late arrivals).
func generate(seed uint64, patients int, prefix string) dataset {
	rng := rand.New(rand.NewPCG(seed, 7))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(maxDays int) time.Time {
		return base.Add(time.Duration(rng.Int64N(int64(maxDays)*86400e6)) * time.Microsecond)
	}
	value := func() float64 { return math.Round((1+rng.Float64()*10)*1000) / 1000 }
	var ds dataset
	for p := range patients {
		pid := fmt.Sprintf("%sP%06d", prefix, p)
		var a, b []summary.Result
		nsamples := 1 + rng.IntN(4)
		for s := range nsamples {
			sid := fmt.Sprintf("%s-S%02d", pid, s)
			collected := at(365).Add(180 * 24 * time.Hour) // a: the second half of the time range
			first := rng.IntN(len(genTests))
			for k := range 1 + rng.IntN(4) {
				tc := genTests[(first+k)%len(genTests)]
				v := value()
				r := summary.Result{PatientID: pid, TestCode: tc.code, SampleID: sid, Unit: tc.unit, Flag: flagFor(v),
					Status: "final", Value: v, CollectedAt: collected, AnalyzedAt: collected.Add(time.Hour)}
				if rng.IntN(5) == 0 {
					r.Status = "preliminary"
				}
				a = append(a, r)
				fin := r
				fin.Status, fin.AnalyzedAt = "final", r.AnalyzedAt.Add(time.Hour)
				switch x := rng.IntN(20); {
				case r.Status == "preliminary":
					fin.Value = value()
					fin.Flag = flagFor(fin.Value)
					b = append(b, fin)
				case x < 2: // corrected
					c := fin
					c.Status, c.Value, c.AnalyzedAt = "corrected", value(), fin.AnalyzedAt.Add(time.Hour)
					c.Flag = flagFor(c.Value)
					b = append(b, c)
					if x == 0 { // corrected again, later
						c.Value, c.AnalyzedAt = value(), c.AnalyzedAt.Add(time.Hour)
						c.Flag = flagFor(c.Value)
						b = append(b, c)
					}
				case x == 2: // re-sent duplicate
					b = append(b, r)
				case x == 3: // stray preliminary after the final
					pre := r
					pre.Status, pre.Value = "preliminary", value()
					pre.Flag = flagFor(pre.Value)
					b = append(b, pre)
				case x == 4: // final and its correction in the same file
					c := r
					c.Status, c.Value, c.AnalyzedAt = "corrected", value(), r.AnalyzedAt.Add(2*time.Hour)
					c.Flag = flagFor(c.Value)
					a = append(a, c)
				case x == 5: // preliminary and final in the same file
					a[len(a)-1].Status = "preliminary"
					a = append(a, fin)
				}
			}
		}
		for s := range rng.IntN(3) { // late arrivals: collected before anything in a
			sid := fmt.Sprintf("%s-L%02d", pid, s)
			collected := at(180)
			for _, tc := range genTests[:1+rng.IntN(3)] {
				v := value()
				b = append(b, summary.Result{PatientID: pid, TestCode: tc.code, SampleID: sid, Unit: tc.unit, Flag: flagFor(v),
					Status: "final", Value: v, CollectedAt: collected})
			}
		}
		// Within a patient, any order.
		rng.Shuffle(len(b), func(i, j int) {
			// keep a correction after its final: swap only different samples or tests
			if b[i].SampleID != b[j].SampleID || b[i].TestCode != b[j].TestCode {
				b[i], b[j] = b[j], b[i]
			}
		})
		ds.a = append(ds.a, a...)
		ds.b = append(ds.b, b...)
	}
	return ds
}
