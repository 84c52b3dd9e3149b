package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/schema"
	"github.com/labplatform/platform/contracts/summary"
)

// resultRow is what the summary check needs of a row of lab.results.
type resultRow struct {
	PatientID        string                 `bigquery:"patient_id"`
	TestCode         string                 `bigquery:"test_code"`
	SampleID         string                 `bigquery:"sample_id"`
	Value            float64                `bigquery:"value"`
	Unit             string                 `bigquery:"unit"`
	Flag             string                 `bigquery:"flag"`
	Status           string                 `bigquery:"status"`
	CollectedAt      time.Time              `bigquery:"collected_at"`
	AnalyzedAt       bigquery.NullTimestamp `bigquery:"analyzed_at"`
	SourceObject     string                 `bigquery:"source_object"`
	SourceGeneration int64                  `bigquery:"source_generation"`
	SourceLine       int64                  `bigquery:"source_line"`
}

// maxRowsPerQuery bounds the rows one query of lab.results returns: the
// BigQuery emulator's SQLite, compiled from WebAssembly, runs out of memory
// on a result of about 300,000 rows.
var maxRowsPerQuery int64 = 100_000

// readResults reads every row of lab.results: in one query when the table
// is small, else in queries of the rows of groups of raw-object prefixes
// (robot=<robot>/date=<date>/) of at most maxRowsPerQuery curated rows.
// Rows that no prefix of a known raw object covers are counted, and are a
// day_counts violation: they come from no file in lineage.
func (a *auditor) readResults(ctx context.Context) ([]resultRow, error) {
	total, err := a.countResults(ctx)
	if err != nil {
		return nil, err
	}
	groups := a.sourceGroups()
	if total <= maxRowsPerQuery || len(groups) <= 1 {
		return a.queryResults(ctx, "", nil)
	}
	var out []resultRow
	for _, g := range groups {
		conds := make([]string, len(g))
		params := make([]bigquery.QueryParameter, len(g))
		for i, prefix := range g {
			conds[i] = fmt.Sprintf("STARTS_WITH(%s, @p%d)", schema.SourceObject, i)
			params[i] = bigquery.QueryParameter{Name: fmt.Sprintf("p%d", i), Value: prefix}
		}
		rows, err := a.queryResults(ctx, " WHERE "+strings.Join(conds, " OR "), params)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	if n := int64(len(out)); n != total {
		a.violate(InvariantDayCounts, names.Dataset+"."+names.ResultsTable, "%d rows, of which %d come from the raw objects in lineage: %d come from no known file", total, n, total-n)
	}
	return out, nil
}

// sourceGroups groups the prefixes robot=<robot>/date=<date>/ of the raw
// objects in lineage, in order, so that each group's curated rows stay
// within maxRowsPerQuery (a prefix with more is a group of its own).
func (a *auditor) sourceGroups() [][]string {
	rows := map[string]int64{}
	for _, ing := range a.ingestions {
		prefix := rawPrefix(ing.doc.Object)
		for _, o := range ing.doc.Outputs {
			rows[prefix] += o.Rows
		}
		if _, ok := rows[prefix]; !ok {
			rows[prefix] = 0
		}
	}
	var groups [][]string
	var cur []string
	var n int64
	for _, prefix := range slices.Sorted(maps.Keys(rows)) {
		if len(cur) > 0 && n+rows[prefix] > maxRowsPerQuery {
			groups, cur, n = append(groups, cur), nil, 0
		}
		cur, n = append(cur, prefix), n+rows[prefix]
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// rawPrefix returns robot=<robot>/date=<date>/ of a raw object name, or the
// whole name when it has no such prefix.
func rawPrefix(object string) string {
	i := strings.Index(object, "/")
	if i < 0 {
		return object
	}
	j := strings.Index(object[i+1:], "/")
	if j < 0 {
		return object
	}
	return object[:i+1+j+1]
}

// countResults returns the number of rows of lab.results.
func (a *auditor) countResults(ctx context.Context) (int64, error) {
	it, err := a.c.BigQuery.Query("SELECT COUNT(*) AS n FROM " + table()).Read(ctx)
	if err != nil {
		return 0, fmt.Errorf("count %s.%s: %w", names.Dataset, names.ResultsTable, err)
	}
	var row struct {
		N int64 `bigquery:"n"`
	}
	if err := it.Next(&row); err != nil {
		return 0, fmt.Errorf("count %s.%s: %w", names.Dataset, names.ResultsTable, err)
	}
	return row.N, nil
}

// queryResults reads the rows of lab.results that where (empty: all)
// selects.
func (a *auditor) queryResults(ctx context.Context, where string, params []bigquery.QueryParameter) ([]resultRow, error) {
	cols := []string{schema.PatientID, schema.TestCode, schema.SampleID, schema.Value, schema.Unit, schema.Flag, schema.Status,
		schema.CollectedAt, schema.AnalyzedAt, schema.SourceObject, schema.SourceGeneration, schema.SourceLine}
	q := a.c.BigQuery.Query("SELECT " + strings.Join(cols, ", ") + " FROM " + table() + where)
	q.Parameters = params
	it, err := q.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s.%s: %w", names.Dataset, names.ResultsTable, err)
	}
	var out []resultRow
	for {
		var r resultRow
		err := it.Next(&r)
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s.%s: %w", names.Dataset, names.ResultsTable, err)
		}
		out = append(out, r)
	}
}

// keeps reports whether bq_load keeps a over b of one (sample, test): the
// higher status, then the later analysis (a missing one last), then the
// first source object, generation and line.
func keeps(a, b resultRow) bool {
	if c := cmp.Compare(summary.StatusRank(a.Status), summary.StatusRank(b.Status)); c != 0 {
		return c > 0
	}
	if a.AnalyzedAt.Valid != b.AnalyzedAt.Valid {
		return a.AnalyzedAt.Valid
	}
	if c := a.AnalyzedAt.Timestamp.Compare(b.AnalyzedAt.Timestamp); c != 0 {
		return c > 0
	}
	return cmp.Or(
		strings.Compare(a.SourceObject, b.SourceObject),
		cmp.Compare(a.SourceGeneration, b.SourceGeneration),
		cmp.Compare(a.SourceLine, b.SourceLine),
	) < 0
}

// checkSummaries checks summary: every patient document against lab.results.
func (a *auditor) checkSummaries(ctx context.Context) error {
	// One row per (sample, test), as bq_load keeps: a duplicate row is a
	// day_counts violation, not a second summary one.
	best := map[resultKey]int{}
	for i, r := range a.results {
		k := resultKey{r.SampleID, r.TestCode}
		if j, ok := best[k]; !ok || keeps(r, a.results[j]) {
			best[k] = i
		}
	}
	want := map[string]map[string][]resultRow{} // patient -> test -> rows
	for _, i := range best {
		r := a.results[i]
		if want[r.PatientID] == nil {
			want[r.PatientID] = map[string][]resultRow{}
		}
		want[r.PatientID][r.TestCode] = append(want[r.PatientID][r.TestCode], r)
	}

	seen := map[string]bool{}
	it := a.c.Firestore.Collection(names.CollectionPatients).Documents(ctx)
	defer it.Stop()
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", names.CollectionPatients, err)
		}
		id := snap.Ref.ID
		seen[id] = true
		a.rep.Patients++
		var p summary.Patient
		if err := snap.DataTo(&p); err != nil {
			a.violate(InvariantSummary, id, "summary document unreadable: %v", err)
			continue
		}
		tests := want[id]
		var ledger summary.Ledger // read at the first mismatch, to explain it
		codes := make([]string, 0, len(p.Tests)+len(tests))
		for code, s := range p.Tests {
			if s != nil {
				a.rep.Results += s.Count
			}
			codes = append(codes, code)
		}
		for code := range tests {
			codes = append(codes, code)
		}
		slices.Sort(codes)
		for _, code := range slices.Compact(codes) {
			got := p.Tests[code]
			rows := tests[code]
			if got == nil {
				got = &summary.TestSummary{}
			}
			if got.Count == 0 && len(rows) == 0 {
				continue
			}
			if diffs := a.compare(*got, recompute(rows)); len(diffs) > 0 {
				if ledger == nil {
					if ledger, err = summary.ReadLedger(ctx, a.c.Firestore, id); err != nil {
						return fmt.Errorf("read the ledger of %s/%s: %w", names.CollectionPatients, id, err)
					}
				}
				a.violate(InvariantSummary, id+"/"+code, "%s%s", strings.Join(diffs, "; "), ledgerHint(ledger[code], rows))
			}
		}
	}
	missing := make([]string, 0)
	for id := range want {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	for _, id := range missing {
		n := 0
		for _, rows := range want[id] {
			n += len(rows)
		}
		a.violate(InvariantSummary, id, "%d results of %d tests in lab.results and no summary document", n, len(want[id]))
	}
	return nil
}

