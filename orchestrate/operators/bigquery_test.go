package operators_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/schema"
	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/operators"
	"github.com/labplatform/platform/testenv"
)

var day1 = time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC)

// TestBigQueryLoadParquet loads a Parquet file written with the contracts
// schema into lab.results with the defaults (Parquet, WRITE_TRUNCATE), twice,
// then appends it to a new table: the rows, the reported row counts and the
// replacement all hold.
func TestBigQueryLoadParquet(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	bucket := names.CuratedBucket(p.Prefix)
	rows := []result{
		{patient: "P1", test: "2345-7", value: 99.5, collected: day1},
		{patient: "P1", test: "2160-0", value: 0.9, collected: day1.Add(time.Minute)},
		{patient: "P2", test: "2345-7", value: 250.25, collected: day1.Add(time.Hour)},
	}
	upload(t, ctx, c.Storage, bucket, "results/date=2026-03-01/robot=R001/a.parquet", parquetResults(t, rows[:2]))
	upload(t, ctx, c.Storage, bucket, "results/date=2026-03-01/robot=R002/b.parquet", parquetResults(t, rows[2:]))

	var loaded []int64
	load := &operators.BigQueryLoad{
		Client: c.BigQuery,
		URIs: func(tc *dag.TaskContext) ([]string, error) {
			return []string{"gs://" + bucket + "/results/date=" + tc.LogicalDate.Format(time.DateOnly) + "/*"}, nil
		},
		Dataset: func(*dag.TaskContext) string { return names.Dataset },
		Table:   func(*dag.TaskContext) string { return names.ResultsTable },
		Schema:  schema.BigQuery(),
		Rows:    func(_ *dag.TaskContext, n int64) { loaded = append(loaded, n) },
	}
	tc := taskContext(t)
	for range 2 {
		if err := load.Execute(ctx, tc); err != nil {
			t.Fatalf("load: %v", err)
		}
	}
	got := queryRows(t, ctx, c.BigQuery, "SELECT patient_id, test_code, value, collected_at FROM lab.results ORDER BY patient_id, test_code")
	if len(got) != 3 {
		t.Fatalf("lab.results holds %d rows after two truncating loads, want 3: %v", len(got), got)
	}
	if got[0][0] != "P1" || got[0][1] != "2160-0" || got[0][2] != 0.9 || !got[0][3].(time.Time).Equal(day1.Add(time.Minute)) {
		t.Errorf("first row = %v", got[0])
	}
	if fmt.Sprint(loaded) != "[3 3]" {
		t.Errorf("Rows reported %v, want [3 3]", loaded)
	}

	appendLoad := *load
	appendLoad.Table = func(*dag.TaskContext) string { return "appended" }
	appendLoad.Write = bigquery.WriteAppend
	loaded = nil
	for range 2 {
		if err := appendLoad.Execute(ctx, tc); err != nil {
			t.Fatalf("append load: %v", err)
		}
	}
	if n := count(t, ctx, c.BigQuery, "lab.appended"); n != 6 {
		t.Errorf("lab.appended holds %d rows after two appends, want 6", n)
	}
	if fmt.Sprint(loaded) != "[3 3]" {
		t.Errorf("append Rows reported %v, want [3 3]", loaded)
	}
}

func TestBigQueryLoadErrorNamesJob(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 30*time.Second)
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	load := &operators.BigQueryLoad{
		Client: c.BigQuery,
		URIs: func(*dag.TaskContext) ([]string, error) {
			return []string{"gs://" + names.CuratedBucket(p.Prefix) + "/missing.parquet"}, nil
		},
		Dataset: func(*dag.TaskContext) string { return names.Dataset },
		Table:   func(*dag.TaskContext) string { return names.ResultsTable },
		Schema:  schema.BigQuery(),
	}
	err := load.Execute(ctx, taskContext(t))
	if err == nil {
		t.Fatal("load of a missing object succeeded")
	}
	if !strings.Contains(err.Error(), "job orchestrate_test_dag_test_task_try1_") || !strings.Contains(err.Error(), "lab.results") {
		t.Errorf("error %q does not name the job and the table", err)
	}

	load.URIs = func(*dag.TaskContext) ([]string, error) { return nil, errors.New("no day") }
	if err := load.Execute(ctx, taskContext(t)); err == nil || !strings.Contains(err.Error(), "no day") {
		t.Errorf("URIs error: Execute = %v", err)
	}
}

