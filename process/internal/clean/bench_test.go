package clean

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/civil"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/labplatform/platform/testenv/robotsim"
)

type discardSink struct{ rows int64 }

func (d *discardSink) Curated(_ civil.Date, rec arrow.RecordBatch) error {
	d.rows += rec.NumRows()
	return nil
}
func (d *discardSink) Quarantine(*Quarantined) error { return nil }
func (d *discardSink) Result(*Result) error          { return nil }

var benchFile = sync.OnceValues(func() ([]byte, error) {
	var buf bytes.Buffer
	_, err := robotsim.Generate(&buf, robotsim.GenerateOptions{Version: "v2", Rows: 800_000, Seed: 1, Malformed: 0.001, Patients: 100_000})
	return buf.Bytes(), err
})

// BenchmarkClean cleans a generated 100 MB v2 file (800,000 rows, 0.1%
// malformed) into a sink that discards the output: the core alone, without
// Parquet encoding.
func BenchmarkClean(b *testing.B) {
	data, err := benchFile()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	now := func() time.Time { return fileTime }
	for b.Loop() {
		s := &discardSink{}
		rep, err := Clean(context.Background(), bytes.NewReader(data), Source{Object: "o", Generation: 1, Robot: "R001"}, s, Options{Now: now})
		if err != nil || !rep.Balanced() || s.rows != rep.RowsValid {
			b.Fatalf("Clean: %v %+v", err, rep)
		}
	}
}
