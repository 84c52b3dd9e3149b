package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"

	"github.com/labplatform/platform/contracts/names"
)

// The invariants, as Violation.Invariant names them.
const (
	// InvariantSourceRows: every raw line is curated, quarantined or
	// superseded exactly once, and lineage says so.
	InvariantSourceRows = "source_rows"
	// InvariantDayCounts: per collected_at day, curated rows equal lineage,
	// lab.results holds their distinct (sample, test) keys, and the day was
	// loaded after its last file.
	InvariantDayCounts = "day_counts"
	// InvariantSummary: every patient summary equals a recomputation from
	// lab.results.
	InvariantSummary = "summary"
)

// Clients are the platform's clients Check reads with. All three are
// required.
type Clients struct {
	Storage   *storage.Client
	BigQuery  *bigquery.Client
	Firestore *firestore.Client
}

// Options tune Check; the zero value is ready to use.
type Options struct {
	// Tolerance bounds the difference between a summary's floating-point
	// fields and their recomputation: |got-want| <= Tolerance*(1+|want|).
	// Default DefaultTolerance. Folding the same values in another order
	// changes the last bits of a mean.
	Tolerance float64
	// Parallelism is how many objects are read at once (default 4).
	Parallelism int
}

// DefaultTolerance is Options.Tolerance's default.
const DefaultTolerance = 1e-9

func (o Options) withDefaults() Options {
	if o.Tolerance <= 0 {
		o.Tolerance = DefaultTolerance
	}
	if o.Parallelism <= 0 {
		o.Parallelism = 4
	}
	return o
}

// Report is what Check read and found. It encodes as JSON.
type Report struct {
	// Prefix is the bucket prefix checked.
	Prefix string `json:"prefix"`
	// Files counts the raw objects; Done, Failed and NotFinished split them
	// by lineage status (NotFinished: processing, retrying, or no lineage
	// document at all).
	Files       int `json:"files"`
	Done        int `json:"done"`
	Failed      int `json:"failed"`
	NotFinished int `json:"not_finished"`
	// LineageOnly counts the done lineage documents whose raw object is
	// gone from the raw bucket: checked by their counts only.
	LineageOnly int `json:"lineage_only"`
	// The row counts, summed over done lineage documents.
	RowsIn          int64 `json:"rows_in"`
	RowsValid       int64 `json:"rows_valid"`
	RowsQuarantined int64 `json:"rows_quarantined"`
	RowsSuperseded  int64 `json:"rows_superseded"`
	// CuratedFiles and QuarantineFiles count the objects read.
	CuratedFiles    int `json:"curated_files"`
	QuarantineFiles int `json:"quarantine_files"`
	// Days has one entry per collected_at day found in curated files,
	// lineage or lab.results, oldest first.
	Days []Day `json:"days"`
	// BigQueryRows is the number of rows of lab.results.
	BigQueryRows int64 `json:"bigquery_rows"`
	// Patients counts the summary documents, Results the results they
	// count (the sum of their tests' counts).
	Patients int   `json:"patients"`
	Results  int64 `json:"results"`
	// Violations lists every invariant that does not hold; empty when all
	// hold.
	Violations []Violation `json:"violations"`
}

// Day is what one collected_at day holds at each stage.
type Day struct {
	// Day is the date, YYYY-MM-DD.
	Day string `json:"day"`
	// CuratedFiles and CuratedRows: the Parquet files under the day's
	// curated prefix and their rows.
	CuratedFiles int   `json:"curated_files"`
	CuratedRows  int64 `json:"curated_rows"`
	// LineageRows is the sum of the day's outputs over done ingestions,
	// Ingestions the number of those ingestions.
	LineageRows int64 `json:"lineage_rows"`
	Ingestions  int   `json:"ingestions"`
	// Distinct is the number of distinct (sample_id, test_code) among the
	// day's curated rows collected on the day.
	Distinct int64 `json:"distinct"`
	// BigQueryRows is the day's rows of lab.results.
	BigQueryRows int64 `json:"bigquery_rows"`
	// LastFinished is when the last of the day's ingestions finished;
	// StagingStartedAt is from the day's lineage.DayLoad (zero: none).
	LastFinished     time.Time `json:"last_finished,omitzero"`
	StagingStartedAt time.Time `json:"staging_started_at,omitzero"`
	// Loaded says a DayLoad started staging after LastFinished.
	Loaded bool `json:"loaded"`
}

// Violation is one invariant that does not hold.
type Violation struct {
	// Invariant is InvariantSourceRows, InvariantDayCounts or
	// InvariantSummary.
	Invariant string `json:"invariant"`
	// Subject is what it is about: a raw, curated or quarantine object, a
	// day, or patient/test.
	Subject string `json:"subject"`
	Detail  string `json:"detail"`
}

