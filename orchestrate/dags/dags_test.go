package dags_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"cloud.google.com/go/storage"
	"github.com/parquet-go/parquet-go"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/schema"
	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/dags"
	"github.com/labplatform/platform/orchestrate/notify"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }

// The states runDAG gives tasks.
const (
	stateSuccess        = "success"
	stateFailed         = "failed"
	stateUpstreamFailed = "upstream_failed"
	stateSkipped        = "skipped"
	// stateWaiting: a sensor whose condition does not hold yet.
	stateWaiting = "waiting"
	// stateBlocked: an upstream task is still waiting.
	stateBlocked = "blocked"
)

type outcome struct {
	state   string
	err     error
	waiting string
}

// runDAG runs g's tasks once each, in g.Tasks() order, as the scheduler
// would within one run: a sensor is poked once; a task runs when its trigger
// rule allows (all_success and all_done are the rules these DAGs use).
func runDAG(t *testing.T, ctx context.Context, g *dag.DAG, base dag.TaskContext) map[string]outcome {
	t.Helper()
	out := make(map[string]outcome, len(g.Tasks()))
	for _, task := range g.Tasks() {
		state := ""
		for _, u := range task.Upstream {
			switch s := out[u].state; {
			case s == stateWaiting || s == stateBlocked:
				state = stateBlocked
			case state == stateBlocked:
			case task.TriggerRule == dag.AllDone:
			case task.TriggerRule != dag.AllSuccess:
				t.Fatalf("task %s: runDAG does not know trigger rule %s", task.ID, task.TriggerRule)
			case s == stateFailed || s == stateUpstreamFailed:
				state = stateUpstreamFailed
			case s == stateSkipped && state == "":
				state = stateSkipped
			}
		}
		if state != "" {
			out[task.ID] = outcome{state: state}
			continue
		}
		out[task.ID] = runTask(t, ctx, task, base)
	}
	return out
}

func runTask(t *testing.T, ctx context.Context, task *dag.Task, base dag.TaskContext) outcome {
	t.Helper()
	tc := base
	tc.TaskID = task.ID
	tc.Try = 1
	tc.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})).With("task", task.ID)
	tctx, cancel := context.WithTimeout(ctx, task.Timeout)
	defer cancel()
	if task.IsSensor() {
		done, waiting, err := task.Sensor.Poke(tctx, &tc)
		switch {
		case err != nil:
			return outcome{state: stateFailed, err: err}
		case !done:
			return outcome{state: stateWaiting, waiting: waiting}
		}
		return outcome{state: stateSuccess}
	}
	err := task.Operator.Execute(tctx, &tc)
	switch {
	case errors.Is(err, dag.ErrSkip):
		return outcome{state: stateSkipped, err: err}
	case err != nil:
		return outcome{state: stateFailed, err: err}
	}
	return outcome{state: stateSuccess}
}

// checkStates fails the test unless every task listed ended in its state.
func checkStates(t *testing.T, got map[string]outcome, want map[string]string) {
	t.Helper()
	for id, w := range want {
		if g := got[id]; g.state != w {
			t.Errorf("task %s: state %s (err %v, waiting %q), want %s", id, g.state, g.err, g.waiting, w)
		}
	}
}

// allSucceed fails the test unless every task succeeded.
func allSucceed(t *testing.T, got map[string]outcome) {
	t.Helper()
	for id, g := range got {
		if g.state != stateSuccess {
			t.Errorf("task %s: state %s (err %v, waiting %q), want success", id, g.state, g.err, g.waiting)
		}
	}
}

// runContext is the context of a scheduled run over interval [start, end).
func runContext(dagID string, start, end, clock time.Time, params map[string]string) dag.TaskContext {
	return dag.TaskContext{
		DAGID:       dagID,
		RunID:       "scheduled__" + start.UTC().Format(time.RFC3339),
		LogicalDate: start,
		Interval:    dag.Interval{Start: start, End: end},
		Params:      params,
		Now:         func() time.Time { return clock },
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// recorder is a notify.Notifier that keeps what it is sent.
type recorder struct {
	mu     sync.Mutex
	alerts []notify.Alert
}

func (r *recorder) Notify(_ context.Context, a notify.Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, a)
	return nil
}

func (r *recorder) take() []notify.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.alerts
	r.alerts = nil
	return out
}

// platform is one test's isolated platform and the DAG dependencies on it.
type platform struct {
	deps  dags.Deps
	c     *testenv.Clients
	alert *recorder
}

func newPlatform(t *testing.T) *platform {
	t.Helper()
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	r := &recorder{}
	return &platform{
		deps: dags.Deps{
			Prefix:    p.Prefix,
			Storage:   c.Storage,
			BigQuery:  c.BigQuery,
			Firestore: c.Firestore,
			Notifier:  r,
		},
		c:     c,
		alert: r,
	}
}