// TestBigQueryQueryWithParameters inserts and deletes rows with named
// parameters and refuses positional ones.
func TestBigQueryQueryWithParameters(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	tc := taskContext(t)
	run := func(sql string, params ...bigquery.QueryParameter) error {
		q := &operators.BigQueryQuery{Client: c.BigQuery, SQL: sql,
			Params: func(*dag.TaskContext) []bigquery.QueryParameter { return params }}
		return q.Execute(ctx, tc)
	}
	if err := run("CREATE TABLE lab.marks (day DATE, note STRING, n INT64)"); err != nil {
		t.Fatalf("create: %v", err)
	}
	for i, day := range []string{"2026-03-01", "2026-03-02"} {
		err := run("INSERT INTO lab.marks (day, note, n) VALUES (CAST(@day AS DATE), @note, @n)",
			bigquery.QueryParameter{Name: "day", Value: day},
			bigquery.QueryParameter{Name: "note", Value: "it's \"quoted\"; DROP TABLE x"},
			bigquery.QueryParameter{Name: "n", Value: int64(i + 1)})
		if err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	if err := run("DELETE FROM lab.marks WHERE day = CAST(@day AS DATE)", bigquery.QueryParameter{Name: "day", Value: "2026-03-01"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	got := queryRows(t, ctx, c.BigQuery, "SELECT CAST(day AS STRING), note, n FROM lab.marks")
	if len(got) != 1 || got[0][0] != "2026-03-02" || got[0][1] != `it's "quoted"; DROP TABLE x` || got[0][2] != int64(2) {
		t.Errorf("lab.marks = %v", got)
	}
	if err := run("SELECT ?", bigquery.QueryParameter{Value: 1}); err == nil || !strings.Contains(err.Error(), "positional") {
		t.Errorf("positional parameter: Execute = %v", err)
	}
	err := run("SELECT * FROM lab.no_such_table")
	if err == nil || !strings.Contains(err.Error(), "job orchestrate_test_dag_test_task_try1_") {
		t.Errorf("failing query: Execute = %v, want an error naming the job", err)
	}
}

func TestBigQueryAssert(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	bucket := names.CuratedBucket(p.Prefix)
	upload(t, ctx, c.Storage, bucket, "r.parquet", parquetResults(t, []result{
		{patient: "P1", test: "2345-7", value: 99.5, collected: day1},
		{patient: "P2", test: "2345-7", value: -1, collected: day1},
	}))
	if err := (&operators.BigQueryLoad{
		Client:  c.BigQuery,
		URIs:    func(*dag.TaskContext) ([]string, error) { return []string{"gs://" + bucket + "/r.parquet"}, nil },
		Dataset: func(*dag.TaskContext) string { return names.Dataset },
		Table:   func(*dag.TaskContext) string { return names.ResultsTable },
		Schema:  schema.BigQuery(),
	}).Execute(ctx, taskContext(t)); err != nil {
		t.Fatal(err)
	}
	negatives := func(maxAllowed int64) *operators.BigQueryAssert {
		return &operators.BigQueryAssert{
			Client: c.BigQuery,
			Name:   "no_negative_values",
			SQL:    "SELECT COUNT(*) AS n, @day AS day FROM lab.results WHERE value < 0 AND DATE(collected_at) = @day",
			Params: func(tc *dag.TaskContext) []bigquery.QueryParameter {
				return []bigquery.QueryParameter{{Name: "day", Value: tc.LogicalDate.Format(time.DateOnly)}}
			},
			Check: func(_ *dag.TaskContext, rows [][]bigquery.Value) error {
				if len(rows) != 1 || len(rows[0]) != 2 {
					return fmt.Errorf("want one row of two columns, got %v", rows)
				}
				if n := rows[0][0].(int64); n > maxAllowed {
					return fmt.Errorf("%d negative values on %v", n, rows[0][1])
				}
				return nil
			},
		}
	}
	if err := negatives(1).Execute(ctx, taskContext(t)); err != nil {
		t.Errorf("assertion that holds: %v", err)
	}
	err := negatives(0).Execute(ctx, taskContext(t))
	if !errors.Is(err, operators.ErrAssertion) {
		t.Fatalf("violated assertion: Execute = %v, want ErrAssertion", err)
	}
	if !strings.Contains(err.Error(), "no_negative_values") || !strings.Contains(err.Error(), "1 negative values on 2026-03-01") {
		t.Errorf("error %q does not name the assertion and the violation", err)
	}

	broken := negatives(0)
	broken.SQL = "SELECT nope FROM lab.results"
	if err := broken.Execute(ctx, taskContext(t)); err == nil || errors.Is(err, operators.ErrAssertion) {
		t.Errorf("failing SQL: Execute = %v, want an error that is not ErrAssertion", err)
	}
}