// recompute folds rows into a summary with summary.Merge of one-value
// summaries, the arithmetic process uses.
func recompute(rows []resultRow) summary.TestSummary {
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b resultRow) int {
		return cmp.Or(a.CollectedAt.Compare(b.CollectedAt), strings.Compare(a.SampleID, b.SampleID))
	})
	var s summary.TestSummary
	for _, r := range rows {
		res := summary.Result{SampleID: r.SampleID, Value: r.Value, Flag: r.Flag, Status: r.Status, CollectedAt: r.CollectedAt.UTC()}
		one := summary.TestSummary{Unit: r.Unit, Count: 1, Mean: r.Value, Min: r.Value, Max: r.Value, Last: res, Recent: []summary.Result{res}}
		if summary.Abnormal(r.Flag) {
			one.Abnormal = 1
		}
		s = summary.Merge(s, one)
	}
	return s
}

// compare lists how got differs from want.
func (a *auditor) compare(got, want summary.TestSummary) []string {
	var d []string
	near := func(x, y float64) bool { return math.Abs(x-y) <= a.opts.Tolerance*(1+math.Abs(y)) }
	if got.Count != want.Count {
		d = append(d, fmt.Sprintf("count %d, lab.results %d", got.Count, want.Count))
	}
	if want.Count == 0 || got.Count == 0 {
		return d // nothing else to compare
	}
	if got.Unit != want.Unit {
		d = append(d, fmt.Sprintf("unit %q, lab.results %q", got.Unit, want.Unit))
	}
	if !near(got.Mean, want.Mean) {
		d = append(d, fmt.Sprintf("mean %g, lab.results %g", got.Mean, want.Mean))
	}
	if !near(got.Variance(), want.Variance()) {
		d = append(d, fmt.Sprintf("variance %g, lab.results %g", got.Variance(), want.Variance()))
	}
	if !near(got.Min, want.Min) || !near(got.Max, want.Max) {
		d = append(d, fmt.Sprintf("min..max %g..%g, lab.results %g..%g", got.Min, got.Max, want.Min, want.Max))
	}
	if got.Abnormal != want.Abnormal {
		d = append(d, fmt.Sprintf("abnormal %d, lab.results %d", got.Abnormal, want.Abnormal))
	}
	if got.Last.SampleID != want.Last.SampleID || !near(got.Last.Value, want.Last.Value) {
		d = append(d, fmt.Sprintf("last %s=%g, lab.results %s=%g", got.Last.SampleID, got.Last.Value, want.Last.SampleID, want.Last.Value))
	}
	if g, w := sampleIDs(got.Recent), sampleIDs(want.Recent); !slices.Equal(g, w) {
		d = append(d, fmt.Sprintf("recent [%s], lab.results [%s]", strings.Join(g, " "), strings.Join(w, " ")))
	}
	return d
}

