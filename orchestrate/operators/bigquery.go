package operators

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/orchestrate/dag"
)

// ErrAssertion is wrapped by the error of a BigQueryAssert whose Check found
// a violation.
var ErrAssertion = errors.New("assertion failed")

// BigQueryLoad loads objects into a table with a load job and waits for it;
// the job error (status.Err()) is returned with the job ID. URIs, Dataset and
// Table are functions of the task context (logical date, params).
type BigQueryLoad struct {
	Client *bigquery.Client
	// URIs are gs://bucket/prefix/* patterns; at least one.
	URIs func(tc *dag.TaskContext) ([]string, error)
	// Dataset is a plain dataset ID. Table is a table ID, possibly with a
	// partition decorator (results$20260301) on BigQuery; the emulator does
	// not honour decorators (see emulator_test.go).
	Dataset, Table func(tc *dag.TaskContext) string
	// Schema is required for Parquet on the emulator; BigQuery reads it from
	// the files.
	Schema bigquery.Schema
	// Format defaults to bigquery.Parquet.
	Format bigquery.DataFormat
	// Write defaults to bigquery.WriteTruncate.
	Write bigquery.TableWriteDisposition
	// Create defaults to bigquery.CreateIfNeeded.
	Create           bigquery.TableCreateDisposition
	TimePartitioning *bigquery.TimePartitioning
	Clustering       *bigquery.Clustering
	// Rows, when set, receives the number of rows the job loaded.
	Rows func(tc *dag.TaskContext, n int64)
}

// Execute runs the load job and waits for it.
func (l *BigQueryLoad) Execute(ctx context.Context, tc *dag.TaskContext) error {
	if l.Client == nil || l.URIs == nil || l.Dataset == nil || l.Table == nil {
		return errors.New("bigquery load: Client, URIs, Dataset and Table are required")
	}
	dataset, table := l.Dataset(tc), l.Table(tc)
	dest := dataset + "." + table
	uris, err := l.URIs(tc)
	if err != nil {
		return fmt.Errorf("load %s: source uris: %w", dest, err)
	}
	if len(uris) == 0 {
		return fmt.Errorf("load %s: no source uris", dest)
	}
	ref := bigquery.NewGCSReference(uris...)
	ref.SourceFormat = cmp.Or(l.Format, bigquery.Parquet)
	ref.Schema = l.Schema
	t := l.Client.Dataset(dataset).Table(table)
	loader := t.LoaderFrom(ref)
	loader.WriteDisposition = cmp.Or(l.Write, bigquery.WriteTruncate)
	loader.CreateDisposition = cmp.Or(l.Create, bigquery.CreateIfNeeded)
	loader.TimePartitioning = l.TimePartitioning
	loader.Clustering = l.Clustering
	loader.JobIDConfig = jobID(tc)
	loader.Labels = jobLabels(tc)

	// The emulator reports no load statistics, so the row count falls back
	// to counting the table: before the job when it appends.
	var before int64
	if l.Rows != nil && loader.WriteDisposition == bigquery.WriteAppend {
		_, err := t.Metadata(ctx)
		var gerr *googleapi.Error
		switch {
		case errors.As(err, &gerr) && gerr.Code == http.StatusNotFound:
			// The job creates the table.
		case err != nil:
			return fmt.Errorf("load %s: %w", dest, err)
		default:
			if before, err = countRows(ctx, l.Client, dataset, table); err != nil {
				return fmt.Errorf("load %s: %w", dest, err)
			}
		}
	}
	job, err := loader.Run(ctx)
	if err != nil {
		return fmt.Errorf("load %s: job %s: %w", dest, loader.JobIDConfig.JobID, err)
	}
	st, err := job.Wait(ctx)
	if err != nil {
		return fmt.Errorf("load %s: job %s: %w", dest, job.ID(), err)
	}
	if err := st.Err(); err != nil {
		return fmt.Errorf("load %s: job %s: %w", dest, job.ID(), err)
	}
	log := logger(tc).With("job", job.ID(), "table", dest)
	if l.Rows == nil {
		log.Info("bigquery load done")
		return nil
	}
	n, ok := int64(0), false
	if st.Statistics != nil {
		if ls, isLoad := st.Statistics.Details.(*bigquery.LoadStatistics); isLoad {
			n, ok = ls.OutputRows, true
		}
	}
	if !ok {
		// goccy/bigquery-emulator fills no load statistics: count the
		// table instead. Exact for WRITE_TRUNCATE of a whole table and for
		// WRITE_APPEND with no concurrent writer.
		after, err := countRows(ctx, l.Client, dataset, table)
		if err != nil {
			return fmt.Errorf("load %s: job %s: %w", dest, job.ID(), err)
		}
		n = after - before
	}
	log.Info("bigquery load done", "rows", n, "rows_from_statistics", ok)
	l.Rows(tc, n)
	return nil
}

