package cost

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labplatform/platform/lifecycle/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// rawStandardReport is 100 GiB of raw CSV in one STANDARD object, 10 days
// old, under the shipped policies.
func rawStandardReport(t *testing.T) *Report {
	t.Helper()
	f := policy.Default()
	inv := NewInventory(f, "lab", t0)
	mustAdd(t, inv, policy.RoleRaw, policy.Object{Name: "robot=R001/date=2026-02-19/a.csv", Size: 100 * GiB, Class: policy.Standard, Created: daysAgo(10), Live: true})
	return NewReport(inv, f, testPrices(), t0, 12, Options{})
}

func TestReportRawStandardUnderShippedPolicies(t *testing.T) {
	r := rawStandardReport(t)

	// Now: 100 GiB x $0.020 = $2.00 a month at rest.
	near(t, "current", r.Current.Total, 2.0)
	near(t, "current STANDARD", r.Current.ByClass[policy.Standard], 2.0)
	near(t, "current raw", r.Current.ByRole[policy.RoleRaw], 2.0)

	with, without := r.WithPolicies.Months, r.WithoutPolicies.Months
	if len(with) != 12 || len(without) != 12 {
		t.Fatalf("months = %d and %d, want 12", len(with), len(without))
	}
	// Month 1 (days 0-29, ages 10-39): the object turns 30 on day 20 and
	// moves to NEARLINE. At rest: 20 days STANDARD 100 x 0.020 x 20/30 =
	// 1.333333 + 10 days NEARLINE 100 x 0.010 x 10/30 = 0.333333 = 1.666667.
	// One rewrite: a Class A operation at the NEARLINE rate, 0.10/10,000 =
	// 0.00001. No retrieval (read from STANDARD), no early deletion
	// (STANDARD has no minimum).
	m1 := with[0]
	near(t, "m1 at rest", m1.Cost.AtRest, 100*0.020*20/30+100*0.010*10/30)
	near(t, "m1 operations", m1.Cost.Operations, 0.00001)
	near(t, "m1 retrieval", m1.Cost.Retrieval, 0)
	near(t, "m1 early deletion", m1.Cost.EarlyDeletion, 0)
	near(t, "m1 total", m1.Cost.Total, 100*0.020*20/30+100*0.010*10/30+0.00001)
	near(t, "m1 STANDARD", m1.ByClass[policy.Standard].Total, 100*0.020*20/30)
	near(t, "m1 NEARLINE", m1.ByClass[policy.Nearline].Total, 100*0.010*10/30+0.00001)
	if m1.Transitions != 1 || m1.Deletions != 0 {
		t.Errorf("m1 transitions, deletions = %d, %d, want 1, 0", m1.Transitions, m1.Deletions)
	}
	if m1.BytesByClass[policy.Nearline] != 100*GiB || m1.BytesByClass[policy.Standard] != 0 {
		t.Errorf("m1 bytes by class = %v, want all NEARLINE", m1.BytesByClass)
	}
	// Month 2 (ages 40-69): NEARLINE all month, 100 x 0.010 = 1.00.
	near(t, "m2 total", with[1].Cost.Total, 1.0)
	// Month 3 (days 60-89, ages 70-99): turns 90 on day 80 and moves to
	// COLDLINE. At rest: 20 days NEARLINE 100 x 0.010 x 20/30 = 0.666667 +
	// 10 days COLDLINE 100 x 0.004 x 10/30 = 0.133333 = 0.80. The rewrite
	// reads NEARLINE: retrieval 100 GiB x 0.01 = 1.00, and a Class A
	// operation at the COLDLINE rate, 0.20/10,000 = 0.00002. It was in
	// NEARLINE 60 days (from day 20), past the 30-day minimum: no early
	// deletion.
	m3 := with[2]
	near(t, "m3 at rest", m3.Cost.AtRest, 0.8)
	near(t, "m3 retrieval", m3.Cost.Retrieval, 1.0)
	near(t, "m3 NEARLINE retrieval", m3.ByClass[policy.Nearline].Retrieval, 1.0)
	near(t, "m3 operations", m3.Cost.Operations, 0.00002)
	near(t, "m3 early deletion", m3.Cost.EarlyDeletion, 0)
	near(t, "m3 total", m3.Cost.Total, 1.80002)
	// Months 4-12 (ages 100-369): COLDLINE, 100 x 0.004 = 0.40 a month. The
	// delete at 400 days falls on day 390, after the projection.
	for _, m := range with[3:] {
		near(t, "COLDLINE month", m.Cost.Total, 0.4)
		if m.Transitions != 0 || m.Deletions != 0 {
			t.Errorf("month %d: transitions, deletions = %d, %d, want none", m.Month, m.Transitions, m.Deletions)
		}
	}
	near(t, "total with policies", r.WithPolicies.Total.Total, 1.66667666667+1.0+1.80002+9*0.4)
	near(t, "total retrieval", r.WithPolicies.Total.Retrieval, 1.0)

	// Without policies: STANDARD for ever, $2.00 every month.
	for _, m := range without {
		near(t, "without policies month", m.Cost.Total, 2.0)
		near(t, "without policies STANDARD", m.ByClass[policy.Standard].AtRest, 2.0)
	}
	near(t, "total without policies", r.WithoutPolicies.Total.Total, 24.0)
}