// OK reports whether every invariant holds.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// Invariants returns the distinct invariants violated, sorted.
func (r *Report) Invariants() []string {
	var out []string
	for _, v := range r.Violations {
		out = append(out, v.Invariant)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// MaxShown is how many violations of each invariant Write prints; one
// cause (a day not loaded) can make thousands of summary violations.
const MaxShown = 20

// Write prints the report as aligned plain text: the files and rows, the
// summaries, one line per day, then the violations (MaxShown of each
// invariant, and how many more) or "all invariants hold".
func (r *Report) Write(w io.Writer) error {
	ew := &errWriter{w: w}
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "audit of prefix %q\n", r.Prefix)
	fmt.Fprintf(tw, "raw files\t%d\tdone %d, failed %d, not finished %d\n", r.Files, r.Done, r.Failed, r.NotFinished)
	if r.LineageOnly > 0 {
		fmt.Fprintf(tw, "lineage only\t%d\tdone, raw object gone\n", r.LineageOnly)
	}
	fmt.Fprintf(tw, "rows in\t%d\n", r.RowsIn)
	fmt.Fprintf(tw, "  valid\t%d\n", r.RowsValid)
	fmt.Fprintf(tw, "  quarantined\t%d\n", r.RowsQuarantined)
	fmt.Fprintf(tw, "  superseded\t%d\n", r.RowsSuperseded)
	fmt.Fprintf(tw, "curated files\t%d\n", r.CuratedFiles)
	fmt.Fprintf(tw, "quarantine files\t%d\n", r.QuarantineFiles)
	fmt.Fprintf(tw, "summaries\t%d\tpatients, %d results\n", r.Patients, r.Results)
	fmt.Fprintf(tw, "bigquery rows\t%d\tin %s.%s\n", r.BigQueryRows, names.Dataset, names.ResultsTable)
	_ = tw.Flush() // errors kept by ew

	fmt.Fprintln(ew)
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "day\tfiles\tcurated rows\tlineage rows\tdistinct\tbigquery rows\tloaded\t")
	for _, d := range r.Days {
		loaded := "no"
		if d.Loaded {
			loaded = "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", d.Day, d.CuratedFiles, d.CuratedRows, d.LineageRows, d.Distinct, d.BigQueryRows, loaded)
	}
	_ = tw.Flush()

	fmt.Fprintln(ew)
	switch len(r.Violations) {
	case 0:
		fmt.Fprintln(ew, "all invariants hold")
	case 1:
		fmt.Fprintln(ew, "1 violation:")
	default:
		fmt.Fprintf(ew, "%d violations:\n", len(r.Violations))
	}
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	shown := map[string]int{}
	for _, v := range r.Violations {
		if shown[v.Invariant]++; shown[v.Invariant] <= MaxShown {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Invariant, v.Subject, v.Detail)
		}
	}
	_ = tw.Flush()
	for _, inv := range r.Invariants() {
		if n := shown[inv] - MaxShown; n > 0 {
			fmt.Fprintf(ew, "  ... and %d more %s violations (the JSON report has them all)\n", n, inv)
		}
	}
	if ew.err != nil {
		return fmt.Errorf("write report: %w", ew.err)
	}
	return nil
}

// errWriter keeps the first write error and writes nothing after it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// Check reads everything under the platform's bucket prefix, its lineage,
// day loads and summaries in Firestore and lab.results in BigQuery, and
// returns the report. It returns an error only when it cannot read.
func Check(ctx context.Context, c Clients, prefix string, opts Options) (*Report, error) {
	if c.Storage == nil || c.BigQuery == nil || c.Firestore == nil {
		return nil, errors.New("audit: Storage, BigQuery and Firestore clients are all required")
	}
	if prefix == "" {
		return nil, errors.New("audit: empty bucket prefix")
	}
	a := &auditor{c: c, prefix: prefix, opts: opts.withDefaults(), rep: &Report{Prefix: prefix, Days: []Day{}, Violations: []Violation{}}}
	if err := a.sources(ctx); err != nil {
		return nil, err
	}
	if err := a.checkDays(ctx); err != nil {
		return nil, err
	}
	if err := a.checkSummaries(ctx); err != nil {
		return nil, err
	}
	order := map[string]int{InvariantSourceRows: 0, InvariantDayCounts: 1, InvariantSummary: 2}
	slices.SortStableFunc(a.rep.Violations, func(x, y Violation) int {
		return cmp.Or(cmp.Compare(order[x.Invariant], order[y.Invariant]), strings.Compare(x.Subject, y.Subject))
	})
	return a.rep, nil
}

// auditor holds what Check has read so far.
type auditor struct {
	c      Clients
	prefix string
	opts   Options
	rep    *Report

	// Filled by sources, read by checkDays.
	ingestions []*ingestion
	curated    []*curatedFile
	// Filled by checkDays, read by checkSummaries.
	results []resultRow
}

func (a *auditor) violate(invariant, subject, format string, args ...any) {
	a.rep.Violations = append(a.rep.Violations, Violation{Invariant: invariant, Subject: subject, Detail: fmt.Sprintf(format, args...)})
}

// parallel calls f for every item, at most n at once, and returns the first
// error; the others are cancelled through ctx.
func parallel[T any](ctx context.Context, n int, items []T, f func(context.Context, T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(ctx, it); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}
