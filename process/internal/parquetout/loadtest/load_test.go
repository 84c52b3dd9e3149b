package loadtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/schema"
	"github.com/labplatform/platform/process/internal/parquetout"
	"github.com/labplatform/platform/testenv"
)

// TestBigQueryLoadsFiles loads parquetout's files into lab.results of the
// local BigQuery as the curated loads do (Parquet, the contracts schema,
// WRITE_TRUNCATE) and queries them back: a file of several row groups with
// nulls in the optional columns, then an empty file, which leaves no rows.
func TestBigQueryLoadsFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test starts the local GCP emulators; make test runs it (go test without -short)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		t.Fatalf("start the local GCP: %v", err)
	}
	defer func() {
		if err := env.Close(); err != nil {
			t.Errorf("close the local GCP: %v", err)
		}
	}()
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)

	const rows = 2500
	rec, want := results(rows)
	defer rec.Release()
	for _, tc := range []struct {
		name string
		recs []arrow.RecordBatch
		want summary
	}{
		{name: "rows", recs: []arrow.RecordBatch{rec.NewSlice(0, 1200), rec.NewSlice(1200, rows)}, want: want},
		{name: "empty", want: summary{}},
	} {
		var buf bytes.Buffer
		w, err := parquetout.New(&buf, parquetout.Options{RowGroupRows: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range tc.recs {
			if err := w.Write(r); err != nil {
				t.Fatalf("%s: write: %v", tc.name, err)
			}
			r.Release()
		}
		if err := w.Close(); err != nil {
			t.Fatalf("%s: close: %v", tc.name, err)
		}

		bucket, obj := names.CuratedBucket(p.Prefix), "results/parquetout-"+tc.name+".parquet"
		up := c.Storage.Bucket(bucket).Object(obj).NewWriter(ctx)
		if _, err := up.Write(buf.Bytes()); err != nil {
			t.Fatalf("%s: upload: %v", tc.name, err)
		}
		if err := up.Close(); err != nil {
			t.Fatalf("%s: upload: %v", tc.name, err)
		}
		ref := bigquery.NewGCSReference("gs://" + bucket + "/" + obj)
		ref.SourceFormat = bigquery.Parquet
		ref.Schema = schema.BigQuery()
		loader := c.BigQuery.Dataset(names.Dataset).Table(names.ResultsTable).LoaderFrom(ref)
		loader.WriteDisposition = bigquery.WriteTruncate
		job, err := loader.Run(ctx)
		if err != nil {
			t.Fatalf("%s: load job: %v", tc.name, err)
		}
		if st, err := job.Wait(ctx); err != nil || st.Err() != nil {
			t.Fatalf("%s: load job: %v %v", tc.name, err, st.Err())
		}
		if got := query(ctx, t, c.BigQuery); got != tc.want {
			t.Errorf("%s: lab.results holds %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// summary sums up lab.results.
type summary struct {
	Rows         int64   `bigquery:"n"`
	NullRefLow   int64   `bigquery:"null_ref_low"`
	NullAnalyzed int64   `bigquery:"null_analyzed"`
	NullFW       int64   `bigquery:"null_fw"`
	MinPatient   string  `bigquery:"min_patient"`
	MaxPatient   string  `bigquery:"max_patient"`
	MaxCollected int64   `bigquery:"max_collected"` // µs since 1970
	SumValue     float64 `bigquery:"sum_value"`
	SumLines     int64   `bigquery:"sum_lines"`
}

func query(ctx context.Context, t *testing.T, bq *bigquery.Client) summary {
	t.Helper()
	it, err := bq.Query(fmt.Sprintf(`SELECT COUNT(*) AS n, COUNTIF(ref_low IS NULL) AS null_ref_low,
		COUNTIF(analyzed_at IS NULL) AS null_analyzed, COUNTIF(instrument_fw IS NULL) AS null_fw,
		IFNULL(MIN(patient_id), '') AS min_patient, IFNULL(MAX(patient_id), '') AS max_patient,
		IFNULL(UNIX_MICROS(MAX(collected_at)), 0) AS max_collected,
		IFNULL(SUM(value), 0) AS sum_value, IFNULL(SUM(source_line), 0) AS sum_lines
		FROM %s.%s`, names.Dataset, names.ResultsTable)).Read(ctx)
	if err != nil {
		t.Fatalf("query lab.results: %v", err)
	}
	var got summary
	if err := it.Next(&got); err != nil && !errors.Is(err, iterator.Done) {
		t.Fatalf("read lab.results: %v", err)
	}
	return got
}

// results builds n canonical rows, sorted by patient and test, with nulls in
// every optional column, and their summary.
func results(n int) (arrow.RecordBatch, summary) {
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema.Arrow())
	defer b.Release()
	tests := []struct{ code, name, unit string }{
		{code: "2160-0", name: "Creatinine", unit: "mg/dL"}, {code: "2345-7", name: "Glucose", unit: "mg/dL"},
		{code: "2951-2", name: "Sodium", unit: "mmol/L"}, {code: "718-7", name: "Hemoglobin", unit: "g/dL"},
		{code: "777-3", name: "Platelets", unit: "10*3/uL"},
	}
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var s summary
	for i := range n {
		patient, test := fmt.Sprintf("P%06d", i/len(tests)), tests[i%len(tests)]
		collected := day.Add(time.Duration(i*7919%86400) * time.Second).Add(time.Duration(i) * time.Microsecond)
		value := float64(i%1000) / 8
		for c, col := range schema.Columns() {
			f := b.Field(c)
			str := func(v string) { f.(*array.StringBuilder).Append(v) }
			switch col.Name {
			case schema.SampleID:
				str(fmt.Sprintf("S%09d", i/len(tests)))
			case schema.PatientID:
				str(patient)
			case schema.RobotID:
				str("R017")
			case schema.TestCode:
				str(test.code)
			case schema.TestName:
				str(test.name)
			case schema.Unit, schema.OriginalUnit:
				str(test.unit)
			case schema.Value, schema.OriginalValue:
				f.(*array.Float64Builder).Append(value)
			case schema.RefLow, schema.RefHigh:
				if i%3 == 0 {
					f.AppendNull()
				} else {
					f.(*array.Float64Builder).Append(1)
				}
			case schema.Flag:
				str("N")
			case schema.Status:
				str("final")
			case schema.CollectedAt:
				f.(*array.TimestampBuilder).Append(arrow.Timestamp(collected.UnixMicro()))
			case schema.AnalyzedAt, schema.InstrumentFW:
				switch {
				case i%4 == 0:
					f.AppendNull()
				case col.Name == schema.AnalyzedAt:
					f.(*array.TimestampBuilder).Append(arrow.Timestamp(collected.Add(time.Hour).UnixMicro()))
				default:
					str("fw 4.2.1")
				}
			case schema.SchemaVersion:
				str("v3")
			case schema.SourceObject:
				str("robot=R017/date=2026-11-21/R017-results.csv")
			case schema.SourceGeneration:
				f.(*array.Int64Builder).Append(1763704800123456)
			case schema.SourceLine:
				f.(*array.Int64Builder).Append(int64(i + 2))
			case schema.IngestedAt:
				f.(*array.TimestampBuilder).Append(arrow.Timestamp(day.Add(30 * time.Hour).UnixMicro()))
			default:
				panic("results does not fill column " + col.Name)
			}
		}
		s.Rows++
		if i%3 == 0 {
			s.NullRefLow++
		}
		if i%4 == 0 {
			s.NullAnalyzed++
			s.NullFW++
		}
		if i == 0 {
			s.MinPatient = patient
		}
		s.MaxPatient = patient
		s.MaxCollected = max(s.MaxCollected, collected.UnixMicro())
		s.SumValue += value
		s.SumLines += int64(i + 2)
	}
	return b.NewRecordBatch(), s
}