// TestReportChargesWhenLeavingEarly uses a policy that moves objects faster
// than the minimum storage durations: retrieval and early-deletion charges
// must appear on exactly the days the objects leave a class early.
func TestReportChargesWhenLeavingEarly(t *testing.T) {
	f := &policy.File{Version: 1, Buckets: map[string]policy.Bucket{policy.RoleRaw: {Rules: []policy.Rule{
		{Action: policy.Action{Type: policy.ActionSetStorageClass, StorageClass: policy.Nearline},
			Condition: policy.Condition{Age: intp(10), MatchesStorageClass: []policy.Class{policy.Standard}}},
		{Action: policy.Action{Type: policy.ActionSetStorageClass, StorageClass: policy.Coldline},
			Condition: policy.Condition{Age: intp(20), MatchesStorageClass: []policy.Class{policy.Standard, policy.Nearline}}},
		{Action: policy.Action{Type: policy.ActionDelete}, Condition: policy.Condition{Age: intp(50)}},
	}}}}
	inv := NewInventory(f, "lab", t0)
	// Three new 10 GiB STANDARD objects (30 GiB), created now.
	for _, name := range []string{"a", "b", "c"} {
		mustAdd(t, inv, policy.RoleRaw, policy.Object{Name: name, Size: 10 * GiB, Class: policy.Standard, Created: t0, Live: true})
	}
	r := NewReport(inv, f, testPrices(), t0, 3, Options{})
	m1, m2, m3 := r.WithPolicies.Months[0], r.WithPolicies.Months[1], r.WithPolicies.Months[2]

	// Day 10: STANDARD -> NEARLINE, 3 Class A operations at 0.10/10,000 =
	// 0.00003; nothing else (STANDARD: no retrieval, no minimum).
	// Day 20: NEARLINE -> COLDLINE after 10 of NEARLINE's 30 days:
	// retrieval 30 GiB x 0.01 = 0.30, early deletion of the 20 missing days
	// 30 x 0.010 x 20/30 = 0.20, 3 operations at 0.20/10,000 = 0.00006.
	// At rest: 10 days STANDARD 30 x 0.020 x 10/30 = 0.20, 10 days NEARLINE
	// 30 x 0.010 x 10/30 = 0.10, 10 days COLDLINE 30 x 0.004 x 10/30 = 0.04.
	near(t, "m1 at rest", m1.Cost.AtRest, 0.34)
	near(t, "m1 operations", m1.Cost.Operations, 0.00009)
	near(t, "m1 retrieval", m1.Cost.Retrieval, 0.30)
	near(t, "m1 early deletion", m1.Cost.EarlyDeletion, 0.20)
	near(t, "m1 total", m1.Cost.Total, 0.84009)
	near(t, "m1 STANDARD", m1.ByClass[policy.Standard].Total, 0.20)
	nl := m1.ByClass[policy.Nearline]
	near(t, "m1 NEARLINE at rest", nl.AtRest, 0.10)
	near(t, "m1 NEARLINE operations", nl.Operations, 0.00003)
	near(t, "m1 NEARLINE retrieval", nl.Retrieval, 0.30)
	near(t, "m1 NEARLINE early deletion", nl.EarlyDeletion, 0.20)
	cl := m1.ByClass[policy.Coldline]
	near(t, "m1 COLDLINE", cl.Total, 0.04+0.00006)
	near(t, "m1 COLDLINE early deletion", cl.EarlyDeletion, 0)
	if m1.Transitions != 6 || m1.Deletions != 0 {
		t.Errorf("m1 transitions, deletions = %d, %d, want 6, 0", m1.Transitions, m1.Deletions)
	}

	// Day 50: deleted after 30 of COLDLINE's 90 days: early deletion of 60
	// days, 30 x 0.004 x 60/30 = 0.24; no operation, no retrieval. At rest:
	// days 30-49 COLDLINE, 30 x 0.004 x 20/30 = 0.08.
	near(t, "m2 at rest", m2.Cost.AtRest, 0.08)
	near(t, "m2 early deletion", m2.Cost.EarlyDeletion, 0.24)
	near(t, "m2 COLDLINE early deletion", m2.ByClass[policy.Coldline].EarlyDeletion, 0.24)
	near(t, "m2 retrieval", m2.Cost.Retrieval, 0)
	near(t, "m2 operations", m2.Cost.Operations, 0)
	near(t, "m2 total", m2.Cost.Total, 0.32)
	if m2.Transitions != 0 || m2.Deletions != 3 {
		t.Errorf("m2 transitions, deletions = %d, %d, want 0, 3", m2.Transitions, m2.Deletions)
	}
	if len(m2.BytesByClass) != 0 && (m2.BytesByClass[policy.Coldline] != 0) {
		t.Errorf("m2 ends with %v stored, want nothing", m2.BytesByClass)
	}
	// Month 3: nothing left.
	near(t, "m3 total", m3.Cost.Total, 0)
	near(t, "total", r.WithPolicies.Total.Total, 0.84009+0.32)

	// Without policies nothing moves, so nothing but storage is charged:
	// 30 x 0.020 = 0.60 a month.
	for _, m := range r.WithoutPolicies.Months {
		near(t, "without policies", m.Cost.Total, 0.60)
		near(t, "without policies charges", m.Cost.Retrieval+m.Cost.EarlyDeletion+m.Cost.Operations, 0)
	}
}

