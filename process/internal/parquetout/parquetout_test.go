package parquetout

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pqfile "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/labplatform/platform/contracts/schema"
)

// fileWriter is what the tests and the benchmark need of an implementation.
type fileWriter interface {
	Write(arrow.RecordBatch) error
	Close() error
	Rows() int64
}

// implementations are run through the same tests: Writer (parquet-go), and
// the rejected pqarrow writer the benchmark compares it with.
var implementations = []struct {
	name string
	open func(io.Writer, Options) (fileWriter, error)
}{
	{name: "parquet-go", open: func(w io.Writer, o Options) (fileWriter, error) { return New(w, o) }},
	{name: "pqarrow", open: func(w io.Writer, o Options) (fileWriter, error) { return newPqarrow(w, o, true) }},
}

// resultRow is a canonical row as parquet-go reads it back. Timestamps are
// read as their INT64 microseconds since 1970: read into a time.Time,
// parquet-go goes through nanoseconds and wraps around after 2262 (the
// layout of the file is checked by checkLayout).
type resultRow struct {
	SampleID         string   `parquet:"sample_id"`
	PatientID        string   `parquet:"patient_id"`
	RobotID          string   `parquet:"robot_id"`
	TestCode         string   `parquet:"test_code"`
	TestName         string   `parquet:"test_name"`
	Value            float64  `parquet:"value"`
	Unit             string   `parquet:"unit"`
	OriginalValue    float64  `parquet:"original_value"`
	OriginalUnit     string   `parquet:"original_unit"`
	RefLow           *float64 `parquet:"ref_low,optional"`
	RefHigh          *float64 `parquet:"ref_high,optional"`
	Flag             string   `parquet:"flag"`
	Status           string   `parquet:"status"`
	CollectedAt      int64    `parquet:"collected_at"`
	AnalyzedAt       *int64   `parquet:"analyzed_at,optional"`
	InstrumentFW     *string  `parquet:"instrument_fw,optional"`
	SchemaVersion    string   `parquet:"schema_version"`
	SourceObject     string   `parquet:"source_object"`
	SourceGeneration int64    `parquet:"source_generation"`
	SourceLine       int64    `parquet:"source_line"`
	IngestedAt       int64    `parquet:"ingested_at"`
}

// rowsOf converts Arrow records to resultRows.
func rowsOf(t *testing.T, recs []arrow.RecordBatch) []resultRow {
	t.Helper()
	var out []resultRow
	for _, rec := range recs {
		col := func(name string) arrow.Array { return rec.Column(schema.Index(name)) }
		str := func(name string, i int) string { return col(name).(*array.String).Value(i) }
		f64 := func(name string, i int) float64 { return col(name).(*array.Float64).Value(i) }
		i64 := func(name string, i int) int64 { return col(name).(*array.Int64).Value(i) }
		ts := func(name string, i int) int64 { return int64(col(name).(*array.Timestamp).Value(i)) }
		for i := range int(rec.NumRows()) {
			r := resultRow{
				SampleID: str(schema.SampleID, i), PatientID: str(schema.PatientID, i), RobotID: str(schema.RobotID, i),
				TestCode: str(schema.TestCode, i), TestName: str(schema.TestName, i), Value: f64(schema.Value, i),
				Unit: str(schema.Unit, i), OriginalValue: f64(schema.OriginalValue, i), OriginalUnit: str(schema.OriginalUnit, i),
				Flag: str(schema.Flag, i), Status: str(schema.Status, i), CollectedAt: ts(schema.CollectedAt, i),
				SchemaVersion: str(schema.SchemaVersion, i), SourceObject: str(schema.SourceObject, i),
				SourceGeneration: i64(schema.SourceGeneration, i), SourceLine: i64(schema.SourceLine, i),
				IngestedAt: ts(schema.IngestedAt, i),
			}
			if !col(schema.RefLow).IsNull(i) {
				v := f64(schema.RefLow, i)
				r.RefLow = &v
			}
			if !col(schema.RefHigh).IsNull(i) {
				v := f64(schema.RefHigh, i)
				r.RefHigh = &v
			}
			if !col(schema.AnalyzedAt).IsNull(i) {
				v := ts(schema.AnalyzedAt, i)
				r.AnalyzedAt = &v
			}
			if !col(schema.InstrumentFW).IsNull(i) {
				v := str(schema.InstrumentFW, i)
				r.InstrumentFW = &v
			}
			out = append(out, r)
		}
	}
	return out
}

