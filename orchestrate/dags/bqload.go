package dags

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/schema"
	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/operators"
)

// BQLoadID is the ID of the DAG that loads lab.results.
const BQLoadID = "bq_load"

// The tasks of bq_load, in dependency order.
const (
	TaskWaitLineage            = "wait_lineage"
	TaskLoadStaging            = "load_staging"
	TaskReplaceDay             = "replace_day"
	TaskAssertCounts           = "assert_counts"
	TaskAssertNoNullPatient    = "assert_no_null_patient"
	TaskAssertUniqueSampleTest = "assert_unique_sample_test"
	TaskRecordLoad             = "record_load"
	TaskRefreshViews           = "refresh_views"
	TaskDropStaging            = "drop_staging"
)

// stagingTTL is the expiration of a staging table on BigQuery: a safety net
// should drop_staging never run (the emulator ignores expirations).
const stagingTTL = 7 * 24 * time.Hour

// StagingTable is the table bq_load stages day's curated rows in.
func StagingTable(day civil.Date) string { return names.ResultsTable + "_staging_" + compact(day) }

// loadDay is the day a bq_load run loads: the run parameter "day", or the
// UTC date its data interval starts on.
func loadDay(tc *dag.TaskContext) (civil.Date, error) {
	if d, ok, err := dayParam(tc); ok || err != nil {
		return d, err
	}
	start := tc.Interval.Start
	if start.IsZero() {
		start = tc.LogicalDate
	}
	return civil.DateOf(start.UTC()), nil
}

// BQLoad returns the DAG that keeps lab.results equal to the curated files,
// one day at a time. Every hour it reloads the day its data interval starts
// on (or the run parameter "day"):
//
//	wait_lineage -> load_staging -> replace_day -> assert_counts
//	                                            -> assert_no_null_patient
//	                                            -> assert_unique_sample_test
//	               -> record_load (after the three assertions)
//	               -> refresh_views (after the three assertions)
//	               -> drop_staging (all_done, after every reader of the staging table)
//
// wait_lineage waits until every raw object of the day has a finished lineage
// document; load_staging loads gs://<prefix>-curated/results/date=D/*.parquet
// into lab.results_staging_<YYYYMMDD> (empty when the day has no curated
// file); replace_day swaps the day's rows of lab.results for the
// deduplicated staging rows in one transaction. A run repeated on unchanged
// files leaves the table as it was. record_load writes the day's
// lineage.DayLoad once the assertions passed: the lifecycle enforcer deletes
// a raw object only after a load that read its curated files.
func BQLoad(d Deps) (*dag.DAG, error) {
	if err := d.requireData(BQLoadID); err != nil {
		return nil, err
	}
	l := &bqLoad{d: d}
	retry := func(t *dag.Task, n int) *dag.Task {
		t.Retries, t.RetryDelay = n, time.Minute
		return t
	}
	assertions := []string{TaskAssertCounts, TaskAssertNoNullPatient, TaskAssertUniqueSampleTest}
	return dag.New(dag.DAG{
		ID:            BQLoadID,
		Description:   "Replace the day's rows of lab.results with the deduplicated curated Parquet files, check them against lineage, refresh the analyst views.",
		Schedule:      "@hourly",
		Location:      time.UTC,
		Catchup:       dag.Catchup{Mode: dag.CatchupLateness, MaxLateness: 48 * time.Hour},
		MaxActiveRuns: 1,
		RunDeadline:   2 * time.Hour,
		Params:        map[string]string{ParamDay: ""},
		Tags:          []string{"bigquery", "results"},
	},
		&dag.Task{
			ID: TaskWaitLineage,
			Sensor: &operators.LineageSensor{
				Storage:   d.Storage,
				Firestore: d.Firestore,
				RawBucket: names.RawBucket(d.Prefix),
				Day: func(tc *dag.TaskContext) string {
					day, err := loadDay(tc)
					if err != nil {
						return tc.Param(ParamDay, "") // the sensor rejects it, naming it
					}
					return day.String()
				},
			},
			PokeInterval:  time.Minute,
			SensorTimeout: 50 * time.Minute,
			Timeout:       5 * time.Minute,
		},
		retry(&dag.Task{ID: TaskLoadStaging, Operator: onDay(loadDay, l.loadStaging), Upstream: []string{TaskWaitLineage}, Timeout: 30 * time.Minute}, 2),
		retry(&dag.Task{ID: TaskReplaceDay, Operator: onDay(loadDay, l.replaceDay), Upstream: []string{TaskLoadStaging}, Timeout: 30 * time.Minute}, 2),
		// A count mismatch can be a file of a later day still being
		// processed: its curated output exists before its lineage says
		// done. Retries give it time.
		retry(&dag.Task{ID: TaskAssertCounts, Operator: onDay(loadDay, l.assertCounts), Upstream: []string{TaskReplaceDay}, Timeout: 10 * time.Minute}, 2),
		retry(&dag.Task{ID: TaskAssertNoNullPatient, Operator: onDay(loadDay, l.assertNoNullPatient), Upstream: []string{TaskReplaceDay}, Timeout: 10 * time.Minute}, 1),
		retry(&dag.Task{ID: TaskAssertUniqueSampleTest, Operator: onDay(loadDay, l.assertUniqueSampleTest), Upstream: []string{TaskReplaceDay}, Timeout: 10 * time.Minute}, 1),
		retry(&dag.Task{ID: TaskRecordLoad, Operator: onDay(loadDay, l.recordLoad), Upstream: assertions, Timeout: 5 * time.Minute}, 2),
		retry(&dag.Task{ID: TaskRefreshViews, Operator: dag.Func(l.refreshViews), Upstream: assertions, Timeout: 10 * time.Minute}, 2),
		retry(&dag.Task{
			ID:          TaskDropStaging,
			Operator:    onDay(loadDay, l.dropStaging),
			Upstream:    slices.Concat(assertions, []string{TaskRecordLoad, TaskRefreshViews}),
			TriggerRule: dag.AllDone,
			Timeout:     5 * time.Minute,
		}, 2),
	)
}