// TestReportDeletesAndNoncurrentVersions follows the shipped quarantine
// delete and the noncurrent-version delete, with and without an early
// deletion.
func TestReportDeletesAndNoncurrentVersions(t *testing.T) {
	f := policy.Default()
	inv := NewInventory(f, "lab", t0)
	// 50 GiB of quarantine rows, STANDARD, 80 days old: deleted at 90 days,
	// on day 10. At rest 50 x 0.020 x 10/30 = 0.333333; STANDARD has no
	// minimum, so no early deletion.
	mustAdd(t, inv, policy.RoleQuarantine, policy.Object{Name: "rows/date=2025-12-11/x.csv", Size: 50 * GiB, Class: policy.Standard, Created: daysAgo(80), Live: true})
	// A 20 GiB noncurrent curated version in NEARLINE, written 10 days ago
	// and replaced 1 day ago: deleted 7 days after it became noncurrent, on
	// day 6, after 16 days in NEARLINE (since creation): early deletion of
	// 14 days, 20 x 0.010 x 14/30 = 0.093333. At rest days 0-5: 20 x 0.010 x
	// 6/30 = 0.04.
	mustAdd(t, inv, policy.RoleCurated, policy.Object{Name: "results/date=2026-02-19/r.parquet", Size: 20 * GiB, Class: policy.Nearline, Created: daysAgo(10), Noncurrent: daysAgo(1), Live: false, NewerVersions: 1})
	// Another one, written 40 days ago and replaced 5 days ago: deleted on
	// day 2 after 42 days in NEARLINE, no early deletion. At rest days 0-1:
	// 20 x 0.010 x 2/30.
	mustAdd(t, inv, policy.RoleCurated, policy.Object{Name: "results/date=2026-01-20/r.parquet", Size: 20 * GiB, Class: policy.Nearline, Created: daysAgo(40), Noncurrent: daysAgo(5), Live: false, NewerVersions: 1})

	r := NewReport(inv, f, testPrices(), t0, 2, Options{})
	m1 := r.WithPolicies.Months[0]
	near(t, "m1 quarantine at rest", m1.ByClass[policy.Standard].AtRest, 50*0.020*10/30)
	near(t, "m1 NEARLINE at rest", m1.ByClass[policy.Nearline].AtRest, 20*0.010*6/30+20*0.010*2/30)
	near(t, "m1 early deletion", m1.Cost.EarlyDeletion, 20*0.010*14/30)
	near(t, "m1 NEARLINE early deletion", m1.ByClass[policy.Nearline].EarlyDeletion, 20*0.010*14/30)
	near(t, "m1 STANDARD early deletion", m1.ByClass[policy.Standard].EarlyDeletion, 0)
	near(t, "m1 retrieval and operations", m1.Cost.Retrieval+m1.Cost.Operations, 0)
	if m1.Deletions != 3 || m1.Transitions != 0 {
		t.Errorf("m1 deletions, transitions = %d, %d, want 3, 0", m1.Deletions, m1.Transitions)
	}
	near(t, "m2", r.WithPolicies.Months[1].Cost.Total, 0)
	// Now: 50 x 0.020 + 40 x 0.010 = 1.40 a month; so without policies.
	near(t, "current", r.Current.Total, 1.40)
	near(t, "current curated", r.Current.ByRole[policy.RoleCurated], 0.40)
	near(t, "without policies m2", r.WithoutPolicies.Months[1].Cost.Total, 1.40)

	cells := r.Inventory
	want := []Cell{
		{Role: "curated", Bucket: "lab-curated", Class: policy.Nearline, Band: Band0to30, Objects: 1, Bytes: 20 * GiB, NoncurrentObjects: 1, NoncurrentBytes: 20 * GiB},
		{Role: "curated", Bucket: "lab-curated", Class: policy.Nearline, Band: Band30to90, Objects: 1, Bytes: 20 * GiB, NoncurrentObjects: 1, NoncurrentBytes: 20 * GiB},
		{Role: "quarantine", Bucket: "lab-quarantine", Class: policy.Standard, Band: Band30to90, Objects: 1, Bytes: 50 * GiB},
	}
	if len(cells) != len(want) {
		t.Fatalf("cells = %+v, want %+v", cells, want)
	}
	for i := range want {
		if cells[i] != want[i] {
			t.Errorf("cell %d = %+v, want %+v", i, cells[i], want[i])
		}
	}
}