// readGo reads a file back with parquet-go.
func readGo(t *testing.T, f *parquet.File) []resultRow {
	t.Helper()
	r := parquet.NewGenericReader[resultRow](f)
	defer r.Close()
	out := make([]resultRow, f.NumRows())
	n, err := r.Read(out)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("parquet-go read: %v", err)
	}
	if int64(n) != f.NumRows() {
		t.Fatalf("parquet-go read %d rows, file has %d", n, f.NumRows())
	}
	return out
}

func generate(t *testing.T, cfg genConfig, batchRows int) []arrow.RecordBatch {
	t.Helper()
	g := newGenerator(cfg)
	var recs []arrow.RecordBatch
	for rec := g.batch(batchRows); rec != nil; rec = g.batch(batchRows) {
		recs = append(recs, rec)
	}
	t.Cleanup(func() {
		for _, r := range recs {
			r.Release()
		}
	})
	return recs
}

func writeAll(t *testing.T, open func(io.Writer, Options) (fileWriter, error), opts Options, recs []arrow.RecordBatch) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := open(&buf, opts)
	if err != nil {
		t.Fatalf("new writer: %v", err)
	}
	var rows int64
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			t.Fatalf("write: %v", err)
		}
		rows += rec.NumRows()
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if w.Rows() != rows {
		t.Errorf("Rows() = %d, want %d", w.Rows(), rows)
	}
	return buf.Bytes()
}

func openGo(t *testing.T, data []byte) *parquet.File {
	t.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("parquet-go open: %v", err)
	}
	return f
}

func readArrow(t *testing.T, data []byte) arrow.Table {
	t.Helper()
	tbl, err := pqarrow.ReadTable(t.Context(), bytes.NewReader(data), pqfile.NewReaderProperties(memory.DefaultAllocator),
		pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		t.Fatalf("pqarrow read: %v", err)
	}
	t.Cleanup(tbl.Release)
	return tbl
}

// checkArrowSchema holds the schema pqarrow reads to schema.Arrow(), but for
// the order of the columns (parquet-go orders them by name) and the field
// metadata (Parquet field ids) pqarrow adds.
func checkArrowSchema(t *testing.T, got *arrow.Schema) {
	t.Helper()
	want := schema.Arrow()
	if got.NumFields() != want.NumFields() {
		t.Fatalf("pqarrow reads %d fields, want %d", got.NumFields(), want.NumFields())
	}
	for _, w := range want.Fields() {
		i := got.FieldIndices(w.Name)
		if len(i) != 1 {
			t.Errorf("pqarrow reads %d fields named %s, want 1", len(i), w.Name)
			continue
		}
		g := got.Field(i[0])
		if g.Nullable != w.Nullable || !arrow.TypeEqual(g.Type, w.Type) {
			t.Errorf("pqarrow reads field %s as %s nullable=%v, want %s nullable=%v", w.Name, g.Type, g.Nullable, w.Type, w.Nullable)
		}
	}
}

// checkLayout holds a file's columns to schema.Parquet(): the same names,
// physical types, logical types and repetitions.
func checkLayout(t *testing.T, f *parquet.File) {
	t.Helper()
	want := map[string]parquet.Field{}
	for _, fl := range schema.Parquet().Fields() {
		want[fl.Name()] = fl
	}
	got := f.Schema().Fields()
	if len(got) != len(want) {
		t.Errorf("file has %d columns, want %d", len(got), len(want))
	}
	for _, g := range got {
		w, ok := want[g.Name()]
		if !ok {
			t.Errorf("file has unexpected column %s", g.Name())
			continue
		}
		gl, wl := g.Type().LogicalType(), w.Type().LogicalType()
		if g.Type().Kind() != w.Type().Kind() || g.Optional() != w.Optional() || g.Required() != w.Required() || (gl == nil) != (wl == nil) || (gl != nil && gl.String() != wl.String()) {
			t.Errorf("column %s: %v %v optional=%v, want %v %v optional=%v", g.Name(), g.Type().Kind(), gl, g.Optional(), w.Type().Kind(), wl, w.Optional())
		}
	}
}

