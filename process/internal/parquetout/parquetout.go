package parquetout

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/labplatform/platform/contracts/schema"
)

// Defaults of Options.
const (
	DefaultRowGroupRows  = 1_000_000
	DefaultRowGroupBytes = 128 << 20
	DefaultZstdLevel     = 1
)

// dictionaryColumns are dictionary encoded: codes, names, units, flags,
// statuses and per-file constants, a few dozen distinct values per row
// group. The ids (sample_id, patient_id) stay plain: sorted by patient,
// their repeats sit next to each other and zstd removes them better than
// a dictionary of 100,000 entries does (see the package documentation).
var dictionaryColumns = []string{
	schema.RobotID, schema.TestCode, schema.TestName, schema.Unit, schema.OriginalUnit,
	schema.Flag, schema.Status, schema.InstrumentFW, schema.SchemaVersion, schema.SourceObject,
}

// dictionaryLimit caps a column chunk's dictionary; past it the column falls
// back to plain encoding for the rest of the row group.
const dictionaryLimit = 1 << 20

// pageBufferSize is the uncompressed size at which a column's page is
// encoded, compressed and set aside (parquet-go's default).
const pageBufferSize = 256 << 10

// valueChunk is how many values of one column are converted at a time.
const valueChunk = 4096

// Options tune a Writer. The zero value means the defaults.
type Options struct {
	// RowGroupRows caps the rows of one row group (DefaultRowGroupRows).
	RowGroupRows int64
	// RowGroupBytes caps the approximate size of one row group before
	// encoding and compression: 8 bytes per number or timestamp and 4 plus
	// the length per string, as Arrow holds them and as plain Parquet
	// encodes them (DefaultRowGroupBytes, about 520,000 typical result
	// rows). Whichever cap is reached first ends the row group.
	RowGroupBytes int64
	// ZstdLevel is the zstd level, 1 to 22 (DefaultZstdLevel). The encoder
	// has four speeds: 1-2 fastest, 3-5 default, 6-9 better, 10-22 best.
	ZstdLevel int
}

func (o Options) withDefaults() (Options, error) {
	if o.RowGroupRows < 0 || o.RowGroupBytes < 0 || o.ZstdLevel < 0 || o.ZstdLevel > 22 {
		return o, fmt.Errorf("parquetout: invalid options %+v: row group caps must be positive, the zstd level 1 to 22", o)
	}
	if o.RowGroupRows == 0 {
		o.RowGroupRows = DefaultRowGroupRows
	}
	if o.RowGroupBytes == 0 {
		o.RowGroupBytes = DefaultRowGroupBytes
	}
	if o.ZstdLevel == 0 {
		o.ZstdLevel = DefaultZstdLevel
	}
	return o, nil
}

// zstdCodecs are shared by all Writers, with their pools of encoders (an
// encoder keeps a window of several MB).
var zstdCodecs = map[zstd.Level]*zstd.Codec{
	zstd.SpeedFastest:           {Level: zstd.SpeedFastest},
	zstd.SpeedDefault:           {Level: zstd.SpeedDefault},
	zstd.SpeedBetterCompression: {Level: zstd.SpeedBetterCompression},
	zstd.SpeedBestCompression:   {Level: zstd.SpeedBestCompression},
}

// zstdCodec returns the codec of a zstd level: the Go encoder
// (klauspost/compress) has four speeds, mapped from levels as its
// EncoderLevelFromZstd does.
func zstdCodec(level int) *zstd.Codec {
	switch {
	case level < 3:
		return zstdCodecs[zstd.SpeedFastest]
	case level < 6:
		return zstdCodecs[zstd.SpeedDefault]
	case level < 10:
		return zstdCodecs[zstd.SpeedBetterCompression]
	default:
		return zstdCodecs[zstd.SpeedBestCompression]
	}
}

func newScratch() [][]parquet.Value {
	s := make([][]parquet.Value, maxEncoders)
	for i := range s {
		s[i] = make([]parquet.Value, valueChunk)
	}
	return s
}

// errClosed is returned by Write after Close.
var errClosed = errors.New("parquetout: writer is closed")

// Writer writes Arrow record batches of the canonical result schema
// (schema.Arrow) as one Parquet file with the layout of schema.Parquet.
// It holds at most one row group in memory, as compressed pages, and writes
// it to the underlying writer when the group is full or on Close.
//
// A Writer is not safe for concurrent use. Write rejects a batch of another
// schema and nothing else changes; after any other error every later call
// returns it again, and what reached the underlying writer is not a valid
// file.
type Writer struct {
	pw    *parquet.GenericWriter[any]
	cols  []column // in Arrow (schema.Columns) order
	sc    *arrow.Schema
	group groupSizer
	// scratch holds one value buffer per column-encoding goroutine.
	scratch [][]parquet.Value
	rows    int64
	err     error // sticky: the first error, or errClosed
}