// offlinePlatform has clients of the Env's default platform, for tests
// that build DAGs or fail before any call: it provisions nothing.
func offlinePlatform(t *testing.T) *platform {
	t.Helper()
	c := testenv.NewTestClients(t, env.Platform)
	r := &recorder{}
	return &platform{
		deps:  dags.Deps{Prefix: env.Platform.Prefix, Storage: c.Storage, BigQuery: c.BigQuery, Firestore: c.Firestore, Notifier: r},
		c:     c,
		alert: r,
	}
}

// result is a test result row; the columns it does not name get fixed
// values derived from the row.
type result struct {
	sample, patient, robot, test string
	value                        float64
	flag, status                 string
	collected                    time.Time
	analyzed                     time.Time // zero: null
}

// parquetOf writes rows as a curated Parquet file with the contracts schema
// (parquet-go), as the process worker would for raw object rawName.
func parquetOf(t *testing.T, rawName string, gen int64, rows []result) []byte {
	t.Helper()
	sch := schema.Parquet()
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, sch)
	for i, r := range rows {
		m := rowMap(r, rawName, gen, int64(i+2))
		if _, err := w.WriteRows([]parquet.Row{sch.Deconstruct(nil, m)}); err != nil {
			t.Fatalf("write parquet: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("write parquet: %v", err)
	}
	return buf.Bytes()
}

// rowMap is r as a full canonical row, keyed by column name.
func rowMap(r result, rawName string, gen, line int64) map[string]any {
	m := map[string]any{}
	for _, c := range schema.Columns() {
		switch c.Name {
		case schema.SampleID:
			m[c.Name] = r.sample
		case schema.PatientID:
			m[c.Name] = r.patient
		case schema.RobotID:
			m[c.Name] = r.robot
		case schema.TestCode:
			m[c.Name] = r.test
		case schema.TestName:
			m[c.Name] = "name of " + r.test
		case schema.Value, schema.OriginalValue:
			m[c.Name] = r.value
		case schema.Unit, schema.OriginalUnit:
			m[c.Name] = "mmol/L"
		case schema.RefLow:
			m[c.Name] = 1.0
		case schema.RefHigh:
			m[c.Name] = nil
		case schema.Flag:
			m[c.Name] = r.flag
		case schema.Status:
			m[c.Name] = r.status
		case schema.CollectedAt:
			m[c.Name] = r.collected
		case schema.AnalyzedAt:
			if r.analyzed.IsZero() {
				m[c.Name] = nil
			} else {
				m[c.Name] = r.analyzed
			}
		case schema.InstrumentFW:
			m[c.Name] = "fw-1"
		case schema.SchemaVersion:
			m[c.Name] = "v3"
		case schema.SourceObject:
			m[c.Name] = rawName
		case schema.SourceGeneration:
			m[c.Name] = gen
		case schema.SourceLine:
			m[c.Name] = line
		case schema.IngestedAt:
			m[c.Name] = r.collected.Add(3 * time.Hour)
		default:
			panic("rowMap does not fill column " + c.Name)
		}
	}
	return m
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

// appendResults appends rows, as if cleaned from raw object rawName, to
// lab.results with a load job of a Parquet file.
func (p *platform) appendResults(t *testing.T, ctx context.Context, rawName string, rows []result) {
	t.Helper()
	bucket, object := names.CuratedBucket(p.deps.Prefix), "seed/"+strings.ReplaceAll(rawName, "/", "_")+".parquet"
	upload(t, ctx, p.c.Storage, bucket, object, parquetOf(t, rawName, 1, rows))
	ref := bigquery.NewGCSReference("gs://" + bucket + "/" + object)
	ref.SourceFormat = bigquery.Parquet
	ref.Schema = schema.BigQuery() // the emulator needs it
	loader := p.deps.BigQuery.Dataset(names.Dataset).Table(names.ResultsTable).LoaderFrom(ref)
	loader.WriteDisposition = bigquery.WriteAppend
	job, err := loader.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := job.Wait(ctx)
	if err == nil {
		err = st.Err()
	}
	if err != nil {
		t.Fatalf("append to lab.results: %v", err)
	}
}

// query runs sql and returns its rows.
func query(t *testing.T, ctx context.Context, bq *bigquery.Client, sql string, params ...bigquery.QueryParameter) [][]bigquery.Value {
	t.Helper()
	q := bq.Query(sql)
	q.Parameters = params
	it, err := q.Read(ctx)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	var out [][]bigquery.Value
	for {
		var row []bigquery.Value
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatalf("query %q: %v", sql, err)
		}
		out = append(out, row)
	}
}

func dayParam(d civil.Date) bigquery.QueryParameter {
	return bigquery.QueryParameter{Name: "day", Value: d}
}

func tableExists(t *testing.T, ctx context.Context, bq *bigquery.Client, dataset, table string) bool {
	t.Helper()
	_, err := bq.Dataset(dataset).Table(table).Metadata(ctx)
	if err == nil {
		return true
	}
	if isNotFound(err) {
		return false
	}
	t.Fatalf("table %s.%s: %v", dataset, table, err)
	return false
}

func isNotFound(err error) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusNotFound
}

func fmtRows(rows [][]bigquery.Value) string {
	var b bytes.Buffer
	for _, r := range rows {
		fmt.Fprintln(&b, r)
	}
	return b.String()
}