func TestRoundTrip(t *testing.T) {
	// 2,500 rows in batches of 700 and row groups of 1,000: batches cross
	// group boundaries, and the optional columns have nulls.
	recs := generate(t, genConfig{rows: 2500, testsPerPatient: 5, nulls: true, seed: 7}, 700)
	want := rowsOf(t, recs)
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			data := writeAll(t, impl.open, Options{RowGroupRows: 1000}, recs)

			f := openGo(t, data)
			checkLayout(t, f)
			if f.NumRows() != int64(len(want)) {
				t.Fatalf("file has %d rows, want %d", f.NumRows(), len(want))
			}
			if got := readGo(t, f); !reflect.DeepEqual(got, want) {
				for i := range got {
					if !reflect.DeepEqual(got[i], want[i]) {
						t.Fatalf("row %d:\n got %+v\nwant %+v", i, got[i], want[i])
					}
				}
			}
			checkRowGroups(t, f, want, []int64{1000, 1000, 500})

			checkArrowTable(t, readArrow(t, data), recs)
		})
	}
}

// TestRoundTripEdgeValues writes values at the edges: empty strings (and an
// empty, not null, optional string), a string longer than a page, non-ASCII
// text, zero and extreme numbers, and timestamps before 1970 and at the end
// of BigQuery's range.
func TestRoundTripEdgeValues(t *testing.T) {
	sc := schema.Arrow()
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	long := strings.Repeat("Hämoglobin ", 30_000) // 360 kB, over a page
	type edge struct {
		str                 string
		fw                  *string
		value, orig         float64
		low, high           *float64
		collected, ingested time.Time
		analyzed            *time.Time
		gen, line           int64
	}
	empty, zero, huge := "", 0.0, math.MaxFloat64
	before1970 := time.Date(1900, 1, 1, 0, 0, 0, 1000, time.UTC)
	end := time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	edges := []edge{
		{str: "", fw: &empty, value: -1.5, orig: 0, low: &zero, collected: time.Unix(0, 0), ingested: end, analyzed: &before1970, gen: math.MaxInt64, line: 1},
		{str: long, value: 5e-324, orig: -huge, high: &huge, collected: before1970, ingested: time.Unix(0, 0), gen: 0, line: math.MaxInt64},
		{str: "µmol/L ✓ 血糖", fw: &long, value: huge, orig: 1, low: &huge, high: &zero, collected: end, ingested: end, analyzed: &end, gen: -1, line: 0},
	}
	for _, e := range edges {
		for i, c := range schema.Columns() {
			fb := b.Field(i)
			switch c.Kind {
			case schema.String:
				switch {
				case c.Name == schema.InstrumentFW && e.fw == nil:
					fb.AppendNull()
				case c.Name == schema.InstrumentFW:
					fb.(*array.StringBuilder).Append(*e.fw)
				default:
					fb.(*array.StringBuilder).Append(e.str)
				}
			case schema.Float64:
				v := map[string]*float64{schema.Value: &e.value, schema.OriginalValue: &e.orig, schema.RefLow: e.low, schema.RefHigh: e.high}[c.Name]
				if v == nil {
					fb.AppendNull()
				} else {
					fb.(*array.Float64Builder).Append(*v)
				}
			case schema.Int64:
				fb.(*array.Int64Builder).Append(map[string]int64{schema.SourceGeneration: e.gen, schema.SourceLine: e.line}[c.Name])
			case schema.Timestamp:
				v := map[string]*time.Time{schema.CollectedAt: &e.collected, schema.IngestedAt: &e.ingested, schema.AnalyzedAt: e.analyzed}[c.Name]
				if v == nil {
					fb.AppendNull()
				} else {
					fb.(*array.TimestampBuilder).Append(arrow.Timestamp(v.UnixMicro()))
				}
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	recs := []arrow.RecordBatch{rec}
	want := rowsOf(t, recs)
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			data := writeAll(t, impl.open, Options{}, recs)
			f := openGo(t, data)
			checkLayout(t, f)
			got := readGo(t, f)
			for i := range want {
				if i >= len(got) || !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("row %d differs after parquet-go reads it back: %s", i, diff(got[i], want[i]))
				}
			}
			checkArrowTable(t, readArrow(t, data), recs)
		})
	}
}

