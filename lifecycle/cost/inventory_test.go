package cost

import (
	"bytes"
	"context"
	"testing"
	"time"

	"cloud.google.com/go/storage"

	"github.com/labplatform/platform/lifecycle/policy"
	"github.com/labplatform/platform/testenv"
)

// put writes size bytes to gs://bucket/name in class (default STANDARD) and
// returns the new version's attributes.
func put(ctx context.Context, t *testing.T, c *storage.Client, bucket, name string, size int, class string) *storage.ObjectAttrs {
	t.Helper()
	w := c.Bucket(bucket).Object(name).NewWriter(ctx)
	w.ChunkSize = 0 // one request
	w.StorageClass = class
	if _, err := w.Write(bytes.Repeat([]byte("x"), size)); err != nil {
		t.Fatalf("write gs://%s/%s: %v", bucket, name, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close gs://%s/%s: %v", bucket, name, err)
	}
	return w.Attrs()
}

// TestTakeInventoryOnTheEmulator puts objects of known sizes and classes in
// the buckets of a testenv platform, then counts them with the clock at
// several distances from their creation (fake-gcs-server dates objects
// itself, so their ages come from the clock).
func TestTakeInventoryOnTheEmulator(t *testing.T) {
	t.Parallel()
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	ctx := t.Context()
	raw, curated, quarantine := p.Prefix+"-raw", p.Prefix+"-curated", p.Prefix+"-quarantine"

	s1 := put(ctx, t, c.Storage, raw, "robot=R001/date=2026-01-01/a.csv", 100, "")
	put(ctx, t, c.Storage, raw, "robot=R001/date=2026-01-01/b.csv", 200, "")
	s3 := put(ctx, t, c.Storage, raw, "robot=R002/date=2026-01-01/c.csv", 300, "STANDARD")
	n1 := put(ctx, t, c.Storage, raw, "robot=R003/date=2026-01-01/d.csv", 50, "NEARLINE")
	put(ctx, t, c.Storage, raw, "robot=R003/date=2026-01-02/e.csv", 70, "NEARLINE")
	// The curated bucket is versioned: the second write leaves the first
	// as a noncurrent version.
	put(ctx, t, c.Storage, curated, "results/date=2026-01-01/robot=R001/x.parquet", 40, "")
	put(ctx, t, c.Storage, curated, "results/date=2026-01-01/robot=R001/x.parquet", 60, "")
	last := put(ctx, t, c.Storage, quarantine, "rows/date=2026-01-01/x.csv", 10, "")
	if !n1.Created.After(s3.Created) {
		t.Fatalf("the emulator dated %s (%v) no later than %s (%v): cannot split the ages", n1.Name, n1.Created, s3.Name, s3.Created)
	}

	f := policy.Default()
	cells := func(now time.Time) []Cell {
		t.Helper()
		// Two objects a page: the raw bucket takes three pages.
		inv, err := takeInventory(ctx, c.Storage, f, p.Prefix, now, 2)
		if err != nil {
			t.Fatal(err)
		}
		return inv.Cells()
	}
	check := func(name string, got, want []Cell) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: cells\n%+v\nwant\n%+v", name, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: cell %d = %+v, want %+v", name, i, got[i], want[i])
			}
		}
	}
	cellsAt := func(rawStd, rawNear, cur, quar Band) []Cell {
		return []Cell{
			{Role: "raw", Bucket: raw, Class: policy.Standard, Band: rawStd, Objects: 3, Bytes: 600},
			{Role: "raw", Bucket: raw, Class: policy.Nearline, Band: rawNear, Objects: 2, Bytes: 120},
			{Role: "curated", Bucket: curated, Class: policy.Standard, Band: cur, Objects: 2, Bytes: 100, NoncurrentObjects: 1, NoncurrentBytes: 40},
			{Role: "quarantine", Bucket: quarantine, Class: policy.Standard, Band: quar, Objects: 1, Bytes: 10},
		}
	}

	// Ten days after the last write: everything is 10 days old.
	now := last.Created.Add(10 * day)
	check("10 days", cells(now), cellsAt(Band0to30, Band0to30, Band0to30, Band0to30))
	// 400 days after the first write: everything is 399 or 400 days old.
	check("400 days", cells(s1.Created.Add(400*day)), cellsAt(Band365Plus, Band365Plus, Band365Plus, Band365Plus))
	// 30 days after the third raw write: the three STANDARD raw objects are
	// 30 days old, everything written after them 29.
	check("30 days", cells(s3.Created.Add(30*day)), cellsAt(Band30to90, Band0to30, Band0to30, Band0to30))
	// The same, 90 days on.
	check("90 days", cells(s3.Created.Add(90*day)), cellsAt(Band90to365, Band30to90, Band30to90, Band30to90))

	// The inventory feeds the projection: at 10 days, in month 1 the
	// noncurrent curated version (noncurrent 10 days) is deleted on day 0,
	// and the three STANDARD raw objects and the live curated one move to
	// NEARLINE on day 20; NEARLINE raw objects wait for 90 days.
	inv, err := TakeInventory(ctx, c.Storage, f, p.Prefix, now)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReport(inv, f, testPrices(), now, 3, Options{})
	m1, m3 := r.WithPolicies.Months[0], r.WithPolicies.Months[2]
	if m1.Deletions != 1 || m1.Transitions != 4 {
		t.Errorf("month 1: deletions, transitions = %d, %d, want 1, 4", m1.Deletions, m1.Transitions)
	}
	// Day 80 (90 days old): the five raw objects and the live curated one
	// go to COLDLINE and the quarantine object is deleted.
	if m3.Deletions != 1 || m3.Transitions != 6 {
		t.Errorf("month 3: deletions, transitions = %d, %d, want 1, 6", m3.Deletions, m3.Transitions)
	}
	s := inv.Snapshot()
	if s.Bytes[raw] != 720 || s.Bytes[curated] != 100 || s.Bytes[quarantine] != 10 || s.Bytes[p.Prefix+"-models"] != 0 || s.Objects[raw] != 5 {
		t.Errorf("snapshot = %+v", s)
	}
}