type bqLoad struct{ d Deps }

func dayParams(day civil.Date) func(*dag.TaskContext) []bigquery.QueryParameter {
	return func(*dag.TaskContext) []bigquery.QueryParameter {
		return []bigquery.QueryParameter{{Name: "day", Value: day}}
	}
}

// table quotes dataset.table for SQL. Both are plain IDs made here.
func table(id string) string { return "`" + names.Dataset + "." + id + "`" }

// loadStaging makes the staging table hold exactly the day's curated rows.
// The table is created fresh (empty) first, then loaded when the day has
// curated files: a load of a wildcard that matches nothing fails on
// BigQuery and, on the emulator, succeeds without truncating anything.
func (l *bqLoad) loadStaging(ctx context.Context, tc *dag.TaskContext, day civil.Date) error {
	bq, staging := l.d.BigQuery, StagingTable(day)
	bucket, prefix := names.CuratedBucket(l.d.Prefix), names.CuratedDayPrefix(day)
	// Taken before the files are listed: every ingestion finished by then
	// has its curated file in the load.
	stagedAt := now(tc)
	files, err := countParquet(ctx, l.d.Storage, bucket, prefix)
	if err != nil {
		return err
	}
	if err := ensureDataset(ctx, bq, names.Dataset); err != nil {
		return err
	}
	if err := recreateTable(ctx, bq, names.Dataset, staging, &bigquery.TableMetadata{
		Description:    "bq_load staging of the curated results of " + day.String(),
		Schema:         schema.BigQuery(),
		ExpirationTime: now(tc).Add(stagingTTL),
		Labels:         map[string]string{stagedAtLabel: strconv.FormatInt(stagedAt.UnixNano(), 10)},
	}); err != nil {
		return err
	}
	log := logger(tc).With("day", day.String(), "table", names.Dataset+"."+staging)
	if files == 0 {
		log.Info("no curated files for the day: staging left empty, the day will be emptied")
		return nil
	}
	// No Rows callback: the emulator reports no load statistics and the
	// operator would count the table with an extra query; assert_counts
	// logs the staging rows anyway.
	load := &operators.BigQueryLoad{
		Client: bq,
		URIs: func(*dag.TaskContext) ([]string, error) {
			return []string{"gs://" + bucket + "/" + prefix + "*.parquet"}, nil
		},
		Dataset: func(*dag.TaskContext) string { return names.Dataset },
		Table:   func(*dag.TaskContext) string { return staging },
		Schema:  schema.BigQuery(),
		Format:  bigquery.Parquet,
		Write:   bigquery.WriteTruncate,
		Create:  bigquery.CreateNever,
	}
	if err := load.Execute(ctx, tc); err != nil {
		return err
	}
	log.Info("staged the day's curated files", "files", files)
	return nil
}