// diff names the fields in which two rows differ.
func diff(got, want resultRow) string {
	var d []string
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range g.NumField() {
		if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
			d = append(d, fmt.Sprintf("%s: got %s, want %s", g.Type().Field(i).Name, show(g.Field(i)), show(w.Field(i))))
		}
	}
	return strings.Join(d, "; ")
}

func show(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "nil"
		}
		v = v.Elem()
	}
	s := fmt.Sprint(v.Interface())
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// checkArrowTable compares what pqarrow reads with the records written,
// column by column (by name: parquet-go orders columns by name).
func checkArrowTable(t *testing.T, tbl arrow.Table, recs []arrow.RecordBatch) {
	t.Helper()
	checkArrowSchema(t, tbl.Schema())
	in := array.NewTableFromRecords(schema.Arrow(), recs)
	defer in.Release()
	if tbl.NumRows() != in.NumRows() {
		t.Fatalf("pqarrow reads %d rows, want %d", tbl.NumRows(), in.NumRows())
	}
	for i := range int(in.NumCols()) {
		name := in.Column(i).Name()
		j := tbl.Schema().FieldIndices(name)
		if len(j) != 1 || !array.ChunkedEqual(tbl.Column(j[0]).Data(), in.Column(i).Data()) {
			t.Errorf("pqarrow reads column %s unlike the records written", name)
		}
	}
}

// checkRowGroups checks the row groups' sizes, that every column chunk is
// zstd-compressed, and the statistics of patient_id, collected_at and
// ref_low against the rows each group holds.
func checkRowGroups(t *testing.T, f *parquet.File, rows []resultRow, sizes []int64) {
	t.Helper()
	md := f.Metadata()
	if len(md.RowGroups) != len(sizes) {
		t.Fatalf("file has %d row groups, want %d", len(md.RowGroups), len(sizes))
	}
	leaf := func(name string) int {
		l, ok := f.Schema().Lookup(name)
		if !ok {
			t.Fatalf("no column %s", name)
		}
		return l.ColumnIndex
	}
	pid, coll, low := leaf(schema.PatientID), leaf(schema.CollectedAt), leaf(schema.RefLow)
	var start int64
	for i, rg := range md.RowGroups {
		if rg.NumRows != sizes[i] {
			t.Errorf("row group %d has %d rows, want %d", i, rg.NumRows, sizes[i])
		}
		for _, c := range rg.Columns {
			if c.MetaData.Codec != format.Zstd {
				t.Errorf("row group %d column %v: codec %v, want ZSTD", i, c.MetaData.PathInSchema, c.MetaData.Codec)
			}
			if got, want := slices.Contains(c.MetaData.Encoding, format.RLEDictionary), slices.Contains(dictionaryColumns, c.MetaData.PathInSchema[0]); got != want {
				t.Errorf("row group %d column %v: encodings %v, want a dictionary: %v", i, c.MetaData.PathInSchema, c.MetaData.Encoding, want)
			}
		}
		group := rows[start : start+rg.NumRows]
		start += rg.NumRows
		minP, maxP := group[0].PatientID, group[0].PatientID
		minC, maxC := group[0].CollectedAt, group[0].CollectedAt
		var nulls int64
		for _, r := range group {
			minP, maxP = min(minP, r.PatientID), max(maxP, r.PatientID)
			minC, maxC = min(minC, r.CollectedAt), max(maxC, r.CollectedAt)
			if r.RefLow == nil {
				nulls++
			}
		}
		st := rg.Columns[pid].MetaData.Statistics
		if string(st.MinValue) != minP || string(st.MaxValue) != maxP {
			t.Errorf("row group %d patient_id statistics [%q, %q], want [%q, %q]", i, st.MinValue, st.MaxValue, minP, maxP)
		}
		st = rg.Columns[coll].MetaData.Statistics
		if micros(st.MinValue) != minC || micros(st.MaxValue) != maxC {
			t.Errorf("row group %d collected_at statistics [%d, %d], want [%d, %d]", i, micros(st.MinValue), micros(st.MaxValue), minC, maxC)
		}
		if st := rg.Columns[low].MetaData.Statistics; st.NullCount != nulls || nulls == 0 {
			t.Errorf("row group %d ref_low null count %d, want %d (> 0)", i, st.NullCount, nulls)
		}
	}
}

