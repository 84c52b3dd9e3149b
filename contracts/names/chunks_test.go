package names

import (
	"errors"
	"testing"

	"cloud.google.com/go/civil"
)

func TestChunkObjectRoundTrip(t *testing.T) {
	day := civil.Date{Year: 2026, Month: 11, Day: 21}
	for _, c := range []ChunkObject{
		{Robot: "R001", Date: day, File: "results.db.csv", Series: "g0001", Start: 42, End: 1 << 30},
		{Robot: "R100", Date: day, File: "a.b.c", Series: "20261121T235500Z-3", Start: 0, End: 1},
	} {
		name, err := c.Name()
		if err != nil {
			t.Fatalf("%+v.Name(): %v", c, err)
		}
		if !IsChunkObject(name) {
			t.Errorf("IsChunkObject(%q) = false", name)
		}
		got, err := ParseChunkObject(name)
		if err != nil {
			t.Fatalf("ParseChunkObject(%q): %v", name, err)
		}
		if got != c {
			t.Errorf("ParseChunkObject(%q) = %+v, want %+v", name, got, c)
		}
	}
	name, _ := ChunkObject{Robot: "R001", Date: day, File: "results.db.csv", Series: "g1", Start: 10, End: 20}.Name()
	if want := "robot=R001/date=2026-11-21/db/results.db.csv.g1.10-20.csv"; name != want {
		t.Errorf("Name() = %q, want %q", name, want)
	}
}

func TestChunkObjectRejects(t *testing.T) {
	day := civil.Date{Year: 2026, Month: 11, Day: 21}
	for _, c := range []ChunkObject{
		{Robot: "X1", Date: day, File: "f", Series: "g1", Start: 0, End: 1},
		{Robot: "R001", Date: civil.Date{}, File: "f", Series: "g1", Start: 0, End: 1},
		{Robot: "R001", Date: day, File: "", Series: "g1", Start: 0, End: 1},
		{Robot: "R001", Date: day, File: "a/b", Series: "g1", Start: 0, End: 1},
		{Robot: "R001", Date: day, File: "f", Series: "g.1", Start: 0, End: 1},
		{Robot: "R001", Date: day, File: "f", Series: "", Start: 0, End: 1},
		{Robot: "R001", Date: day, File: "f", Series: "g1", Start: 5, End: 5},
		{Robot: "R001", Date: day, File: "f", Series: "g1", Start: -1, End: 5},
	} {
		var nerr *ObjectNameError
		if _, err := c.Name(); !errors.As(err, &nerr) {
			t.Errorf("%+v.Name(): err = %v, want *ObjectNameError", c, err)
		}
	}
	for _, name := range []string{
		"robot=R001/date=2026-11-21/results.db.csv.g1.0-10.csv",
		"robot=R001/date=2026-11-21/db/results.db.csv.g1.0-10.txt",
		"robot=R001/date=2026-11-21/db/results.db.csv.g1.10.csv",
		"robot=R001/date=2026-11-21/db/g1.0-10.csv",
		"robot=R001/date=2026-11-21/db/f.g1.010-20.csv",
		"robot=R001/date=2026-11-21/db/f.g1.+1-20.csv",
		"robot=R001/date=2026-11-21/db/f.g1.20-10.csv",
		"robot=R001/date=2026-13-21/db/f.g1.0-10.csv",
		"robot=X/date=2026-11-21/db/f.g1.0-10.csv",
	} {
		var nerr *ObjectNameError
		if _, err := ParseChunkObject(name); !errors.As(err, &nerr) {
			t.Errorf("ParseChunkObject(%q): err = %v, want *ObjectNameError", name, err)
		}
	}
	if IsChunkObject("robot=R001/date=2026-11-21/results.csv") {
		t.Error("IsChunkObject(raw file) = true")
	}
}