func sampleIDs(rs []summary.Result) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.SampleID
	}
	return out
}

// ledgerHint explains a mismatch with the test's ledger (read with
// summary.ReadLedger, wherever it is stored): the samples it counts that
// lab.results lacks, the ones it lacks, and the ones whose value differs.
func ledgerHint(ledger map[string]summary.Counted, rows []resultRow) string {
	if ledger == nil {
		return ""
	}
	inBQ := make(map[string]float64, len(rows))
	for _, r := range rows {
		inBQ[r.SampleID] = r.Value
	}
	var extra, lacks, differ []string
	for id, c := range ledger {
		v, ok := inBQ[id]
		switch {
		case !ok:
			extra = append(extra, id)
		case v != c.Value:
			differ = append(differ, id)
		}
	}
	for id := range inBQ {
		if _, ok := ledger[id]; !ok {
			lacks = append(lacks, id)
		}
	}
	var parts []string
	for _, p := range []struct {
		what string
		ids  []string
	}{{"counts samples lab.results lacks", extra}, {"lacks samples of lab.results", lacks}, {"has other values for", differ}} {
		if len(p.ids) > 0 {
			slices.Sort(p.ids)
			parts = append(parts, fmt.Sprintf("%s: %s", p.what, idList(p.ids)))
		}
	}
	if len(parts) == 0 {
		return " (ledger matches lab.results)"
	}
	return " (ledger " + strings.Join(parts, "; ") + ")"
}

func idList(ids []string) string {
	const show = 5
	s := strings.Join(ids[:min(len(ids), show)], ", ")
	if len(ids) > show {
		s += fmt.Sprintf(" and %d more", len(ids)-show)
	}
	return s
}