// micros decodes a plain INT64 statistic; -1 if there is none.
func micros(b []byte) int64 {
	if len(b) != 8 {
		return -1
	}
	var v int64
	for i := 7; i >= 0; i-- {
		v = v<<8 | int64(b[i])
	}
	return v
}

func TestRowGroupBytesCap(t *testing.T) {
	recs := generate(t, genConfig{rows: 3000, testsPerPatient: 8, seed: 3}, 1024)
	rows := rowsOf(t, recs)
	const maxBytes = 64 << 10
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			f := openGo(t, writeAll(t, impl.open, Options{RowGroupBytes: maxBytes}, recs))
			groups := f.Metadata().RowGroups
			if len(groups) < 2 {
				t.Fatalf("%d row groups, want several of at most %d bytes", len(groups), maxBytes)
			}
			var start int64
			for i, rg := range groups {
				var size int64
				for _, r := range rows[start : start+rg.NumRows] {
					size += plainSize(r)
				}
				start += rg.NumRows
				// Groups are filled greedily: each is under the cap, and the
				// next row would not have fitted.
				if size > maxBytes || (i < len(groups)-1 && size+plainSize(rows[start]) <= maxBytes) {
					t.Errorf("row group %d: %d rows of %d plain bytes, cap %d", i, rg.NumRows, size, maxBytes)
				}
			}
			if start != int64(len(rows)) {
				t.Errorf("row groups hold %d rows, want %d", start, len(rows))
			}
		})
	}
}

// plainSize is the row's size as Options.RowGroupBytes counts it.
func plainSize(r resultRow) int64 {
	s := int64(12*4 + 9*8) // 12 string lengths, 9 numbers and timestamps
	for _, v := range []string{r.SampleID, r.PatientID, r.RobotID, r.TestCode, r.TestName, r.Unit, r.OriginalUnit, r.Flag, r.Status, r.SchemaVersion, r.SourceObject} {
		s += int64(len(v))
	}
	if r.InstrumentFW != nil {
		s += int64(len(*r.InstrumentFW))
	}
	return s
}

func TestEmptyFile(t *testing.T) {
	empty := array.NewRecordBuilder(memory.DefaultAllocator, schema.Arrow())
	defer empty.Release()
	rec := empty.NewRecordBatch()
	defer rec.Release()
	for _, impl := range implementations {
		for name, recs := range map[string][]arrow.RecordBatch{"no writes": nil, "empty batch": {rec}} {
			t.Run(impl.name+"/"+name, func(t *testing.T) {
				data := writeAll(t, impl.open, Options{}, recs)
				f := openGo(t, data)
				checkLayout(t, f)
				if f.NumRows() != 0 || len(f.Metadata().RowGroups) != 0 {
					t.Errorf("file has %d rows in %d row groups, want none", f.NumRows(), len(f.Metadata().RowGroups))
				}
				tbl := readArrow(t, data)
				checkArrowSchema(t, tbl.Schema())
				if tbl.NumRows() != 0 {
					t.Errorf("pqarrow reads %d rows, want none", tbl.NumRows())
				}
			})
		}
	}
}