// writeColumns encodes rows [off, off+n) of every column. Column writers are
// independent, so the columns are shared out among up to GOMAXPROCS
// goroutines (each with its own value scratch): on two cores encoding and
// compression take half the wall time.
func (w *Writer) writeColumns(rec arrow.RecordBatch, off, n int64) error {
	workers := min(runtime.GOMAXPROCS(0), len(w.scratch))
	if workers == 1 {
		for i, col := range rec.Columns() {
			if err := w.writeColumn(w.cols[i], col, int(off), int(off+n), w.scratch[0]); err != nil {
				return fmt.Errorf("parquetout: write column %s of rows %d to %d: %w", w.sc.Field(i).Name, w.rows, w.rows+n, err)
			}
		}
		return nil
	}
	var g errgroup.Group
	next := atomic.Int64{}
	for k := range workers {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(w.cols) {
					return nil
				}
				if err := w.writeColumn(w.cols[i], rec.Column(i), int(off), int(off+n), w.scratch[k]); err != nil {
					return fmt.Errorf("parquetout: write column %s of rows %d to %d: %w", w.sc.Field(i).Name, w.rows, w.rows+n, err)
				}
			}
		})
	}
	return g.Wait()
}

// maxEncoders bounds the goroutines encoding columns at once.
const maxEncoders = 4

// column is where one Arrow column goes in the file.
type column struct {
	w        *parquet.ColumnWriter
	leaf     int // parquet-go orders leaf columns by name
	optional bool
}

// New starts a Parquet file on w. Close writes the footer; it does not
// close w.
func New(w io.Writer, opts Options) (*Writer, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	dict := make(map[string]bool, len(dictionaryColumns))
	for _, c := range dictionaryColumns {
		dict[c] = true
	}
	g := parquet.Group{}
	for _, f := range schema.Parquet().Fields() {
		var n parquet.Node = f
		if dict[f.Name()] {
			n = parquet.Encoded(n, &parquet.RLEDictionary)
		}
		g[f.Name()] = n
	}
	ps := parquet.NewSchema("result", g)
	pw := parquet.NewGenericWriter[any](w, ps,
		parquet.Compression(zstdCodec(opts.ZstdLevel)),
		parquet.DataPageVersion(1), // what pqarrow writes and every reader knows
		parquet.DataPageStatistics(true),
		parquet.DictionaryMaxBytes(dictionaryLimit),
		parquet.PageBufferSize(pageBufferSize),
		parquet.MaxRowsPerRowGroup(opts.RowGroupRows),
	)
	sc := schema.Arrow()
	writers := pw.ColumnWriters()
	cols := make([]column, sc.NumFields())
	for i, f := range sc.Fields() {
		leaf, ok := ps.Lookup(f.Name)
		if !ok {
			return nil, fmt.Errorf("parquetout: Parquet schema has no column %s", f.Name) // unreachable: both come from contracts/schema
		}
		cols[i] = column{w: writers[leaf.ColumnIndex], leaf: leaf.ColumnIndex, optional: f.Nullable}
	}
	return &Writer{pw: pw, cols: cols, sc: sc, group: newGroupSizer(sc, opts), scratch: newScratch()}, nil
}

// Write appends the rows of rec, whose schema must be schema.Arrow(), in
// order. Rows go to the open row group until it is full, then to a new one;
// a batch may span row groups. Write does not keep rec.
func (w *Writer) Write(rec arrow.RecordBatch) error {
	if w.err != nil {
		return w.err
	}
	if !rec.Schema().Equal(w.sc) {
		return fmt.Errorf("parquetout: record schema is not the canonical result schema: %s", rec.Schema())
	}
	for off := int64(0); off < rec.NumRows(); {
		n := w.group.fit(rec, off)
		if n == 0 {
			if err := w.pw.Flush(); err != nil {
				return w.fail(fmt.Errorf("parquetout: write row group ending at row %d: %w", w.rows, err))
			}
			w.group.reset()
			continue
		}
		if err := w.writeColumns(rec, off, n); err != nil {
			return w.fail(err)
		}
		w.group.add(rec, off, n)
		w.rows += n
		off += n
	}
	return nil
}

