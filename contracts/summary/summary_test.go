package summary_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/summary"
)

const tol = 1e-9

// naive summarises values the textbook way: two passes, no merging.
func naive(values []float64) summary.TestSummary {
	s := summary.TestSummary{Count: int64(len(values))}
	if len(values) == 0 {
		return s
	}
	sum := 0.0
	s.Min, s.Max = values[0], values[0]
	for _, v := range values {
		sum += v
		s.Min, s.Max = min(s.Min, v), max(s.Max, v)
	}
	s.Mean = sum / float64(len(values))
	for _, v := range values {
		s.M2 += (v - s.Mean) * (v - s.Mean)
	}
	return s
}

// merged summarises values one by one through Merge, as a writer does.
func merged(values []float64) summary.TestSummary {
	var s summary.TestSummary
	for _, v := range values {
		s = summary.Merge(s, single(v))
	}
	return s
}

func single(v float64) summary.TestSummary {
	return summary.TestSummary{Count: 1, Mean: v, Min: v, Max: v}
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func checkMoments(t *testing.T, what string, got, want summary.TestSummary) {
	t.Helper()
	if got.Count != want.Count || !near(got.Mean, want.Mean) || !near(got.M2, want.M2) {
		t.Errorf("%s: count/mean/m2 = %d/%.12g/%.12g, want %d/%.12g/%.12g",
			what, got.Count, got.Mean, got.M2, want.Count, want.Mean, want.M2)
	}
	if want.Count > 0 && (got.Min != want.Min || got.Max != want.Max) {
		t.Errorf("%s: min/max = %g/%g, want %g/%g", what, got.Min, got.Max, want.Min, want.Max)
	}
}

func TestMergeHalvesEqualsWhole(t *testing.T) {
	values := []float64{5.1, 4.8, 5.6, 7.2, 3.9, 4.4, 5.0, 6.1, 4.7}
	whole := naive(values)
	for split := 0; split <= len(values); split++ {
		t.Run(fmt.Sprintf("split=%d", split), func(t *testing.T) {
			a, b := naive(values[:split]), naive(values[split:])
			checkMoments(t, "Merge(a, b)", summary.Merge(a, b), whole)
			checkMoments(t, "Merge(b, a)", summary.Merge(b, a), whole)
		})
	}
}

func TestMergeEdgeCases(t *testing.T) {
	empty := summary.TestSummary{}
	one := single(4.2)
	tests := []struct {
		name string
		a, b summary.TestSummary
		want summary.TestSummary
	}{
		{name: "empty+empty", a: empty, b: empty, want: empty},
		{name: "empty+one", a: empty, b: one, want: naive([]float64{4.2})},
		{name: "one+empty", a: one, b: empty, want: naive([]float64{4.2})},
		{name: "one+one", a: one, b: single(6.2), want: naive([]float64{4.2, 6.2})},
		{name: "one+many", a: one, b: naive([]float64{1, 2, 3}), want: naive([]float64{4.2, 1, 2, 3})},
		{name: "many+one", a: naive([]float64{1, 2, 3}), b: one, want: naive([]float64{1, 2, 3, 4.2})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := summary.Merge(tc.a, tc.b)
			checkMoments(t, "Merge", got, tc.want)
			if got.Count == 1 && (got.Variance() != 0 || got.StdDev() != 0) {
				t.Errorf("one value: variance %g, stddev %g, want 0", got.Variance(), got.StdDev())
			}
		})
	}
}

func TestMergeCombinesLastRecentAbnormalUnit(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	res := func(id string, hours int, status string) summary.Result {
		return summary.Result{SampleID: id, Value: float64(hours), Flag: "N", Status: status, CollectedAt: t0.Add(time.Duration(hours) * time.Hour)}
	}
	build := func(unit string, abnormal int64, rs ...summary.Result) summary.TestSummary {
		s := summary.TestSummary{Unit: unit}
		for _, r := range rs {
			s = summary.Merge(s, summary.TestSummary{Count: 1, Mean: r.Value, Min: r.Value, Max: r.Value, Last: r, Recent: []summary.Result{r}})
		}
		s.Abnormal = abnormal
		return s
	}
	var as, bs []summary.Result
	for i := range 8 {
		as = append(as, res(fmt.Sprintf("A%02d", i), 2*i, "final"))   // even hours
		bs = append(bs, res(fmt.Sprintf("B%02d", i), 2*i+1, "final")) // odd hours
	}
	// A tie on collected_at: the higher status wins, then the greater sample id.
	tieLow := res("Z-prelim", 16, "preliminary")
	tieHigh := res("A-corr", 16, "corrected")
	a := build("mmol/L", 2, append(as, tieLow)...)
	b := build("", 3, append(bs, tieHigh)...)
	got := summary.Merge(a, b)
	if got.Unit != "mmol/L" || got.Abnormal != 5 || got.Count != 18 {
		t.Errorf("unit %q abnormal %d count %d, want mmol/L 5 18", got.Unit, got.Abnormal, got.Count)
	}
	if got.Last != tieHigh {
		t.Errorf("Last = %+v, want %+v", got.Last, tieHigh)
	}
	wantIDs := []string{"A-corr", "Z-prelim", "B07", "A07", "B06", "A06", "B05", "A05", "B04", "A04"}
	var ids []string
	for _, r := range got.Recent {
		ids = append(ids, r.SampleID)
	}
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("Recent = %v, want %v", ids, wantIDs)
	}
	if got.Recent[0] != got.Last {
		t.Errorf("Recent[0] %+v is not Last %+v", got.Recent[0], got.Last)
	}
	if len(a.Recent) != 9 || a.Recent[0].SampleID != "Z-prelim" {
		t.Errorf("Merge modified its argument: a.Recent = %+v", a.Recent)
	}
}