// stagedAtLabel, on the staging table, is when load_staging listed the
// day's curated files (Unix nanoseconds).
const stagedAtLabel = "staged_at_unix_nano"

// recordLoad writes the day's lineage.DayLoad: the day is in lab.results,
// checked, with every curated file that existed when staging began.
func (l *bqLoad) recordLoad(ctx context.Context, tc *dag.TaskContext, day civil.Date) error {
	md, err := l.d.BigQuery.Dataset(names.Dataset).Table(StagingTable(day)).Metadata(ctx)
	if err != nil {
		return fmt.Errorf("read staging table %s: %w", StagingTable(day), err)
	}
	ns, err := strconv.ParseInt(md.Labels[stagedAtLabel], 10, 64)
	if err != nil {
		return fmt.Errorf("staging table %s: label %s=%q: %w", StagingTable(day), stagedAtLabel, md.Labels[stagedAtLabel], err)
	}
	rows, err := l.dayRows(ctx, day)
	if err != nil {
		return err
	}
	rec := lineage.DayLoad{
		Day: day.String(), StagingStartedAt: time.Unix(0, ns).UTC(), LoadedAt: now(tc),
		DAGID: tc.DAGID, RunID: tc.RunID, Rows: rows,
	}
	if tc.DryRun {
		logger(tc).Info("dry run: day load not recorded", "day", rec.Day, "rows", rows)
		return nil
	}
	if _, err := l.d.Firestore.Collection(names.CollectionDayLoads).Doc(rec.Day).Set(ctx, rec); err != nil {
		return fmt.Errorf("record load of %s: %w", rec.Day, err)
	}
	logger(tc).Info("day load recorded", "day", rec.Day, "rows", rows)
	return nil
}

// dayRows counts day's rows of lab.results.
func (l *bqLoad) dayRows(ctx context.Context, day civil.Date) (int64, error) {
	q := l.d.BigQuery.Query("SELECT COUNT(*) FROM " + table(names.ResultsTable) + " WHERE DATE(collected_at) = @day")
	q.Parameters = []bigquery.QueryParameter{{Name: "day", Value: day}}
	it, err := q.Read(ctx)
	if err != nil {
		return 0, fmt.Errorf("count rows of %s: %w", day, err)
	}
	var row []bigquery.Value
	if err := it.Next(&row); err != nil {
		return 0, fmt.Errorf("count rows of %s: %w", day, err)
	}
	n, err := ints([][]bigquery.Value{row}, 1)
	if err != nil {
		return 0, fmt.Errorf("count rows of %s: %w", day, err)
	}
	return n[0], nil
}

// countParquet counts the Parquet objects under prefix.
func countParquet(ctx context.Context, gcs *storage.Client, bucket, prefix string) (int, error) {
	q := &storage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return 0, fmt.Errorf("list gs://%s/%s: %w", bucket, prefix, err)
	}
	it := gcs.Bucket(bucket).Objects(ctx, q)
	n := 0
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("list gs://%s/%s: %w", bucket, prefix, err)
		}
		if strings.HasSuffix(a.Name, ".parquet") {
			n++
		}
	}
}

// statusRank orders the versions of one result: a correction beats a final
// result, which beats a preliminary one.
const statusRank = "CASE status WHEN 'corrected' THEN 3 WHEN 'final' THEN 2 WHEN 'preliminary' THEN 1 ELSE 0 END"

