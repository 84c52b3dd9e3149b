package audit

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/civil"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/labplatform/platform/contracts/schema"
)

// curatedColumns are the columns read from curated files.
var curatedColumns = []string{schema.SourceObject, schema.SourceGeneration, schema.SourceLine, schema.SampleID, schema.TestCode, schema.CollectedAt}

// parseCurated reads the rows of a curated Parquet file (schema.Parquet's
// layout, as process's parquetout writes it).
func parseCurated(ctx context.Context, data []byte) ([]curatedRow, error) {
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not Parquet: %w", err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("read the Parquet file as Arrow: %w", err)
	}
	leaves := make([]int, len(curatedColumns))
	for i, name := range curatedColumns {
		if leaves[i] = pf.MetaData().Schema.ColumnIndexByName(name); leaves[i] < 0 {
			return nil, fmt.Errorf("no column %s", name)
		}
	}
	rr, err := fr.GetRecordReader(ctx, leaves, nil)
	if err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	defer rr.Release()
	rows := make([]curatedRow, 0, pf.NumRows())
	var lastObject string // interned: a file's rows share one source object
	for rr.Next() {
		rec := rr.RecordBatch()
		col := func(name string) arrow.Array {
			idx := rec.Schema().FieldIndices(name)
			if len(idx) == 0 {
				return nil
			}
			return rec.Column(idx[0])
		}
		objects, okO := col(schema.SourceObject).(*array.String)
		gens, okG := col(schema.SourceGeneration).(*array.Int64)
		lines, okL := col(schema.SourceLine).(*array.Int64)
		samples, okS := col(schema.SampleID).(*array.String)
		tests, okT := col(schema.TestCode).(*array.String)
		collected, okC := col(schema.CollectedAt).(*array.Timestamp)
		if !okO || !okG || !okL || !okS || !okT || !okC {
			return nil, fmt.Errorf("columns of unexpected types: %s", rec.Schema())
		}
		unit := collected.DataType().(*arrow.TimestampType).Unit
		for i := range int(rec.NumRows()) {
			if objects.IsNull(i) || gens.IsNull(i) || lines.IsNull(i) || samples.IsNull(i) || tests.IsNull(i) || collected.IsNull(i) {
				return nil, fmt.Errorf("row %d has a null in a required column", len(rows))
			}
			obj := objects.Value(i)
			if obj != lastObject {
				lastObject = strings.Clone(obj)
			}
			rows = append(rows, curatedRow{
				src:    source{lastObject, gens.Value(i)},
				line:   lines.Value(i),
				sample: strings.Clone(samples.Value(i)),
				test:   strings.Clone(tests.Value(i)),
				day:    dayOf(collected.Value(i).ToTime(unit)),
			})
		}
	}
	if err := rr.Err(); err != nil {
		return nil, fmt.Errorf("read rows: %w", err)
	}
	return rows, nil
}

// quarantineHeader is the header of process's quarantine CSV
// (process/internal/quarantine): one line per rejected or superseded source
// line.
var quarantineHeader = []string{"source_line", "reasons", "detail", "raw", "raw_escaped"}

// reasonSuperseded marks a quarantine row that lost deduplication rather
// than failed a rule (process/internal/clean).
const reasonSuperseded = "superseded"

// quarantineRow is what the checks need of a quarantine row.
type quarantineRow struct {
	line       int64
	superseded bool
}

// parseQuarantine reads a quarantine CSV.
func parseQuarantine(data []byte) ([]quarantineRow, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if !slices.Equal(header, quarantineHeader) {
		return nil, fmt.Errorf("header %q, want %q", header, quarantineHeader)
	}
	var rows []quarantineRow
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, err // csv.ParseError says where
		}
		line, err := strconv.ParseInt(rec[0], 10, 64)
		if err != nil {
			l, _ := r.FieldPos(0)
			return nil, fmt.Errorf("line %d: source_line %q is not a number", l, rec[0])
		}
		rows = append(rows, quarantineRow{line: line, superseded: slices.Contains(strings.Split(rec[1], "|"), reasonSuperseded)})
	}
}

// dayOf is the collected_at day of a time, as BigQuery's DATE() gives it.
func dayOf(t time.Time) civil.Date { return civil.DateOf(t.UTC()) }
