package cost

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/lifecycle/policy"
	"github.com/labplatform/platform/testenv"
)

func snap(date string, bytes map[string]int64) Snapshot {
	return Snapshot{Date: date, Bytes: bytes}
}

func TestCheckGrowth(t *testing.T) {
	prev := snap("2026-03-01", map[string]int64{"lab-raw": 1000, "lab-curated": 1000, "lab-models": 0, "lab-quarantine": 500})
	for _, tc := range []struct {
		name      string
		cur       map[string]int64
		threshold float64
		want      []string // buckets in the anomaly
	}{
		{name: "no growth", cur: map[string]int64{"lab-raw": 1000, "lab-curated": 1000}, threshold: 0.2},
		{name: "exactly the threshold", cur: map[string]int64{"lab-raw": 1200}, threshold: 0.2},
		{name: "just over", cur: map[string]int64{"lab-raw": 1201}, threshold: 0.2, want: []string{"lab-raw"}},
		{name: "shrinking", cur: map[string]int64{"lab-raw": 10}, threshold: 0.2},
		{name: "two buckets, sorted", cur: map[string]int64{"lab-raw": 2000, "lab-curated": 1500, "lab-quarantine": 550}, threshold: 0.2, want: []string{"lab-curated", "lab-raw"}},
		{name: "no baseline: empty or new bucket", cur: map[string]int64{"lab-models": 1 << 40, "lab-new": 1 << 40}, threshold: 0.2},
		{name: "zero threshold: any growth", cur: map[string]int64{"lab-quarantine": 501}, threshold: 0, want: []string{"lab-quarantine"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := CheckGrowth(prev, snap("2026-03-02", tc.cur), tc.threshold)
			if len(tc.want) == 0 {
				if a != nil {
					t.Fatalf("anomaly %+v, want none", a)
				}
				return
			}
			if a == nil {
				t.Fatalf("no anomaly, want one on %v", tc.want)
			}
			var got []string
			for _, g := range a.Buckets {
				got = append(got, g.Bucket)
				if g.Previous != prev.Bytes[g.Bucket] || g.Current != tc.cur[g.Bucket] {
					t.Errorf("%s: %d -> %d", g.Bucket, g.Previous, g.Current)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("buckets = %v, want %v", got, tc.want)
			}
			if a.Date != "2026-03-02" || a.PreviousDate != "2026-03-01" || a.Threshold != tc.threshold {
				t.Errorf("anomaly header = %+v", a)
			}
		})
	}
	a := CheckGrowth(prev, snap("2026-03-02", map[string]int64{"lab-raw": 1500}), 0.2)
	if msg := a.Message(); !strings.Contains(msg, "lab-raw grew +50.0% (1000 -> 1500 bytes)") || !strings.Contains(msg, "more than 20.0%") {
		t.Errorf("message = %q", msg)
	}
}

type recordingAlerter struct {
	kinds, messages []string
	err             error
}

func (r *recordingAlerter) Alert(_ context.Context, kind, message string) error {
	r.kinds = append(r.kinds, kind)
	r.messages = append(r.messages, message)
	return r.err
}

func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	ctx := t.Context()

	s := Snapshot{
		Date:    "2026-03-01",
		Taken:   time.Date(2026, 3, 1, 23, 59, 58, 123456000, time.UTC),
		Bytes:   map[string]int64{"lab-raw": 1 << 40, "lab-curated": 12345},
		Objects: map[string]int64{"lab-raw": 100000, "lab-curated": 7},
	}
	if err := SaveSnapshot(ctx, c.Firestore, s); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSnapshot(ctx, c.Firestore, "2026-03-01")
	if err != nil {
		t.Fatal(err)
	}
	if got.Date != s.Date || !got.Taken.Equal(s.Taken) || len(got.Bytes) != 2 || got.Bytes["lab-raw"] != 1<<40 ||
		got.Bytes["lab-curated"] != 12345 || got.Objects["lab-raw"] != 100000 || got.Objects["lab-curated"] != 7 {
		t.Errorf("round trip = %+v, want %+v", got, s)
	}
	// The document id is the date, in lifecycle_snapshots.
	doc, err := c.Firestore.Collection("lifecycle_snapshots").Doc("2026-03-01").Get(ctx)
	if err != nil || doc.Data()["date"] != "2026-03-01" {
		t.Errorf("document lifecycle_snapshots/2026-03-01: %v, %v", err, doc)
	}
	// A second save the same day replaces the first.
	s.Bytes = map[string]int64{"lab-raw": 1}
	if err := SaveSnapshot(ctx, c.Firestore, s); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadSnapshot(ctx, c.Firestore, "2026-03-01"); err != nil || len(got.Bytes) != 1 || got.Bytes["lab-raw"] != 1 {
		t.Errorf("after a second save: %+v, %v", got, err)
	}

	if _, err := LoadSnapshot(ctx, c.Firestore, "2026-02-28"); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("missing day: %v, want ErrNoSnapshot", err)
	}
	if err := SaveSnapshot(ctx, c.Firestore, Snapshot{Date: "yesterday"}); err == nil {
		t.Error("a snapshot dated \"yesterday\" was saved")
	}
}