func TestTakeInventoryNamesTheBucket(t *testing.T) {
	t.Parallel()
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	// A prefix with no buckets.
	_, err := TakeInventory(t.Context(), c.Storage, policy.Default(), p.Prefix+"-none", t0)
	if err == nil {
		t.Fatal("inventory of missing buckets: no error")
	}
	if want := "gs://" + p.Prefix + "-none-raw"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("error %q does not name %s", err, want)
	}
}

// TestCohortsSplitByWhatRulesSee checks that objects a rule can tell apart
// are projected apart: a prefix rule moves only the objects it names.
func TestCohortsSplitByWhatRulesSee(t *testing.T) {
	f := &policy.File{Version: 1, Buckets: map[string]policy.Bucket{policy.RoleRaw: {Rules: []policy.Rule{
		{Action: policy.Action{Type: policy.ActionSetStorageClass, StorageClass: policy.Archive},
			Condition: policy.Condition{Age: intp(1), MatchesPrefix: []string{"robot=R001/"}}},
	}}}}
	inv := NewInventory(f, "lab", t0)
	for _, name := range []string{"robot=R001/a", "robot=R002/a", "robot=R001/b"} {
		mustAdd(t, inv, policy.RoleRaw, policy.Object{Name: name, Size: 3 * GiB, Class: policy.Standard, Created: daysAgo(5), Live: true})
	}
	if len(inv.cohorts) != 2 {
		t.Errorf("%d cohorts, want 2 (R001 and the rest)", len(inv.cohorts))
	}
	if cells := inv.Cells(); len(cells) != 1 || cells[0].Objects != 3 {
		t.Errorf("cells = %+v, want one of 3 objects", cells)
	}
	r := NewReport(inv, f, testPrices(), t0, 1, Options{})
	m := r.WithPolicies.Months[0]
	// Day 0: the two R001 objects (6 GiB) go to ARCHIVE; R002 (3 GiB) stays.
	if m.Transitions != 2 || m.BytesByClass[policy.Archive] != 6*GiB || m.BytesByClass[policy.Standard] != 3*GiB {
		t.Errorf("month 1: %d transitions, bytes %v", m.Transitions, m.BytesByClass)
	}
	// 2 Class A operations at the ARCHIVE rate, 0.50/10,000.
	near(t, "operations", m.Cost.Operations, 2*0.50/10000)
}