// replaceDaySQL swaps the day's rows of lab.results for the staging rows,
// one row per (sample_id, test_code): the highest status, then the latest
// analysis, then the first source object and line, so that the same bytes
// uploaded under two names (identical rows in two curated files) count once
// and a re-run picks the same row.
//
// Why a DML transaction and not a load into the partition results$YYYYMMDD
// with WRITE_TRUNCATE: the emulator does not honour partition decorators (it
// creates a table named "results$YYYYMMDD"), and a load cannot deduplicate.
// The transaction runs the same on both: on BigQuery it is atomic (readers
// see the old day or the new one); on the emulator the whole script runs in
// one SQLite transaction, so a failing statement rolls back the DELETE too.
//
// Cost: a load job (decorator or not) is free, whereas DML is billed as a
// query: the DELETE scans the day's partition of lab.results (partition
// pruning on DATE(collected_at) keeps it to that day), the INSERT scans the
// staging table, and both count against DML quotas. On BigQuery alone the
// cheapest atomic replace would be a query job over staging with the
// deduplication, destination results$YYYYMMDD and WRITE_TRUNCATE (billed for
// the staging scan only); it is not used because the emulator cannot run it.
//
// Every statement names @day: the emulator hands the script's parameters to
// each statement and rejects a statement that does not use them all.
func replaceDaySQL(staging string) string {
	cols := make([]string, 0, len(schema.Columns()))
	for _, c := range schema.Columns() {
		cols = append(cols, c.Name)
	}
	list := strings.Join(cols, ", ")
	return `BEGIN TRANSACTION;
DELETE FROM ` + table(names.ResultsTable) + ` WHERE DATE(collected_at) = @day;
INSERT INTO ` + table(names.ResultsTable) + ` (` + list + `)
SELECT ` + list + ` FROM (
  SELECT *, ROW_NUMBER() OVER (
    PARTITION BY sample_id, test_code
    ORDER BY ` + statusRank + ` DESC, analyzed_at DESC, source_object, source_generation, source_line
  ) AS rn
  FROM ` + table(staging) + `
  WHERE DATE(collected_at) = @day
) WHERE rn = 1;
COMMIT TRANSACTION;`
}

// replaceDay creates lab.results when it is missing and replaces the day.
func (l *bqLoad) replaceDay(ctx context.Context, tc *dag.TaskContext, day civil.Date) error {
	bq := l.d.BigQuery
	if err := ensureTable(ctx, bq, names.Dataset, names.ResultsTable, schema.BigQueryTable()); err != nil {
		return err
	}
	q := &operators.BigQueryQuery{Client: bq, SQL: replaceDaySQL(StagingTable(day)), Params: dayParams(day)}
	if err := q.Execute(ctx, tc); err != nil {
		return fmt.Errorf("replace %s of %s.%s: %w", day, names.Dataset, names.ResultsTable, err)
	}
	return nil
}

// lineageCount is what lineage says about a day's curated rows.
type lineageCount struct {
	rows       int64 // curated rows of the day, over done ingestions
	done       int   // done ingestions with rows of the day
	unfinished int   // other ingestions that list the day
}

// lineageRows sums the curated rows of day over the ingestions whose days
// list it and whose status is done. The status is filtered here rather than
// in the query, so that the query needs only Firestore's automatic
// single-field index and the error can say how many ingestions were not done.
func (l *bqLoad) lineageRows(ctx context.Context, day civil.Date) (lineageCount, error) {
	var c lineageCount
	curated := names.CuratedBucket(l.d.Prefix)
	it := l.d.Firestore.Collection(names.CollectionIngestions).Where("days", "array-contains", day.String()).Documents(ctx)
	defer it.Stop()
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return c, nil
		}
		if err != nil {
			return c, fmt.Errorf("lineage of %s: %w", day, err)
		}
		var ing lineage.Ingestion
		if err := snap.DataTo(&ing); err != nil {
			return c, fmt.Errorf("lineage of %s: decode %s: %w", day, snap.Ref.ID, err)
		}
		if ing.Status != lineage.StatusDone {
			c.unfinished++
			continue
		}
		c.done++
		for _, o := range ing.Outputs {
			if o.Day == day.String() && o.Bucket == curated {
				c.rows += o.Rows
			}
		}
	}
}

