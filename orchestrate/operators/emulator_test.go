package operators_test

// Findings about goccy/bigquery-emulator v0.8.1 (as served by testenv) that
// the platform's load strategy depends on. Each test pins what the emulator
// does today, so an emulator upgrade that changes it fails here first.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/schema"
	"github.com/labplatform/platform/testenv"
)

// twoDays loads one row collected on 2026-03-01 and one on 2026-03-02 into
// lab.results and returns the URI of a file with two more rows of 2026-03-01.
func twoDays(t *testing.T, ctx context.Context, c *testenv.Clients, prefix string) string {
	t.Helper()
	bucket := names.CuratedBucket(prefix)
	day2 := day1.AddDate(0, 0, 1)
	upload(t, ctx, c.Storage, bucket, "both.parquet", parquetResults(t, []result{
		{patient: "P1", test: "2345-7", value: 1, collected: day1},
		{patient: "P2", test: "2345-7", value: 2, collected: day2},
	}))
	upload(t, ctx, c.Storage, bucket, "day1.parquet", parquetResults(t, []result{
		{patient: "P3", test: "2345-7", value: 3, collected: day1},
		{patient: "P4", test: "2345-7", value: 4, collected: day1.Add(time.Hour)},
	}))
	load(t, ctx, c.BigQuery, names.ResultsTable, "gs://"+bucket+"/both.parquet", bigquery.WriteTruncate)
	return "gs://" + bucket + "/day1.parquet"
}

func load(t *testing.T, ctx context.Context, bq *bigquery.Client, table, uri string, w bigquery.TableWriteDisposition) error {
	t.Helper()
	ref := bigquery.NewGCSReference(uri)
	ref.SourceFormat = bigquery.Parquet
	ref.Schema = schema.BigQuery()
	l := bq.Dataset(names.Dataset).Table(table).LoaderFrom(ref)
	l.WriteDisposition = w
	job, err := l.Run(ctx)
	if err != nil {
		return err
	}
	st, err := job.Wait(ctx)
	if err != nil {
		return err
	}
	return st.Err()
}

func perDay(t *testing.T, ctx context.Context, bq *bigquery.Client, table string) string {
	t.Helper()
	rows := queryRows(t, ctx, bq, "SELECT CAST(DATE(collected_at) AS STRING) AS d, COUNT(*) FROM `"+table+"` GROUP BY d ORDER BY d")
	return fmt.Sprint(rows)
}

// TestEmulatorPartitionDecorator: a load job into results$20260301 with
// WRITE_TRUNCATE does not replace the partition. The emulator takes the
// decorated name for a new table's name: lab.results keeps both days and its
// old 2026-03-01 row, and the rows land in a table literally named
// "results$20260301". So day replacement on the emulator must use a staging
// table and DML (see TestEmulatorTransaction), not decorators.
func TestEmulatorPartitionDecorator(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	uri := twoDays(t, ctx, c, p.Prefix)

	err := load(t, ctx, c.BigQuery, names.ResultsTable+"$20260301", uri, bigquery.WriteTruncate)
	t.Logf("load into results$20260301: err=%v", err)
	if err != nil {
		t.Fatalf("load into a decorated table: %v", err)
	}
	if got, want := perDay(t, ctx, c.BigQuery, "lab.results"), "[[2026-03-01 1] [2026-03-02 1]]"; got != want {
		t.Errorf("lab.results per day = %s, want %s (unchanged: the decorator is not honoured)", got, want)
	}
	md, err := c.BigQuery.Dataset(names.Dataset).Table(names.ResultsTable + "$20260301").Metadata(ctx)
	if err != nil {
		t.Fatalf("metadata of results$20260301: %v", err)
	}
	t.Logf("results$20260301: %d rows, partitioning %+v", md.NumRows, md.TimePartitioning)
	if got, want := perDay(t, ctx, c.BigQuery, "lab.results$20260301"), "[[2026-03-01 2]]"; got != want {
		t.Errorf("table results$20260301 per day = %s, want %s", got, want)
	}
}

