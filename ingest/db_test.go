package ingest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/labplatform/platform/contracts/robotcsv"
	"github.com/labplatform/platform/ingest"
	"github.com/labplatform/platform/ingest/internal/rawcheck"
)

type dbWriter struct {
	r     *rig
	path  string
	next  int
	lines []string // every complete line written, in order
}

func newDB(r *rig, robot string) *dbWriter {
	w := &dbWriter{r: r, path: filepath.Join(r.root, robot, "db", "results.db.csv")}
	r.write(robot, "db/results.db.csv", dbHeader)
	return w
}

var dbHeader = robotcsv.V2.Header() + "\n"

func (w *dbWriter) add(n int) {
	var s string
	for range n {
		l := fmt.Sprintf("S%05d,P1,2345-7,Glucose,5.1,mmol/L,3.9,5.5,2026-11-21T08:00:00+01:00", w.next)
		w.next++
		w.lines = append(w.lines, l)
		s += l + "\n"
	}
	w.r.appendTo(w.path, s)
}

func TestDBChunking(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil, ingest.Options{ChunkMin: 1, ChunkMax: 200})
	db := newDB(r, "R001")
	db.add(3)
	// A partial last line is never shipped.
	r.appendTo(db.path, "S99999,P1,2345")
	if res := r.pass(); res.Chunks == 0 {
		t.Fatalf("first pass: %+v, want chunks", res)
	}
	if got := rawcheck.ChunkLines(t, t.Context(), r.bucket, r.objects(), dbHeader); !slices.Equal(got, db.lines) {
		t.Fatalf("after pass 1: lines %q, want %q", got, db.lines)
	}
	// Complete the partial line, grow over several passes.
	r.appendTo(db.path, "-7,Glucose,5.1,mmol/L,3.9,5.5,2026-11-21T08:00:00+01:00\n")
	db.lines = append(db.lines, "S99999,P1,2345-7,Glucose,5.1,mmol/L,3.9,5.5,2026-11-21T08:00:00+01:00")
	for range 3 {
		db.add(4)
		r.pass()
	}
	if res := r.pass(); res.Chunks != 0 {
		t.Fatalf("pass without growth: %+v, want no chunk", res)
	}
	r.restart()
	if res := r.pass(); res.Chunks != 0 {
		t.Fatalf("pass after restart without growth: %+v, want no chunk", res)
	}

	// Rotation: lines appended before the rename are shipped from the
	// rotated file; the new file starts a new series.
	db.add(5)
	if err := os.Rename(db.path, db.path+".1"); err != nil {
		t.Fatal(err)
	}
	r.write("R001", "db/results.db.csv", dbHeader)
	db.add(2)
	r.pass()
	// Truncation: the file shrinks to its header and grows again.
	db.add(2)
	r.pass()
	if err := os.Truncate(db.path, int64(len(dbHeader))); err != nil {
		t.Fatal(err)
	}
	db.add(6)
	r.pass()
	r.pass()

	got := rawcheck.ChunkLines(t, t.Context(), r.bucket, r.objects(), dbHeader)
	if !slices.Equal(got, db.lines) {
		t.Errorf("shipped lines (%d):\n%q\nwant (%d):\n%q", len(got), got, len(db.lines), db.lines)
	}
	if got := r.counter(r.metrics.Series.WithLabelValues("R001", "rotated")); got != 1 {
		t.Errorf("rotated series = %v, want 1", got)
	}
	if got := r.counter(r.metrics.Series.WithLabelValues("R001", "truncated")); got != 1 {
		t.Errorf("truncated series = %v, want 1", got)
	}
	// Chunks respect the maximum (lines are shorter than it).
	for name, a := range r.objects() {
		if a.Size > int64(len(dbHeader))+200 {
			t.Errorf("%s: %d bytes, over the maximum", name, a.Size)
		}
	}
}

// TestDBChunkMinimum: fewer new bytes than the minimum wait, until they
// waited ChunkMaxWait.
func TestDBChunkMinimum(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil, ingest.Options{ChunkMin: 1 << 20, ChunkMax: 2 << 20, ChunkMaxWait: 60e9})
	db := newDB(r, "R001")
	db.add(3)
	if res := r.pass(); res.Chunks != 0 {
		t.Fatalf("below the minimum: %+v, want no chunk", res)
	}
	r.clock.Advance(61e9)
	if res := r.pass(); res.Chunks != 1 {
		t.Fatalf("after the maximum wait: %+v, want 1 chunk", res)
	}
	if got := rawcheck.ChunkLines(t, t.Context(), r.bucket, r.objects(), dbHeader); !slices.Equal(got, db.lines) {
		t.Errorf("lines %q, want %q", got, db.lines)
	}
}
