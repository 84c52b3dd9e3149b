package names_test

import (
	"errors"
	"strings"
	"testing"

	"cloud.google.com/go/civil"

	"github.com/labplatform/platform/contracts/names"
)

func TestBuckets(t *testing.T) {
	got := names.Buckets("lab")
	want := []string{"lab-raw", "lab-curated", "lab-quarantine", "lab-models"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Buckets = %v, want %v", got, want)
	}
}

func TestRawObjectRoundTrip(t *testing.T) {
	r := names.RawObject{Robot: "R007", Date: civil.Date{Year: 2026, Month: 11, Day: 21}, File: "sub/dir/batch 09:30.csv"}
	name, err := r.Name()
	if err != nil {
		t.Fatal(err)
	}
	if name != "robot=R007/date=2026-11-21/sub/dir/batch 09:30.csv" {
		t.Errorf("Name = %q", name)
	}
	back, err := names.ParseRawObject(name)
	if err != nil || back != r {
		t.Errorf("ParseRawObject(%q) = %+v, %v; want %+v", name, back, err, r)
	}
}

func TestParseRawObjectRejects(t *testing.T) {
	for _, name := range []string{
		"", "file.csv", "robot=R007/file.csv", "robot=R7/date=2026-11-21/f.csv", "robot=R007/date=2026-13-01/f.csv",
		"robot=R007/date=2026-11-21/", "date=2026-11-21/robot=R007/f.csv", "robot=R007/date=2026-11-21/a\nb",
	} {
		_, err := names.ParseRawObject(name)
		var ne *names.ObjectNameError
		if !errors.As(err, &ne) {
			t.Errorf("ParseRawObject(%q) error = %v, want *ObjectNameError", name, err)
		}
	}
}

func TestRawIDIsReadableAndInjective(t *testing.T) {
	id, err := names.RawID("robot=R001/date=2026-11-21/batch-0930.csv", 1763712000123456)
	if err != nil {
		t.Fatal(err)
	}
	if id != "R001_2026-11-21_batch-0930.csv_1763712000123456" {
		t.Errorf("RawID = %q", id)
	}
	// Names that a lossy sanitiser would merge stay apart.
	seen := map[string]string{}
	for _, file := range []string{"a b.csv", "a_b.csv", "a/b.csv", "a_20b.csv", "a%20b.csv", "ä.csv", "a..csv"} {
		raw := "robot=R001/date=2026-11-21/" + file
		id, err := names.RawID(raw, 1)
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[id]; dup {
			t.Errorf("RawID(%q) = RawID(%q) = %q", raw, prev, id)
		}
		seen[id] = raw
		if strings.ContainsAny(id, "/ %") || strings.HasPrefix(id, "__") {
			t.Errorf("RawID(%q) = %q is not a safe document id", raw, id)
		}
	}
	if _, err := names.RawID("robot=R001/date=2026-11-21/f.csv", 0); err == nil {
		t.Error("RawID accepted generation 0")
	}
}

func TestDerivedObjectNames(t *testing.T) {
	raw := "robot=R042/date=2026-11-21/export.csv"
	day := civil.Date{Year: 2026, Month: 11, Day: 20}
	cur, err := names.CuratedObject(raw, 7, day)
	if err != nil {
		t.Fatal(err)
	}
	if cur != "results/date=2026-11-20/robot=R042/R042_2026-11-21_export.csv_7.parquet" {
		t.Errorf("CuratedObject = %q", cur)
	}
	if !strings.HasPrefix(cur, names.CuratedDayPrefix(day)) {
		t.Errorf("%q is not under %q", cur, names.CuratedDayPrefix(day))
	}
	q, err := names.QuarantineObject(raw, 7)
	if err != nil {
		t.Fatal(err)
	}
	if q != "rows/date=2026-11-21/R042_2026-11-21_export.csv_7.csv" {
		t.Errorf("QuarantineObject = %q", q)
	}
	// Deterministic: the same inputs give the same names; another generation another.
	again, _ := names.CuratedObject(raw, 7, day)
	other, _ := names.CuratedObject(raw, 8, day)
	if again != cur || other == cur {
		t.Errorf("curated names: same %q/%q, other generation %q", cur, again, other)
	}
	if _, err := names.CuratedObject("not-raw", 7, day); err == nil {
		t.Error("CuratedObject accepted a name outside the raw layout")
	}
}
