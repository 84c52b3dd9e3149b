package clean

import (
	"time"

	"cloud.google.com/go/civil"
)

// Report is what Clean measured and decided for one file; process clean
// writes it as report.json and the worker copies it into lineage.
type Report struct {
	// SchemaVersion is the detected robot CSV version; empty when the header
	// is unknown or the file is empty.
	SchemaVersion string `json:"schema_version"`
	// HeaderError explains an unknown header; every line is then
	// quarantined with reason unknown_header.
	HeaderError string `json:"header_error,omitempty"`
	// Empty says the file had zero bytes.
	Empty bool `json:"empty,omitempty"`
	// The row accounting: RowsIn = RowsValid + RowsQuarantined +
	// RowsSuperseded. Rows are the lines after the header.
	RowsIn          int64 `json:"rows_in"`
	RowsValid       int64 `json:"rows_valid"`
	RowsQuarantined int64 `json:"rows_quarantined"`
	RowsSuperseded  int64 `json:"rows_superseded"`
	// Reasons counts every reason given (a row may have several), including
	// superseded.
	Reasons map[string]int64 `json:"reasons"`
	// Days lists the curated rows per collected_at day (UTC), in first-seen
	// order.
	Days []DayCount `json:"days"`
	// Bytes and SHA256 describe the input as read.
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// Runs is the number of sorted runs; more than one means the file did
	// not fit the memory budget and was merged from disk.
	Runs    int     `json:"runs"`
	Timings Timings `json:"timings_seconds"`

	dayIndex map[civil.Date]int
}

// DayCount is the number of curated rows of one day.
type DayCount struct {
	Date civil.Date `json:"date"`
	Rows int64      `json:"rows"`
}

// Timings are wall-clock seconds of Clean's phases.
type Timings struct {
	// Parse covers reading, tokenizing and the cleaning rules.
	Parse float64 `json:"parse"`
	// Merge covers sorting, deduplication and handing out the outputs
	// (including the sink's work, such as Parquet encoding).
	Merge float64 `json:"merge"`
	Total float64 `json:"total"`
}

func newReport() *Report {
	return &Report{Reasons: map[string]int64{}, Days: []DayCount{}, dayIndex: map[civil.Date]int{}}
}

func (r *Report) addDay(d civil.Date) {
	r.dayIndex[d] = len(r.Days)
	r.Days = append(r.Days, DayCount{Date: d})
}

func (r *Report) countDay(d civil.Date) { r.Days[r.dayIndex[d]].Rows++ }

func (r *Report) dayOrder() []civil.Date {
	ds := make([]civil.Date, len(r.Days))
	for i, d := range r.Days {
		ds[i] = d.Date
	}
	return ds
}

// Balanced reports whether the row accounting identity holds.
func (r *Report) Balanced() bool {
	return r.RowsIn == r.RowsValid+r.RowsQuarantined+r.RowsSuperseded
}

func seconds(d time.Duration) float64 { return d.Seconds() }
