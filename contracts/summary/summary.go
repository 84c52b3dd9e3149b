package summary

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/labplatform/platform/contracts/robotcsv"
)

// RecentLen is how many results TestSummary.Recent keeps.
const RecentLen = 10

// Top-level field names of a patient document.
const (
	FieldPatientID = "patient_id"
	FieldTests     = "tests"
	FieldUpdatedAt = "updated_at"
)

// SummaryFields are the fields readers select: the summary, without the
// ledger a document not yet migrated still holds (FieldLegacyCounted).
var SummaryFields = []string{FieldPatientID, FieldTests, FieldUpdatedAt}

// Patient is the document patients/<patient_id>.
type Patient struct {
	PatientID string `firestore:"patient_id"`
	// Tests maps a test code (LOINC) to its summary.
	Tests map[string]*TestSummary `firestore:"tests"`
	// UpdatedAt is when a result last changed the document.
	UpdatedAt time.Time `firestore:"updated_at"`
}

// TestSummary aggregates the counted results of one test of one patient.
// A summary with Count 0 is empty: its other fields mean nothing.
type TestSummary struct {
	// Unit is the test's canonical UCUM unit; every value is in it.
	Unit  string  `firestore:"unit"`
	Count int64   `firestore:"count"`
	Mean  float64 `firestore:"mean"`
	// M2 is the sum of squared deviations from Mean.
	M2  float64 `firestore:"m2"`
	Min float64 `firestore:"min"`
	Max float64 `firestore:"max"`
	// Abnormal counts the results whose flag is not "N".
	Abnormal int64 `firestore:"abnormal"`
	// Last is the newest result (see Newer): Recent[0].
	Last Result `firestore:"last"`
	// Recent holds the RecentLen newest results, newest first.
	Recent []Result `firestore:"recent"`
}

// Result is one result as a summary shows it.
type Result struct {
	SampleID    string    `firestore:"sample_id"`
	Value       float64   `firestore:"value"`
	Flag        string    `firestore:"flag"`
	Status      string    `firestore:"status"`
	CollectedAt time.Time `firestore:"collected_at"`
}

// Counted is a ledger entry: the result of one sample counted in a test's
// summary, with what is needed to undo it (Value, Flag), to rank a later
// result for the same sample (Status, AnalyzedAt) and to rebuild Last and
// Recent (CollectedAt).
type Counted struct {
	Value       float64   `firestore:"value"`
	Flag        string    `firestore:"flag"`
	Status      string    `firestore:"status"`
	AnalyzedAt  time.Time `firestore:"analyzed_at,omitempty"` // zero: the robot did not say
	CollectedAt time.Time `firestore:"collected_at"`
}

// Result returns the entry as a summary shows it.
func (c Counted) Result(sampleID string) Result {
	return Result{SampleID: sampleID, Value: c.Value, Flag: c.Flag, Status: c.Status, CollectedAt: c.CollectedAt}
}

// Abnormal reports whether a flag counts as abnormal: anything but "N".
func Abnormal(flag string) bool { return flag != "N" }

// StatusRank orders result statuses: corrected (3) > final (2) >
// preliminary (1) > anything else (0).
func StatusRank(status string) int {
	switch status {
	case robotcsv.StatusCorrected:
		return 3
	case robotcsv.StatusFinal:
		return 2
	case robotcsv.StatusPreliminary:
		return 1
	}
	return 0
}

// Newer reports whether a is more recent than b: collected later, or at the
// same time with a higher status rank, or then with a greater sample id.
func Newer(a, b Result) bool { return compareRecency(a, b) > 0 }

func compareRecency(a, b Result) int {
	if c := a.CollectedAt.Compare(b.CollectedAt); c != 0 {
		return c
	}
	if c := cmp.Compare(StatusRank(a.Status), StatusRank(b.Status)); c != 0 {
		return c
	}
	return cmp.Compare(a.SampleID, b.SampleID)
}

// NewestFirst sorts rs newest first (see Newer) and returns at most the
// RecentLen newest, reusing rs's storage.
func NewestFirst(rs []Result) []Result {
	slices.SortFunc(rs, func(a, b Result) int { return compareRecency(b, a) })
	if len(rs) > RecentLen {
		rs = rs[:RecentLen:RecentLen]
	}
	return rs
}

// Variance is the sample variance M2/(Count-1); 0 for fewer than two
// results.
func (s TestSummary) Variance() float64 {
	if s.Count < 2 {
		return 0
	}
	return s.M2 / float64(s.Count-1)
}

// StdDev is the sample standard deviation, the square root of Variance.
func (s TestSummary) StdDev() float64 { return math.Sqrt(s.Variance()) }

// Merge returns the summary of the union of the results summarised by a
// and b, which must not share a sample: Count, Mean and M2 by Chan et al.'s
// formula, Min and Max, Abnormal, Last and Recent (the RecentLen newest of
// both). Unit is a's, or b's when a has none. An empty summary (Count 0) is
// the identity. Merge does not modify a or b.
func Merge(a, b TestSummary) TestSummary {
	unit := a.Unit
	if unit == "" {
		unit = b.Unit
	}
	if b.Count == 0 {
		a.Unit = unit
		a.Recent = slices.Clone(a.Recent)
		return a
	}
	if a.Count == 0 {
		b.Unit = unit
		b.Recent = slices.Clone(b.Recent)
		return b
	}
	na, nb := float64(a.Count), float64(b.Count)
	n := na + nb
	delta := b.Mean - a.Mean
	out := TestSummary{
		Unit:     unit,
		Count:    a.Count + b.Count,
		Mean:     a.Mean + delta*nb/n,
		M2:       a.M2 + b.M2 + delta*delta*na*nb/n,
		Min:      min(a.Min, b.Min),
		Max:      max(a.Max, b.Max),
		Abnormal: a.Abnormal + b.Abnormal,
		Last:     a.Last,
	}
	if Newer(b.Last, a.Last) {
		out.Last = b.Last
	}
	recent := make([]Result, 0, len(a.Recent)+len(b.Recent))
	recent = append(append(recent, a.Recent...), b.Recent...)
	out.Recent = NewestFirst(recent)
	return out
}

// Remove takes one value out of Count, Mean and M2: it undoes Merge of s
// with a one-value summary of value. Min, Max, Abnormal, Last and Recent
// are returned unchanged: they cannot be undone from the aggregate, so the
// caller recomputes them (from the ledger) when the removed result was one
// of them. Removing from an empty summary returns it unchanged; removing the
// only value leaves Count, Mean and M2 at 0.
func Remove(s TestSummary, value float64) TestSummary {
	switch s.Count {
	case 0:
		return s
	case 1:
		s.Count, s.Mean, s.M2 = 0, 0, 0
		return s
	}
	n := float64(s.Count)
	mean := s.Mean - (value-s.Mean)/(n-1)
	s.M2 -= (value - mean) * (value - s.Mean)
	s.Mean = mean
	s.Count--
	if s.Count == 1 || s.M2 < 0 {
		s.M2 = 0 // rounding: one value has no spread, and M2 is never negative
	}
	return s
}