func TestReportGrowth(t *testing.T) {
	f := policy.Default()
	inv := NewInventory(f, "lab", t0)
	// 30 GiB of raw data a month in 1 GiB objects, nothing else.
	r := NewReport(inv, f, testPrices(), t0, 3, Options{GrowthPerMonth: map[string]int64{policy.RoleRaw: 30 * GiB}, GrowthObjectSize: GiB})
	w := r.WithPolicies.Months
	// Month 1: batch A, 30 days STANDARD: 30 x 0.020 = 0.60.
	near(t, "m1", w[0].Cost.Total, 0.60)
	// Month 2: A turns 30 on day 30 and moves to NEARLINE: 30 x 0.010 = 0.30
	// plus 30 operations at 0.10/10,000 = 0.0003; batch B STANDARD 0.60.
	near(t, "m2", w[1].Cost.Total, 0.9003)
	near(t, "m2 operations", w[1].Cost.Operations, 0.0003)
	if w[1].Transitions != 30 {
		t.Errorf("m2 transitions = %d, want 30", w[1].Transitions)
	}
	// Month 3: A NEARLINE 0.30, B moves 0.30 + 0.0003, C STANDARD 0.60.
	near(t, "m3", w[2].Cost.Total, 1.2003)
	// Without policies the batches add up in STANDARD: 0.60, 1.20, 1.80.
	for i, want := range []float64{0.60, 1.20, 1.80} {
		near(t, "without policies", r.WithoutPolicies.Months[i].Cost.Total, want)
	}
	if r.Assumptions[0] == "" || !strings.Contains(r.Assumptions[0], "growth_per_month") {
		t.Errorf("first assumption = %q, want it to describe the growth", r.Assumptions[0])
	}
	// No growth: the report says there is no new data.
	r0 := NewReport(inv, f, testPrices(), t0, 0, Options{})
	if r0.Months != 12 || !strings.Contains(r0.Assumptions[0], "No new data") {
		t.Errorf("default report: months %d, first assumption %q", r0.Months, r0.Assumptions[0])
	}
	near(t, "empty inventory", r0.WithPolicies.Total.Total+r0.WithoutPolicies.Total.Total+r0.Current.Total, 0)
}