// assertCounts holds the staging table to lineage and lab.results to the
// staging table's distinct (sample, test) keys.
func (l *bqLoad) assertCounts(ctx context.Context, tc *dag.TaskContext, day civil.Date) error {
	want, err := l.lineageRows(ctx, day)
	if err != nil {
		return err
	}
	staging := table(StagingTable(day))
	a := &operators.BigQueryAssert{
		Client: l.d.BigQuery,
		Name:   "counts",
		SQL: `SELECT
  (SELECT COUNT(*) FROM ` + staging + `) AS staging_rows,
  (SELECT COUNTIF(DATE(collected_at) != @day) FROM ` + staging + `) AS off_day,
  (SELECT COUNT(*) FROM (SELECT DISTINCT sample_id, test_code FROM ` + staging + ` WHERE DATE(collected_at) = @day)) AS distinct_keys,
  (SELECT COUNT(*) FROM ` + table(names.ResultsTable) + ` WHERE DATE(collected_at) = @day) AS result_rows`,
		Params: dayParams(day),
		Check: func(tc *dag.TaskContext, rows [][]bigquery.Value) error {
			n, err := ints(rows, 4)
			if err != nil {
				return err
			}
			stagingRows, offDay, keys, results := n[0], n[1], n[2], n[3]
			var errs []error
			if stagingRows != want.rows {
				errs = append(errs, fmt.Errorf("day %s: staging holds %d rows, lineage of %d done ingestions records %d (%d ingestions listing the day are not done)",
					day, stagingRows, want.done, want.rows, want.unfinished))
			}
			if offDay != 0 {
				errs = append(errs, fmt.Errorf("day %s: %d staging rows were collected on another day", day, offDay))
			}
			if results != keys {
				errs = append(errs, fmt.Errorf("day %s: %s.%s holds %d rows, want %d (distinct sample and test of staging)",
					day, names.Dataset, names.ResultsTable, results, keys))
			}
			logger(tc).Info("day counts", "day", day.String(), "staging_rows", stagingRows, "lineage_rows", want.rows,
				"ingestions_done", want.done, "ingestions_not_done", want.unfinished, "result_rows", results,
				"duplicates_removed", stagingRows-offDay-results)
			return errors.Join(errs...)
		},
	}
	return a.Execute(ctx, tc)
}

// assertNoNullPatient fails when a row of the day has no patient.
func (l *bqLoad) assertNoNullPatient(ctx context.Context, tc *dag.TaskContext, day civil.Date) error {
	a := &operators.BigQueryAssert{
		Client: l.d.BigQuery,
		Name:   "no_null_patient",
		SQL:    `SELECT COUNTIF(patient_id IS NULL OR patient_id = '') FROM ` + table(names.ResultsTable) + ` WHERE DATE(collected_at) = @day`,
		Params: dayParams(day),
		Check: func(_ *dag.TaskContext, rows [][]bigquery.Value) error {
			n, err := ints(rows, 1)
			if err != nil {
				return err
			}
			if n[0] != 0 {
				return fmt.Errorf("day %s: %d rows of %s.%s have no patient_id", day, n[0], names.Dataset, names.ResultsTable)
			}
			return nil
		},
	}
	return a.Execute(ctx, tc)
}

// assertUniqueSampleTest fails when a (sample, test) of the day has more than
// one row.
func (l *bqLoad) assertUniqueSampleTest(ctx context.Context, tc *dag.TaskContext, day civil.Date) error {
	a := &operators.BigQueryAssert{
		Client: l.d.BigQuery,
		Name:   "unique_sample_test",
		SQL: `SELECT COUNT(*), IFNULL(SUM(n), 0) FROM (
  SELECT COUNT(*) AS n FROM ` + table(names.ResultsTable) + ` WHERE DATE(collected_at) = @day
  GROUP BY sample_id, test_code HAVING COUNT(*) > 1)`,
		Params: dayParams(day),
		Check: func(_ *dag.TaskContext, rows [][]bigquery.Value) error {
			n, err := ints(rows, 2)
			if err != nil {
				return err
			}
			if n[0] != 0 {
				return fmt.Errorf("day %s: %d (sample, test) keys of %s.%s have several rows (%d rows in all)",
					day, n[0], names.Dataset, names.ResultsTable, n[1])
			}
			return nil
		},
	}
	return a.Execute(ctx, tc)
}

// dropStaging deletes the day's staging table, if any.
func (l *bqLoad) dropStaging(ctx context.Context, _ *dag.TaskContext, day civil.Date) error {
	return dropTable(ctx, l.d.BigQuery, names.Dataset, StagingTable(day))
}

// ints reads one row of want integers.
func ints(rows [][]bigquery.Value, want int) ([]int64, error) {
	if len(rows) != 1 || len(rows[0]) != want {
		return nil, fmt.Errorf("want 1 row of %d values, got %d rows", want, len(rows))
	}
	out := make([]int64, want)
	for i, v := range rows[0] {
		n, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("value %d is a %T, want an integer", i, v)
		}
		out[i] = n
	}
	return out, nil
}