// countRows counts a table's rows with a query. A partition decorator
// cannot be counted this way.
func countRows(ctx context.Context, c *bigquery.Client, dataset, table string) (int64, error) {
	if !validTableID(dataset) || !validTableID(table) {
		return 0, fmt.Errorf("count rows of %s.%s: not a plain table name", dataset, table)
	}
	it, err := c.Query("SELECT COUNT(*) FROM `" + dataset + "." + table + "`").Read(ctx)
	if err != nil {
		return 0, fmt.Errorf("count rows of %s.%s: %w", dataset, table, err)
	}
	var row []bigquery.Value
	if err := it.Next(&row); err != nil {
		return 0, fmt.Errorf("count rows of %s.%s: %w", dataset, table, err)
	}
	n, ok := row[0].(int64)
	if !ok {
		return 0, fmt.Errorf("count rows of %s.%s: got %T", dataset, table, row[0])
	}
	return n, nil
}

// validTableID reports whether s is a plain dataset or table ID (letters,
// digits, underscores and hyphens), safe to put between backquotes.
func validTableID(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// BigQueryQuery runs SQL (standard SQL, named parameters only, never string
// formatting of values) and waits for it.
type BigQueryQuery struct {
	Client *bigquery.Client
	SQL    string
	Params func(tc *dag.TaskContext) []bigquery.QueryParameter
}

// Execute runs the query job and waits for it.
func (q *BigQueryQuery) Execute(ctx context.Context, tc *dag.TaskContext) error {
	job, err := runQuery(ctx, q.Client, q.SQL, q.Params, tc)
	if err != nil {
		return err
	}
	logger(tc).Info("bigquery query done", "job", job.ID())
	return nil
}

// BigQueryAssert runs SQL that returns rows; Check gets all rows as
// []bigquery.Value slices and returns an error describing the violation; a
// violation fails the task with an error wrapping ErrAssertion and the
// Check's error. The Check's message must not quote patient data: it ends up
// in logs and alerts.
type BigQueryAssert struct {
	Client *bigquery.Client
	// Name says what is asserted (for errors and logs).
	Name, SQL string
	Params    func(tc *dag.TaskContext) []bigquery.QueryParameter
	Check     func(tc *dag.TaskContext, rows [][]bigquery.Value) error
}

// Execute runs the query and checks its rows.
func (a *BigQueryAssert) Execute(ctx context.Context, tc *dag.TaskContext) error {
	if a.Check == nil {
		return fmt.Errorf("assert %s: no Check", a.Name)
	}
	job, err := runQuery(ctx, a.Client, a.SQL, a.Params, tc)
	if err != nil {
		return fmt.Errorf("assert %s: %w", a.Name, err)
	}
	it, err := job.Read(ctx)
	if err != nil {
		return fmt.Errorf("assert %s: read job %s: %w", a.Name, job.ID(), err)
	}
	var rows [][]bigquery.Value
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return fmt.Errorf("assert %s: read job %s: %w", a.Name, job.ID(), err)
		}
		rows = append(rows, row)
	}
	if err := a.Check(tc, rows); err != nil {
		return fmt.Errorf("assert %s: %w: %w", a.Name, ErrAssertion, err)
	}
	logger(tc).Info("bigquery assertion holds", "assertion", a.Name, "job", job.ID(), "rows", len(rows))
	return nil
}

// runQuery starts a standard SQL query job with named parameters and waits
// for it to succeed.
func runQuery(ctx context.Context, c *bigquery.Client, sql string, params func(*dag.TaskContext) []bigquery.QueryParameter, tc *dag.TaskContext) (*bigquery.Job, error) {
	if c == nil || sql == "" {
		return nil, errors.New("bigquery query: Client and SQL are required")
	}
	q := c.Query(sql)
	if params != nil {
		q.Parameters = params(tc)
	}
	for i, p := range q.Parameters {
		if p.Name == "" {
			return nil, fmt.Errorf("bigquery query: parameter %d has no name: positional parameters are not allowed", i)
		}
	}
	q.JobIDConfig = jobID(tc)
	q.Labels = jobLabels(tc)
	job, err := q.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("query: job %s: %w", q.JobIDConfig.JobID, err)
	}
	st, err := job.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("query: job %s: %w", job.ID(), err)
	}
	if err := st.Err(); err != nil {
		return nil, fmt.Errorf("query: job %s: %w", job.ID(), err)
	}
	return job, nil
}

// jobID names a job after its task and try, with a random suffix, so the ID
// says where a job in the BigQuery console came from. The ID is made here,
// not by the client, so that errors can name it even when the job could not
// be inserted.
func jobID(tc *dag.TaskContext) bigquery.JobIDConfig {
	prefix := "orchestrate"
	if tc != nil && tc.DAGID != "" && tc.TaskID != "" {
		prefix = fmt.Sprintf("orchestrate_%s_%s_try%d", tc.DAGID, tc.TaskID, tc.Try)
	}
	return bigquery.JobIDConfig{JobID: prefix + "_" + strconv.FormatUint(rand.Uint64(), 36)}
}

// jobLabels labels a job with its DAG and task (both valid label values:
// dag IDs are lower-case letters, digits and underscores, at most 63).
func jobLabels(tc *dag.TaskContext) map[string]string {
	if tc == nil || tc.DAGID == "" || tc.TaskID == "" {
		return nil
	}
	return map[string]string{"orchestrate_dag": tc.DAGID, "orchestrate_task": tc.TaskID}
}