func TestReportWarnsAboutUnpricedClasses(t *testing.T) {
	f := policy.Default()
	inv := NewInventory(f, "lab", t0)
	mustAdd(t, inv, policy.RoleModels, policy.Object{Name: "m", Size: GiB, Class: "MULTI_REGIONAL", Created: daysAgo(1), Live: true})
	mustAdd(t, inv, policy.RoleModels, policy.Object{Name: "n", Size: 2 * GiB, Class: "RAPID", Created: daysAgo(1), Live: true})
	if err := inv.Add("scratch", policy.Object{Name: "x", Size: 1}); err == nil {
		t.Error("Add to a role the policy lacks: no error")
	}
	r := NewReport(inv, f, testPrices(), t0, 1, Options{GrowthPerMonth: map[string]int64{"scratch": GiB}})
	// MULTI_REGIONAL is priced as STANDARD; RAPID has no price.
	near(t, "current", r.Current.Total, 0.020)
	if len(r.Warnings) != 2 || !strings.Contains(strings.Join(r.Warnings, "\n"), "RAPID") || !strings.Contains(strings.Join(r.Warnings, "\n"), "scratch") {
		t.Errorf("warnings = %q, want one about RAPID and one about the scratch growth", r.Warnings)
	}
}

func TestReportTextGolden(t *testing.T) {
	r := rawStandardReport(t)
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "raw_standard.txt")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("text report differs from %s (go test -update rewrites it):\n%s", golden, b.String())
	}
	for _, s := range []string{"Current monthly estimate (at rest only): USD 2.00", "total", "No new data"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("text report lacks %q", s)
		}
	}
}

func TestReportJSON(t *testing.T) {
	r := rawStandardReport(t)
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Prices struct {
			Source string `json:"source"`
			AsOf   string `json:"as_of"`
		} `json:"prices"`
		Current struct {
			Total float64 `json:"total"`
		} `json:"current_monthly"`
		With struct {
			Months []struct {
				Month   int `json:"month"`
				ByClass map[string]struct {
					Total float64 `json:"total"`
				} `json:"by_class"`
			} `json:"months"`
			Total struct {
				Retrieval float64 `json:"retrieval"`
			} `json:"total"`
		} `json:"with_policies"`
		Inventory []Cell `json:"inventory"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Prices.Source == "" || got.Prices.AsOf != "2025-01-01" {
		t.Errorf("prices = %+v", got.Prices)
	}
	near(t, "json current", got.Current.Total, 2.0)
	near(t, "json retrieval", got.With.Total.Retrieval, 1.0)
	if len(got.With.Months) != 12 || got.With.Months[2].Month != 3 {
		t.Fatalf("json months = %+v", got.With.Months)
	}
	near(t, "json month 2 NEARLINE", got.With.Months[1].ByClass["NEARLINE"].Total, 1.0)
	if len(got.Inventory) != 1 || got.Inventory[0].Bytes != 100*GiB || got.Inventory[0].Band != Band0to30 {
		t.Errorf("json inventory = %+v", got.Inventory)
	}
}

// BenchmarkReport projects 100,000 objects spread over 500 days of ages in
// the raw and curated buckets (about 1,000 cohorts).
func BenchmarkReport(b *testing.B) {
	f := policy.Default()
	inv := NewInventory(f, "lab", t0)
	for i := range 100000 {
		role := policy.RoleRaw
		if i%2 == 1 {
			role = policy.RoleCurated
		}
		if err := inv.Add(role, policy.Object{Name: "o", Size: 100 << 20, Class: policy.Standard, Created: daysAgo(i % 500), Live: true}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		NewReport(inv, f, testPrices(), t0, 12, Options{})
	}
}