// TestEmulatorTransaction: a multi-statement transaction in one query job,
// replacing one day from a staging table.
func TestEmulatorTransaction(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	uri := twoDays(t, ctx, c, p.Prefix)
	if err := load(t, ctx, c.BigQuery, "staging", uri, bigquery.WriteTruncate); err != nil {
		t.Fatalf("load staging: %v", err)
	}
	sql := `BEGIN TRANSACTION;
DELETE FROM lab.results WHERE DATE(collected_at) = CAST(@day AS DATE);
INSERT INTO lab.results SELECT * FROM lab.staging WHERE DATE(collected_at) = CAST(@day AS DATE);
COMMIT TRANSACTION;`
	_, err := tryQuery(ctx, c.BigQuery, sql, bigquery.QueryParameter{Name: "day", Value: "2026-03-01"})
	t.Logf("transaction: err=%v", err)
	if err != nil {
		t.Fatalf("multi-statement transaction: %v", err)
	}
	if got, want := perDay(t, ctx, c.BigQuery, "lab.results"), "[[2026-03-01 2] [2026-03-02 1]]"; got != want {
		t.Errorf("lab.results per day = %s, want %s", got, want)
	}

	// A statement that fails after the DELETE rolls the DELETE back.
	failing := `BEGIN TRANSACTION;
DELETE FROM lab.results WHERE DATE(collected_at) = CAST(@day AS DATE);
INSERT INTO lab.results SELECT * FROM lab.no_such_staging;
COMMIT TRANSACTION;`
	if _, err := tryQuery(ctx, c.BigQuery, failing, bigquery.QueryParameter{Name: "day", Value: "2026-03-01"}); err == nil {
		t.Error("transaction with a failing INSERT succeeded")
	}
	if got, want := perDay(t, ctx, c.BigQuery, "lab.results"), "[[2026-03-01 2] [2026-03-02 1]]"; got != want {
		t.Errorf("after a failed transaction lab.results per day = %s, want %s (rolled back)", got, want)
	}
}

// TestEmulatorWindowFunction: ROW_NUMBER() OVER (PARTITION BY ... ORDER BY
// ...) works, as a latest-result-per-patient query needs.
func TestEmulatorWindowFunction(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	twoDays(t, ctx, c, p.Prefix)
	rows, err := tryQuery(ctx, c.BigQuery, `SELECT patient_id, value, rn FROM (
  SELECT patient_id, value, ROW_NUMBER() OVER (PARTITION BY test_code ORDER BY collected_at DESC) AS rn
  FROM lab.results) WHERE rn <= 2 ORDER BY rn`)
	if err != nil {
		t.Fatalf("window function: %v", err)
	}
	if got, want := fmt.Sprint(rows), "[[P2 2 1] [P1 1 2]]"; got != want {
		t.Errorf("rows = %s, want %s", got, want)
	}
}

