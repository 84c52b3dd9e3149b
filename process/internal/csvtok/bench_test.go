package csvtok_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/labplatform/platform/process/internal/csvtok"
)

// benchFileSize is the size of the generated v2 export the benchmarks read.
const benchFileSize = 50 << 20

// benchFile returns a deterministic v2 robot export of about benchFileSize
// bytes and its number of lines: header, LF line ends, and about 1 row in 16
// with a quoted test name (1 in 100 with doubled quotes), as robots quote only
// names that need it.
var benchFile = sync.OnceValues(func() ([]byte, int) {
	type test struct{ loinc, name, unit, low, high string }
	tests := []test{
		{loinc: "2345-7", name: "Glucose", unit: "mmol/L", low: "3.9", high: "5.5"},
		{loinc: "2160-0", name: "Creatinine", unit: "umol/L", low: "62", high: "106"},
		{loinc: "718-7", name: "Hemoglobin", unit: "g/dL", low: "13.5", high: "17.5"},
		{loinc: "2951-2", name: "Sodium", unit: "mmol/L", low: "135", high: "145"},
		{loinc: "2823-3", name: "Potassium", unit: "mmol/L", low: "3.5", high: "5.1"},
		{loinc: "1742-6", name: "ALT", unit: "U/L", low: "7", high: "56"},
		{loinc: "1920-8", name: "AST", unit: "U/L", low: "8", high: "33"},
		{loinc: "3016-3", name: "TSH", unit: "mIU/L", low: "0.4", high: "4.0"},
	}
	fasting := test{loinc: "1558-6", name: `"Glucose, fasting"`, unit: "mmol/L", low: "3.9", high: "5.5"}
	hba1c := test{loinc: "4548-4", name: `"HbA1c ""IFCC"""`, unit: "mmol/mol", low: "20", high: "42"}
	rng := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.Grow(benchFileSize + 256)
	b.WriteString("sample_id,patient_id,loinc,test_name,value,unit,ref_low,ref_high,collected_at\n")
	rows := 1
	for i := 0; b.Len() < benchFileSize; i++ {
		tt := tests[rng.IntN(len(tests))]
		switch p := rng.IntN(100); {
		case p < 5:
			tt = fasting
		case p < 6:
			tt = hba1c
		}
		fmt.Fprintf(&b, "S%08d,P%07d,%s,%s,%d.%d,%s,%s,%s,2026-11-%02dT%02d:%02d:00Z\n",
			12345+i, rng.IntN(10_000_000), tt.loinc, tt.name, rng.IntN(200), rng.IntN(10),
			tt.unit, tt.low, tt.high, 1+rng.IntN(30), rng.IntN(24), rng.IntN(60))
		rows++
	}
	return b.Bytes(), rows
})

func BenchmarkReader(b *testing.B) {
	data, rows := benchFile()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := csvtok.New(bytes.NewReader(data), csvtok.Options{})
		n, nfields := 0, 0
		for {
			rec, ok := r.Next()
			if !ok {
				break
			}
			n++
			nfields += len(rec.Fields)
		}
		if err := r.Err(); err != nil {
			b.Fatal(err)
		}
		if n != rows || nfields != 9*rows {
			b.Fatalf("got %d records and %d fields, want %d and %d", n, nfields, rows, 9*rows)
		}
	}
	b.ReportMetric(float64(rows), "records/op")
}

func BenchmarkEncodingCSV(b *testing.B) {
	data, rows := benchFile()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := csv.NewReader(bytes.NewReader(data))
		r.ReuseRecord = true
		r.FieldsPerRecord = -1
		n, nfields := 0, 0
		for {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
			nfields += len(rec)
		}
		if n != rows || nfields != 9*rows {
			b.Fatalf("got %d records and %d fields, want %d and %d", n, nfields, rows, 9*rows)
		}
	}
	b.ReportMetric(float64(rows), "records/op")
}