func TestWatchAlertsOnGrowth(t *testing.T) {
	t.Parallel()
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	ctx := t.Context()
	al := &recordingAlerter{}

	// Day 1: nothing to compare with.
	a, err := Watch(ctx, c.Firestore, al, snap("2026-03-01", map[string]int64{"lab-raw": 1000, "lab-curated": 1000}), 0.2)
	if err != nil || a != nil || len(al.kinds) != 0 {
		t.Fatalf("first day: %+v, %v, alerts %v", a, err, al.messages)
	}
	// Day 2: +10%, within the threshold.
	a, err = Watch(ctx, c.Firestore, al, snap("2026-03-02", map[string]int64{"lab-raw": 1100, "lab-curated": 1000}), 0.2)
	if err != nil || a != nil || len(al.kinds) != 0 {
		t.Fatalf("day 2: %+v, %v, alerts %v", a, err, al.messages)
	}
	// Day 3: raw +50% over day 2.
	a, err = Watch(ctx, c.Firestore, al, snap("2026-03-03", map[string]int64{"lab-raw": 1650, "lab-curated": 1000}), 0.2)
	if err != nil || a == nil || len(a.Buckets) != 1 || a.Buckets[0].Bucket != "lab-raw" {
		t.Fatalf("day 3: %+v, %v", a, err)
	}
	if len(al.kinds) != 1 || al.kinds[0] != KindStorageGrowth || !strings.Contains(al.messages[0], "lab-raw") {
		t.Errorf("alerts = %v %v", al.kinds, al.messages)
	}
	// Day 5 (day 4 missing): no baseline, no alert, but saved.
	a, err = Watch(ctx, c.Firestore, al, snap("2026-03-05", map[string]int64{"lab-raw": 99999}), 0.2)
	if err != nil || a != nil || len(al.kinds) != 1 {
		t.Fatalf("day 5: %+v, %v, %d alerts", a, err, len(al.kinds))
	}
	if got, err := LoadSnapshot(ctx, c.Firestore, "2026-03-05"); err != nil || got.Bytes["lab-raw"] != 99999 {
		t.Errorf("day 5 snapshot: %+v, %v", got, err)
	}
	// A failing alerter is an error, and the anomaly is still returned.
	al.err = errors.New("pager down")
	a, err = Watch(ctx, c.Firestore, al, snap("2026-03-06", map[string]int64{"lab-raw": 999999}), 0.2)
	if a == nil || err == nil || !strings.Contains(err.Error(), "pager down") {
		t.Errorf("failing alerter: %+v, %v", a, err)
	}
}

func TestInventorySnapshot(t *testing.T) {
	f := policy.Default()
	inv := NewInventory(f, "lab", time.Date(2026, 3, 1, 23, 30, 0, 0, time.FixedZone("CET", 3600)))
	mustAdd(t, inv, policy.RoleRaw, policy.Object{Name: "a", Size: 10, Created: daysAgo(3), Live: true})
	mustAdd(t, inv, policy.RoleRaw, policy.Object{Name: "a", Size: 5, Created: daysAgo(40), Noncurrent: daysAgo(3), NewerVersions: 1})
	mustAdd(t, inv, policy.RoleCurated, policy.Object{Name: "b", Size: 7, Created: daysAgo(400), Live: true, Class: policy.Archive})
	s := inv.Snapshot()
	// 23:30 CET is 22:30 UTC: still March 1st.
	if s.Date != "2026-03-01" {
		t.Errorf("date = %s", s.Date)
	}
	want := map[string]int64{"lab-raw": 15, "lab-curated": 7, "lab-quarantine": 0, "lab-models": 0}
	for b, n := range want {
		if s.Bytes[b] != n {
			t.Errorf("bytes[%s] = %d, want %d", b, s.Bytes[b], n)
		}
	}
	if len(s.Bytes) != 4 || s.Objects["lab-raw"] != 2 || s.Objects["lab-curated"] != 1 {
		t.Errorf("snapshot = %+v", s)
	}
}
