package operators_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/storage"
	"github.com/parquet-go/parquet-go"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/schema"
	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }

// logicalDate is the day the test runs are for.
var logicalDate = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func taskContext(t *testing.T) *dag.TaskContext {
	return &dag.TaskContext{
		DAGID:       "test_dag",
		RunID:       "scheduled__2026-03-01T00:00:00Z",
		TaskID:      "test_task",
		LogicalDate: logicalDate,
		Interval:    dag.Interval{Start: logicalDate, End: logicalDate.AddDate(0, 0, 1)},
		Try:         1,
		Logger:      slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:         time.Now,
	}
}

// testCtx bounds one test.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func upload(t *testing.T, ctx context.Context, c *storage.Client, bucket, name string, data []byte) *storage.ObjectAttrs {
	t.Helper()
	w := c.Bucket(bucket).Object(name).NewWriter(ctx)
	if _, err := w.Write(data); err != nil {
		t.Fatalf("upload gs://%s/%s: %v", bucket, name, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("upload gs://%s/%s: %v", bucket, name, err)
	}
	return w.Attrs()
}

// result is a test row; the other columns get fixed values.
type result struct {
	patient, test string
	value         float64
	collected     time.Time
}

// parquetResults writes rows as a curated Parquet file with the contracts
// schema (parquet-go), leaving the optional columns null.
func parquetResults(t *testing.T, rows []result) []byte {
	t.Helper()
	sch := schema.Parquet()
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, sch)
	for i, r := range rows {
		m := map[string]any{}
		for _, c := range schema.Columns() {
			switch c.Name {
			case schema.PatientID:
				m[c.Name] = r.patient
			case schema.TestCode:
				m[c.Name] = r.test
			case schema.Value, schema.OriginalValue:
				m[c.Name] = r.value
			case schema.CollectedAt:
				m[c.Name] = r.collected
			case schema.IngestedAt:
				m[c.Name] = r.collected.Add(time.Hour)
			case schema.SourceGeneration:
				m[c.Name] = int64(1)
			case schema.SourceLine:
				m[c.Name] = int64(i + 2)
			default:
				switch {
				case !c.Required:
					m[c.Name] = nil
				case c.Kind == schema.String:
					m[c.Name] = c.Name + "-" + r.patient
				default:
					t.Fatalf("parquetResults does not fill required column %s", c.Name)
				}
			}
		}
		if _, err := w.WriteRows([]parquet.Row{sch.Deconstruct(nil, m)}); err != nil {
			t.Fatalf("write parquet: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("write parquet: %v", err)
	}
	return buf.Bytes()
}

// queryRows runs sql and returns its rows.
func queryRows(t *testing.T, ctx context.Context, bq *bigquery.Client, sql string, params ...bigquery.QueryParameter) [][]bigquery.Value {
	t.Helper()
	rows, err := tryQuery(ctx, bq, sql, params...)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return rows
}

func tryQuery(ctx context.Context, bq *bigquery.Client, sql string, params ...bigquery.QueryParameter) ([][]bigquery.Value, error) {
	q := bq.Query(sql)
	q.Parameters = params
	it, err := q.Read(ctx)
	if err != nil {
		return nil, err
	}
	var out [][]bigquery.Value
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, row)
	}
}

func count(t *testing.T, ctx context.Context, bq *bigquery.Client, table string) int64 {
	t.Helper()
	rows := queryRows(t, ctx, bq, "SELECT COUNT(*) FROM `"+table+"`")
	return rows[0][0].(int64)
}