func TestWriteRejectsOtherSchema(t *testing.T) {
	millis := schema.Arrow().Fields()
	millis[schema.Index(schema.CollectedAt)].Type = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}
	nullable := schema.Arrow().Fields()
	nullable[schema.Index(schema.PatientID)].Nullable = true
	others := map[string]*arrow.Schema{
		"one column":          arrow.NewSchema([]arrow.Field{{Name: schema.PatientID, Type: arrow.BinaryTypes.String}}, nil),
		"timestamps in ms":    arrow.NewSchema(millis, nil),
		"nullable patient_id": arrow.NewSchema(nullable, nil),
	}
	good := generate(t, genConfig{rows: 10, testsPerPatient: 2, seed: 1}, 10)
	for _, impl := range implementations {
		for name, sc := range others {
			t.Run(impl.name+"/"+name, func(t *testing.T) {
				b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
				defer b.Release()
				rec := b.NewRecordBatch()
				defer rec.Release()
				var buf bytes.Buffer
				w, err := impl.open(&buf, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Write(rec); err == nil {
					t.Error("Write accepted a record of another schema")
				}
				// The writer goes on as if the record had not come.
				if err := w.Write(good[0]); err != nil {
					t.Fatalf("Write after a rejected record: %v", err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if f := openGo(t, buf.Bytes()); f.NumRows() != 10 || w.Rows() != 10 {
					t.Errorf("file has %d rows, Rows() = %d, want 10", f.NumRows(), w.Rows())
				}
			})
		}
	}
}

// closeRecorder is a writer that records whether it was closed.
type closeRecorder struct {
	bytes.Buffer
	closed bool
}

func (c *closeRecorder) Close() error {
	c.closed = true
	return nil
}

func TestCloseLeavesWriterOpen(t *testing.T) {
	recs := generate(t, genConfig{rows: 10, testsPerPatient: 2, seed: 1}, 10)
	var out closeRecorder
	w, err := New(&out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(recs[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if out.closed {
		t.Error("Close closed the underlying writer")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.Write(recs[0]); !errors.Is(err, errClosed) {
		t.Errorf("Write after Close = %v, want %v", err, errClosed)
	}
	if f := openGo(t, out.Bytes()); f.NumRows() != 10 {
		t.Errorf("file has %d rows, want 10", f.NumRows())
	}
}

// failingWriter fails every write after the first limit bytes.
type failingWriter struct{ limit int }

var errDiskFull = errors.New("disk full")

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.limit {
		n := f.limit
		f.limit = 0
		return n, errDiskFull
	}
	f.limit -= len(p)
	return len(p), nil
}

func TestWriteErrorIsReturned(t *testing.T) {
	recs := generate(t, genConfig{rows: 4000, testsPerPatient: 8, seed: 5}, 500)
	opts := Options{RowGroupRows: 1000}
	for _, impl := range implementations {
		size := len(writeAll(t, impl.open, opts, recs))
		for _, tc := range []struct {
			name   string
			accept int // bytes the underlying writer takes before it fails
		}{
			{name: "header", accept: 0},
			{name: "second row group", accept: size / 3},
			{name: "footer", accept: size - 10},
		} {
			t.Run(impl.name+"/"+tc.name, func(t *testing.T) {
				w, err := impl.open(&failingWriter{limit: tc.accept}, opts)
				if err != nil {
					if !errors.Is(err, errDiskFull) {
						t.Fatalf("open = %v, want %v", err, errDiskFull)
					}
					return // pqarrow writes the magic number at once
				}
				var werr error
				for _, r := range recs {
					if werr = w.Write(r); werr != nil {
						break
					}
				}
				cerr := w.Close()
				if !errors.Is(werr, errDiskFull) && !errors.Is(cerr, errDiskFull) {
					t.Fatalf("Write = %v, Close = %v; want %v from one of them", werr, cerr, errDiskFull)
				}
				if err := w.Write(recs[0]); !errors.Is(err, errDiskFull) {
					t.Errorf("Write after the failure = %v, want %v again", err, errDiskFull)
				}
				if err := w.Close(); !errors.Is(err, errDiskFull) {
					t.Errorf("Close after the failure = %v, want %v again", err, errDiskFull)
				}
			})
		}
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want Options
		ok   bool
	}{
		{name: "defaults", opts: Options{}, want: Options{RowGroupRows: DefaultRowGroupRows, RowGroupBytes: DefaultRowGroupBytes, ZstdLevel: DefaultZstdLevel}, ok: true},
		{name: "set", opts: Options{RowGroupRows: 10, RowGroupBytes: 20, ZstdLevel: 3}, want: Options{RowGroupRows: 10, RowGroupBytes: 20, ZstdLevel: 3}, ok: true},
		{name: "negative rows", opts: Options{RowGroupRows: -1}},
		{name: "negative bytes", opts: Options{RowGroupBytes: -1}},
		{name: "zstd level too high", opts: Options{ZstdLevel: 23}},
		{name: "negative zstd level", opts: Options{ZstdLevel: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.opts.withDefaults()
			if (err == nil) != tc.ok {
				t.Fatalf("withDefaults(%+v) error = %v, want ok=%v", tc.opts, err, tc.ok)
			}
			if tc.ok && got != tc.want {
				t.Errorf("withDefaults(%+v) = %+v, want %+v", tc.opts, got, tc.want)
			}
			if _, err := New(io.Discard, tc.opts); (err == nil) != tc.ok {
				t.Errorf("New(%+v) error = %v, want ok=%v", tc.opts, err, tc.ok)
			}
		})
	}
}