// writeColumn converts rows [from, to) of an Arrow column to parquet.Values,
// valueChunk at a time, and hands them to the column's writer. Values point
// into the Arrow buffers; the column writer copies them.
func (w *Writer) writeColumn(c column, col arrow.Array, from, to int, scratch []parquet.Value) error {
	nulls := c.optional && col.NullN() > 0
	for lo := from; lo < to; lo += len(scratch) {
		vals := scratch[:min(to-lo, len(scratch))]
		switch a := col.(type) {
		case *array.String:
			offs, data := a.ValueOffsets(), a.ValueBytes()
			base := offs[0]
			for i := range vals {
				r := lo + i
				if nulls && a.IsNull(r) {
					vals[i] = parquet.Value{}
				} else {
					vals[i] = parquet.ByteArrayValue(data[offs[r]-base : offs[r+1]-base])
				}
			}
		case *array.Float64:
			raw := a.Float64Values()
			for i := range vals {
				r := lo + i
				if nulls && a.IsNull(r) {
					vals[i] = parquet.Value{}
				} else {
					vals[i] = parquet.DoubleValue(raw[r])
				}
			}
		case *array.Int64:
			raw := a.Int64Values()
			for i := range vals {
				r := lo + i
				if nulls && a.IsNull(r) {
					vals[i] = parquet.Value{}
				} else {
					vals[i] = parquet.Int64Value(raw[r])
				}
			}
		case *array.Timestamp: // microseconds, as the Parquet column
			raw := a.TimestampValues()
			for i := range vals {
				r := lo + i
				if nulls && a.IsNull(r) {
					vals[i] = parquet.Value{}
				} else {
					vals[i] = parquet.Int64Value(int64(raw[r]))
				}
			}
		default:
			return fmt.Errorf("no conversion of Arrow %s to Parquet", col.DataType()) // unreachable: the schema was checked
		}
		if c.optional {
			// A column writer reads a value's definition level: 0 is null,
			// and a value of an optional column has 1. Required columns keep
			// the constructors' 0.
			for i, v := range vals {
				if !v.IsNull() {
					vals[i] = v.Level(0, 1, c.leaf)
				}
			}
		}
		if _, err := c.w.WriteRowValues(vals); err != nil {
			return err
		}
	}
	return nil
}

// Close writes the last row group and the footer. A file with no rows is a
// valid Parquet file with the schema and no row groups. Close does not close
// the underlying writer; closing a closed Writer does nothing.
func (w *Writer) Close() error {
	if w.err != nil {
		if errors.Is(w.err, errClosed) {
			return nil
		}
		return w.err
	}
	if err := w.pw.Close(); err != nil {
		return w.fail(fmt.Errorf("parquetout: close file after %d rows: %w", w.rows, err))
	}
	w.err = errClosed
	return nil
}

// Rows returns the number of rows written so far.
func (w *Writer) Rows() int64 { return w.rows }

func (w *Writer) fail(err error) error {
	w.err = err
	return err
}

// groupSizer decides where row groups end: after maxRows rows or maxBytes of
// plain values, whichever comes first.
type groupSizer struct {
	maxRows, maxBytes int64
	rows, bytes       int64
	fixedPerRow       int64 // 8 per number or timestamp, 4 per string length
	strings           []int // indexes of the string columns
}

func newGroupSizer(sc *arrow.Schema, opts Options) groupSizer {
	g := groupSizer{maxRows: opts.RowGroupRows, maxBytes: opts.RowGroupBytes}
	for i, f := range sc.Fields() {
		if f.Type.ID() == arrow.STRING {
			g.strings = append(g.strings, i)
			g.fixedPerRow += 4
		} else {
			g.fixedPerRow += 8
		}
	}
	return g
}

func (g *groupSizer) reset() { g.rows, g.bytes = 0, 0 }

func (g *groupSizer) add(rec arrow.RecordBatch, off, n int64) {
	g.rows += n
	g.bytes += g.size(rec, off, off+n)
}

// size returns the plain size of rows [i, j) of rec.
func (g *groupSizer) size(rec arrow.RecordBatch, i, j int64) int64 {
	s := (j - i) * g.fixedPerRow
	for _, c := range g.strings {
		offs := rec.Column(c).(*array.String).ValueOffsets()
		s += int64(offs[j] - offs[i])
	}
	return s
}

// fit returns how many rows of rec from row off go into the open row group:
// 0 when it is full, at least 1 when it is empty.
func (g *groupSizer) fit(rec arrow.RecordBatch, off int64) int64 {
	n := min(rec.NumRows()-off, g.maxRows-g.rows)
	if n <= 0 {
		return 0
	}
	if g.bytes+g.size(rec, off, off+n) <= g.maxBytes {
		return n
	}
	// The largest k < n whose first k rows fit; size grows with k.
	lo, hi := int64(0), n-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if g.bytes+g.size(rec, off, off+mid) <= g.maxBytes {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo == 0 && g.rows == 0 {
		return 1 // a row larger than the cap still needs a group
	}
	return lo
}