func TestRemoveIsInverse(t *testing.T) {
	values := []float64{5.1, 4.8, 5.6, 7.2, 3.9, 4.4, 5.0, 6.1, 4.7}
	for i, v := range values {
		rest := slices.Delete(slices.Clone(values), i, i+1)
		got := summary.Remove(naive(values), v)
		want := naive(rest)
		want.Min, want.Max = naive(values).Min, naive(values).Max // Remove leaves them
		checkMoments(t, fmt.Sprintf("remove values[%d]", i), got, want)
	}
	t.Run("only value", func(t *testing.T) {
		got := summary.Remove(single(3), 3)
		if got.Count != 0 || got.Mean != 0 || got.M2 != 0 {
			t.Errorf("Remove of the only value = %+v, want empty moments", got)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if got := summary.Remove(summary.TestSummary{}, 3); got.Count != 0 {
			t.Errorf("Remove from empty = %+v", got)
		}
	})
	t.Run("down to one value", func(t *testing.T) {
		got := summary.Remove(naive([]float64{1e9 + 0.1, 1e9 + 0.3}), 1e9+0.3)
		if got.Count != 1 || got.M2 != 0 || !near(got.Mean, 1e9+0.1) {
			t.Errorf("got %+v, want one value 1e9+0.1 with M2 0", got)
		}
	})
	t.Run("merge then remove", func(t *testing.T) {
		base := naive([]float64{10, 11, 12.5, 9})
		for _, v := range []float64{-3, 0, 10.6, 1e6} {
			got := summary.Remove(summary.Merge(base, single(v)), v)
			want := base
			want.Min, want.Max = min(base.Min, v), max(base.Max, v) // Remove leaves them
			checkMoments(t, fmt.Sprintf("Remove(Merge(s, %g))", v), got, want)
		}
	})
}

// TestMergeRandomSplits: however results are split into parts and merged,
// in whatever order, the summary equals the one over all of them; and
// removing values one by one walks back through every prefix.
func TestMergeRandomSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		n := rng.IntN(60)
		values := make([]float64, n)
		offset := []float64{0, 100, 1e6}[round%3] // shifted data tests cancellation
		for i := range values {
			values[i] = offset + rng.NormFloat64()*3
		}
		whole := naive(values)

		// Random partition into parts (cut points may repeat: empty parts),
		// merged in a random tree order.
		cuts := []int{0, n}
		for range rng.IntN(8) {
			cuts = append(cuts, rng.IntN(n+1))
		}
		slices.Sort(cuts)
		var parts []summary.TestSummary
		for i := 1; i < len(cuts); i++ {
			parts = append(parts, naive(values[cuts[i-1]:cuts[i]]))
		}
		for len(parts) > 1 {
			i := rng.IntN(len(parts) - 1)
			parts[i] = summary.Merge(parts[i], parts[i+1])
			parts = slices.Delete(parts, i+1, i+2)
		}
		checkMoments(t, fmt.Sprintf("round %d (n=%d)", round, n), parts[0], whole)
		checkMoments(t, fmt.Sprintf("round %d sequential", round), merged(values), whole)

		s := whole
		for k := n - 1; k >= 0; k-- {
			s = summary.Remove(s, values[k])
			want := naive(values[:k])
			if !near(s.Mean, want.Mean) || math.Abs(s.M2-want.M2) > 1e-6*math.Max(1, whole.M2) || s.Count != want.Count {
				t.Fatalf("round %d: after removing down to %d values: %+v, want %+v", round, k, s, want)
			}
		}
	}
}

func TestVariance(t *testing.T) {
	s := naive([]float64{2, 4, 4, 4, 5, 5, 7, 9})
	if !near(s.Variance(), 32.0/7) || !near(s.StdDev(), math.Sqrt(32.0/7)) {
		t.Errorf("variance %g stddev %g, want %g %g", s.Variance(), s.StdDev(), 32.0/7, math.Sqrt(32.0/7))
	}
	if v := (summary.TestSummary{}).Variance(); v != 0 {
		t.Errorf("empty variance = %g", v)
	}
}

func TestStatusRankAndNewer(t *testing.T) {
	if !(summary.StatusRank("corrected") > summary.StatusRank("final") &&
		summary.StatusRank("final") > summary.StatusRank("preliminary") &&
		summary.StatusRank("preliminary") > summary.StatusRank("bogus")) {
		t.Error("want corrected > final > preliminary > unknown")
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		a, b summary.Result
		want bool
	}{
		{name: "later collected", a: summary.Result{SampleID: "A", CollectedAt: t0.Add(time.Microsecond), Status: "preliminary"}, b: summary.Result{SampleID: "B", CollectedAt: t0, Status: "corrected"}, want: true},
		{name: "earlier collected", a: summary.Result{SampleID: "B", CollectedAt: t0, Status: "corrected"}, b: summary.Result{SampleID: "A", CollectedAt: t0.Add(time.Second), Status: "final"}, want: false},
		{name: "tie, higher status", a: summary.Result{SampleID: "A", CollectedAt: t0, Status: "final"}, b: summary.Result{SampleID: "B", CollectedAt: t0, Status: "preliminary"}, want: true},
		{name: "tie, greater sample", a: summary.Result{SampleID: "B", CollectedAt: t0, Status: "final"}, b: summary.Result{SampleID: "A", CollectedAt: t0, Status: "final"}, want: true},
		{name: "same", a: summary.Result{SampleID: "A", CollectedAt: t0, Status: "final"}, b: summary.Result{SampleID: "A", CollectedAt: t0, Status: "final"}, want: false},
	}
	for _, tc := range tests {
		if got := summary.Newer(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: Newer = %v, want %v", tc.name, got, tc.want)
		}
	}
}