// TestEmulatorCreateOrReplaceView: CREATE OR REPLACE VIEW creates a view
// that does not exist. On one that exists it fails ("duplicate: table v:
// table is already created") yet replaces the view's query all the same; so
// does DROP VIEW IF EXISTS; CREATE VIEW as one job. CREATE VIEW IF NOT
// EXISTS fails too (and changes nothing). Updating the view query through
// the tables API (Table.Update with ViewQuery) answers success and changes
// nothing. What works cleanly: two query jobs, DROP VIEW IF EXISTS (also
// when there is no view), then CREATE VIEW.
func TestEmulatorCreateOrReplaceView(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	twoDays(t, ctx, c, p.Prefix)
	view := func(want string) {
		t.Helper()
		rows, err := tryQuery(ctx, c.BigQuery, "SELECT * FROM lab.v ORDER BY patient_id")
		if err != nil {
			t.Fatalf("query view: %v", err)
		}
		if got := fmt.Sprint(rows); got != want {
			t.Errorf("the view returns %s, want %s", got, want)
		}
	}
	run := func(sql string) error {
		_, err := tryQuery(ctx, c.BigQuery, sql)
		t.Logf("%s: err=%v", sql, err)
		return err
	}
	const above1, below2 = "SELECT patient_id FROM lab.results WHERE value > 1", "SELECT patient_id FROM lab.results WHERE value < 2"
	if err := run("DROP VIEW IF EXISTS lab.v"); err != nil {
		t.Errorf("drop a view that does not exist: %v", err)
	}
	if err := run("CREATE OR REPLACE VIEW lab.v AS " + above1); err != nil {
		t.Fatalf("create a new view: %v", err)
	}
	view("[[P2]]")
	// Each statement fails on the existing view; the view they leave, with
	// the definition they were given: the first two do replace it.
	for _, step := range []struct{ sql, view string }{
		{sql: "CREATE OR REPLACE VIEW lab.v AS " + below2, view: "[[P1]]"},
		{sql: "CREATE VIEW IF NOT EXISTS lab.v AS " + above1, view: "[[P1]]"},
		{sql: "DROP VIEW IF EXISTS lab.v; CREATE VIEW lab.v AS " + above1, view: "[[P2]]"},
	} {
		if run(step.sql) == nil {
			t.Errorf("%q succeeded on an existing view: the emulator changed, revisit the view strategy", step.sql)
		}
		view(step.view)
	}
	if _, err := c.BigQuery.Dataset(names.Dataset).Table("v").Update(ctx, bigquery.TableMetadataToUpdate{ViewQuery: below2}, ""); err != nil {
		t.Errorf("update the view query through the API: %v", err)
	}
	view("[[P2]]")
	if err := run("DROP VIEW IF EXISTS lab.v"); err != nil {
		t.Fatal(err)
	}
	if err := run("CREATE VIEW lab.v AS " + above1); err != nil {
		t.Fatal(err)
	}
	view("[[P2]]")
	if err := run("DROP VIEW IF EXISTS lab.v"); err != nil {
		t.Fatal(err)
	}
	if err := run("CREATE VIEW lab.v AS " + below2); err != nil {
		t.Fatal(err)
	}
	view("[[P1]]")
}

// TestEmulatorLoadQuirks pins three differences from BigQuery: a load job
// reports no load statistics (BigQueryLoad counts rows with a query
// instead); a wildcard that matches no object succeeds and, since the write
// disposition is applied at the first object, leaves the table as it was
// under WRITE_TRUNCATE (BigQuery fails the job: check the objects exist
// first); and a failed load is an error of the job insert call itself, not a
// job status error.
func TestEmulatorLoadQuirks(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	uri := twoDays(t, ctx, c, p.Prefix)

	ref := bigquery.NewGCSReference(uri)
	ref.SourceFormat = bigquery.Parquet
	ref.Schema = schema.BigQuery()
	job, err := c.BigQuery.Dataset(names.Dataset).Table("stats").LoaderFrom(ref).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := job.Wait(ctx)
	if err != nil || st.Err() != nil {
		t.Fatalf("load: %v %v", err, st.Err())
	}
	if st.Statistics != nil && st.Statistics.Details != nil {
		t.Errorf("the emulator now reports load statistics %#v: BigQueryLoad's counting fallback can go", st.Statistics.Details)
	}

	empty := "gs://" + names.CuratedBucket(p.Prefix) + "/results/date=2030-01-01/*"
	if err := load(t, ctx, c.BigQuery, names.ResultsTable, empty, bigquery.WriteTruncate); err != nil {
		t.Errorf("load of a wildcard matching nothing: %v (the emulator used to accept it)", err)
	}
	if n := count(t, ctx, c.BigQuery, "lab.results"); n != 2 {
		t.Errorf("lab.results holds %d rows after a truncating load of nothing, want the 2 it had", n)
	}

	ref = bigquery.NewGCSReference("gs://" + names.CuratedBucket(p.Prefix) + "/missing.parquet")
	ref.SourceFormat = bigquery.Parquet
	ref.Schema = schema.BigQuery()
	if _, err := c.BigQuery.Dataset(names.Dataset).Table(names.ResultsTable).LoaderFrom(ref).Run(ctx); err == nil {
		t.Error("load of a missing object: jobs.insert succeeded; the emulator now reports load errors in the job status")
	}
}
