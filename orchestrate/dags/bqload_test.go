package dags_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/schema"
	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/dags"
	"github.com/labplatform/platform/orchestrate/operators"
)

var (
	loadDay = civil.Date{Year: 2026, Month: 11, Day: 20}
	prevDay = civil.Date{Year: 2026, Month: 11, Day: 19}
)

// at is hh:mm UTC on d.
func at(d civil.Date, hour, minute int) time.Time {
	return time.Date(d.Year, d.Month, d.Day, hour, minute, 0, 0, time.UTC)
}

// hourlyRun is the context of bq_load's run for the hour starting at hh:00
// on d.
func hourlyRun(d civil.Date, hour int, params map[string]string) dag.TaskContext {
	start := at(d, hour, 0)
	return runContext(dags.BQLoadID, start, start.Add(time.Hour), start.Add(time.Hour+time.Minute), params)
}

// rawFile is a raw object and the curated rows the process worker made of it.
type rawFile struct {
	name string // raw object name, robot=<R>/date=<D>/<file>
	rows []result
}

// shipped is what ship wrote.
type shipped struct {
	raw, curated, rawID string
	gen                 int64
}

// ship does what ingest and the process worker do for f on day: the raw
// object, the curated Parquet file of its rows and, unless edit says
// otherwise, a done lineage document. edit may change the document; a nil
// result leaves it unwritten.
func (p *platform) ship(t *testing.T, ctx context.Context, f rawFile, day civil.Date, edit func(*lineage.Ingestion) *lineage.Ingestion) shipped {
	t.Helper()
	raw := names.RawBucket(p.deps.Prefix)
	a := upload(t, ctx, p.c.Storage, raw, f.name, []byte("raw bytes of "+f.name))
	id, err := names.RawID(f.name, a.Generation)
	if err != nil {
		t.Fatal(err)
	}
	curated, err := names.CuratedObject(f.name, a.Generation, day)
	if err != nil {
		t.Fatal(err)
	}
	upload(t, ctx, p.c.Storage, names.CuratedBucket(p.deps.Prefix), curated, parquetOf(t, f.name, a.Generation, f.rows))
	obj, _ := names.ParseRawObject(f.name)
	n := int64(len(f.rows))
	ing := &lineage.Ingestion{
		RawID: id, Bucket: raw, Object: f.name, Generation: a.Generation, Size: a.Size,
		Robot: obj.Robot, Date: obj.Date.String(), SchemaVersion: "v3",
		Status: lineage.StatusDone, Attempt: 1, Worker: "test",
		RowsIn: n, RowsValid: n,
		Outputs: []lineage.Output{{Bucket: names.CuratedBucket(p.deps.Prefix), Object: curated, Day: day.String(), Rows: n}},
		Days:    []string{day.String()},
	}
	if edit != nil {
		ing = edit(ing)
	}
	if ing != nil {
		if _, err := p.c.Firestore.Collection(names.CollectionIngestions).Doc(id).Set(ctx, ing); err != nil {
			t.Fatalf("write lineage %s: %v", id, err)
		}
	}
	return shipped{raw: f.name, curated: curated, rawID: id, gen: a.Generation}
}

// dayRows returns every column of day's rows of lab.results, in key order.
func dayRows(t *testing.T, ctx context.Context, p *platform, day civil.Date) [][]bigquery.Value {
	t.Helper()
	return query(t, ctx, p.deps.BigQuery, "SELECT * FROM `lab.results` WHERE DATE(collected_at) = @day ORDER BY sample_id, test_code, source_object", dayParam(day))
}

func (p *platform) bqLoad(t *testing.T) *dag.DAG {
	t.Helper()
	g, err := dags.BQLoad(p.deps)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestBQLoadReplacesTheDayWithDeduplicatedRows runs bq_load end to end for a
// day whose curated files hold a copy of one file under another name and
// corrections that supersede results of an earlier file: lab.results ends up
// with one row per (sample, test), the best version, the other day is
// untouched, the views answer, and a second run leaves the table identical.
// Once the day's files are gone, a run empties the day.
func TestBQLoadReplacesTheDayWithDeduplicatedRows(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 90*time.Second)
	p := newPlatform(t)
	g := p.bqLoad(t)

	// The previous day, already in the table: it must not change.
	p.appendResults(t, ctx, "robot=R001/date=2026-11-19/p.csv", []result{
		{sample: "S0", patient: "P9", robot: "R001", test: "2345-7", value: 5.5, flag: "N", status: "final", collected: at(prevDay, 7, 0)},
		{sample: "S0", patient: "P9", robot: "R001", test: "2160-0", value: 0.8, flag: "N", status: "final", collected: at(prevDay, 7, 0)},
	})
	prev := dayRows(t, ctx, p, prevDay)
	if len(prev) != 2 {
		t.Fatalf("previous day: %d rows, want 2:\n%s", len(prev), fmtRows(prev))
	}

	collected := at(loadDay, 8, 0)
	copied := []result{
		{sample: "S4", patient: "P4", robot: "R002", test: "2345-7", value: 7.25, flag: "H", status: "final", collected: collected, analyzed: collected.Add(time.Hour)},
		{sample: "S5", patient: "P5", robot: "R002", test: "2160-0", value: 1.1, flag: "N", status: "final", collected: collected, analyzed: collected.Add(time.Hour)},
	}
	var files []shipped
	for _, f := range []rawFile{
		{name: "robot=R001/date=2026-11-20/a.csv", rows: []result{
			{sample: "S1", patient: "P1", robot: "R001", test: "2345-7", value: 4.0, flag: "N", status: "final", collected: collected, analyzed: collected.Add(time.Hour)},
			{sample: "S2", patient: "P2", robot: "R001", test: "2345-7", value: 9.5, flag: "HH", status: "final", collected: collected},
			{sample: "S3", patient: "P3", robot: "R001", test: "2160-0", value: 0.7, flag: "N", status: "preliminary", collected: collected, analyzed: collected.Add(time.Hour)},
		}},
		// The same export uploaded under two names.
		{name: "robot=R002/date=2026-11-20/b.csv", rows: copied},
		{name: "robot=R002/date=2026-11-20/c.csv", rows: copied},
		// A later file: a correction of S1 and the final result of S3.
		{name: "robot=R003/date=2026-11-20/d.csv", rows: []result{
			{sample: "S1", patient: "P1", robot: "R003", test: "2345-7", value: 4.5, flag: "N", status: "corrected", collected: collected, analyzed: collected.Add(3 * time.Hour)},
			{sample: "S3", patient: "P3", robot: "R003", test: "2160-0", value: 0.75, flag: "N", status: "final", collected: collected, analyzed: collected.Add(2 * time.Hour)},
		}},
	} {
		files = append(files, p.ship(t, ctx, f, loadDay, nil))
	}

	allSucceed(t, runDAG(t, ctx, g, hourlyRun(loadDay, 13, nil)))
	first := dayRows(t, ctx, p, loadDay)

	type key struct{ sample, test, status, source string }
	want := []key{
		{"S1", "2345-7", "corrected", "robot=R003/date=2026-11-20/d.csv"},
		{"S2", "2345-7", "final", "robot=R001/date=2026-11-20/a.csv"},
		{"S3", "2160-0", "final", "robot=R003/date=2026-11-20/d.csv"},
		{"S4", "2345-7", "final", "robot=R002/date=2026-11-20/b.csv"},
		{"S5", "2160-0", "final", "robot=R002/date=2026-11-20/b.csv"},
	}
	col := func(row []bigquery.Value, name string) bigquery.Value { return row[schema.Index(name)] }
	var gotKeys []key
	for _, r := range first {
		gotKeys = append(gotKeys, key{col(r, schema.SampleID).(string), col(r, schema.TestCode).(string), col(r, schema.Status).(string), col(r, schema.SourceObject).(string)})
	}
	if !slices.Equal(gotKeys, want) {
		t.Fatalf("lab.results for %s:\n%s\nwant %v", loadDay, fmtRows(first), want)
	}
	if v := col(first[0], schema.Value); v != 4.5 {
		t.Errorf("S1 value %v, want the corrected 4.5", v)
	}
	if after := dayRows(t, ctx, p, prevDay); !reflect.DeepEqual(after, prev) {
		t.Errorf("previous day changed:\n%s\nwant\n%s", fmtRows(after), fmtRows(prev))
	}
	if tableExists(t, ctx, p.deps.BigQuery, names.Dataset, dags.StagingTable(loadDay)) {
		t.Errorf("staging table %s still exists", dags.StagingTable(loadDay))
	}

	stats := query(t, ctx, p.deps.BigQuery, "SELECT test_code, results, min_value, max_value, abnormal_rate FROM `lab.daily_test_stats` WHERE day = @day ORDER BY test_code", dayParam(loadDay))
	wantStats := [][]bigquery.Value{{"2160-0", int64(2), 0.75, 1.1, 0.0}, {"2345-7", int64(3), 4.5, 9.5, 2.0 / 3}}
	if !reflect.DeepEqual(stats, wantStats) {
		t.Errorf("daily_test_stats for %s:\n%s\nwant\n%s", loadDay, fmtRows(stats), fmtRows(wantStats))
	}
	byRobot := query(t, ctx, p.deps.BigQuery, "SELECT robot_id, test_code, results, abnormal, critical FROM `lab.abnormal_rate_by_robot` WHERE day = @day ORDER BY robot_id, test_code", dayParam(loadDay))
	wantByRobot := [][]bigquery.Value{
		{"R001", "2345-7", int64(1), int64(1), int64(1)},
		{"R002", "2160-0", int64(1), int64(0), int64(0)},
		{"R002", "2345-7", int64(1), int64(1), int64(0)},
		{"R003", "2160-0", int64(1), int64(0), int64(0)},
		{"R003", "2345-7", int64(1), int64(0), int64(0)},
	}
	if !reflect.DeepEqual(byRobot, wantByRobot) {
		t.Errorf("abnormal_rate_by_robot for %s:\n%s\nwant\n%s", loadDay, fmtRows(byRobot), fmtRows(wantByRobot))
	}

	// The next hour reloads the same files: nothing changes.
	allSucceed(t, runDAG(t, ctx, g, hourlyRun(loadDay, 14, nil)))
	if again := dayRows(t, ctx, p, loadDay); !reflect.DeepEqual(again, first) {
		t.Errorf("second run changed the day:\n%s\nwant\n%s", fmtRows(again), fmtRows(first))
	}
	if after := dayRows(t, ctx, p, prevDay); !reflect.DeepEqual(after, prev) {
		t.Errorf("second run changed the previous day:\n%s\nwant\n%s", fmtRows(after), fmtRows(prev))
	}

	// The day's files and lineage go away: a manual run for the day (given
	// as a run parameter) empties it rather than failing, and still leaves
	// the previous day alone.
	for _, f := range files {
		p.unship(t, ctx, f)
	}
	allSucceed(t, runDAG(t, ctx, g, hourlyRun(prevDay, 3, map[string]string{dags.ParamDay: loadDay.String()})))
	if rows := dayRows(t, ctx, p, loadDay); len(rows) != 0 {
		t.Errorf("lab.results holds %d rows for %s, want none:\n%s", len(rows), loadDay, fmtRows(rows))
	}
	if after := dayRows(t, ctx, p, prevDay); !reflect.DeepEqual(after, prev) {
		t.Errorf("emptying %s changed the previous day:\n%s\nwant\n%s", loadDay, fmtRows(after), fmtRows(prev))
	}
}

// unship deletes what ship wrote.
func (p *platform) unship(t *testing.T, ctx context.Context, s shipped) {
	t.Helper()
	if err := p.c.Storage.Bucket(names.CuratedBucket(p.deps.Prefix)).Object(s.curated).Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.c.Storage.Bucket(names.RawBucket(p.deps.Prefix)).Object(s.raw).Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.c.Firestore.Collection(names.CollectionIngestions).Doc(s.rawID).Delete(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestBQLoadWaitsForLineage: a raw object of the day without a finished
// lineage document keeps wait_lineage waiting, and nothing downstream runs.
func TestBQLoadWaitsForLineage(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := newPlatform(t)
	g := p.bqLoad(t)
	rows := []result{{sample: "S1", patient: "P1", robot: "R001", test: "2345-7", value: 4, flag: "N", status: "final", collected: at(loadDay, 8, 0)}}
	var missing *lineage.Ingestion
	s := p.ship(t, ctx, rawFile{name: "robot=R001/date=2026-11-20/late.csv", rows: rows}, loadDay, func(ing *lineage.Ingestion) *lineage.Ingestion {
		missing = ing
		return nil
	})

	out := runDAG(t, ctx, g, hourlyRun(loadDay, 10, nil))
	checkStates(t, out, map[string]string{dags.TaskWaitLineage: stateWaiting, dags.TaskLoadStaging: stateBlocked, dags.TaskDropStaging: stateBlocked})
	if w := out[dags.TaskWaitLineage].waiting; !strings.Contains(w, s.raw) || !strings.Contains(w, "no lineage") {
		t.Errorf("waiting text %q does not name %s and the missing lineage", w, s.raw)
	}

	missing.Status = lineage.StatusProcessing
	if _, err := p.c.Firestore.Collection(names.CollectionIngestions).Doc(s.rawID).Set(ctx, missing); err != nil {
		t.Fatal(err)
	}
	out = runDAG(t, ctx, g, hourlyRun(loadDay, 10, nil))
	if o := out[dags.TaskWaitLineage]; o.state != stateWaiting || !strings.Contains(o.waiting, "processing") {
		t.Errorf("with lineage processing: %s %q, want waiting on processing", o.state, o.waiting)
	}

	missing.Status = lineage.StatusDone
	if _, err := p.c.Firestore.Collection(names.CollectionIngestions).Doc(s.rawID).Set(ctx, missing); err != nil {
		t.Fatal(err)
	}
	sensor, _ := g.Task(dags.TaskWaitLineage)
	if o := runTask(t, ctx, sensor, hourlyRun(loadDay, 10, nil)); o.state != stateSuccess {
		t.Errorf("with lineage done: %s %q %v, want success", o.state, o.waiting, o.err)
	}
}

// TestBQLoadAssertCountsFailsWhenLineageDisagrees: lineage that records more
// rows than the curated files hold fails assert_counts with an error naming
// the day and both counts; the views are not refreshed and the staging table
// is dropped all the same.
func TestBQLoadAssertCountsFailsWhenLineageDisagrees(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := newPlatform(t)
	g := p.bqLoad(t)
	rows := []result{
		{sample: "S1", patient: "P1", robot: "R001", test: "2345-7", value: 4, flag: "N", status: "final", collected: at(loadDay, 8, 0)},
		{sample: "S2", patient: "P2", robot: "R001", test: "2345-7", value: 5, flag: "N", status: "final", collected: at(loadDay, 9, 0)},
	}
	p.ship(t, ctx, rawFile{name: "robot=R001/date=2026-11-20/a.csv", rows: rows}, loadDay, func(ing *lineage.Ingestion) *lineage.Ingestion {
		ing.Outputs[0].Rows = 3
		return ing
	})

	out := runDAG(t, ctx, g, hourlyRun(loadDay, 10, nil))
	checkStates(t, out, map[string]string{
		dags.TaskReplaceDay:             stateSuccess,
		dags.TaskAssertCounts:           stateFailed,
		dags.TaskAssertNoNullPatient:    stateSuccess,
		dags.TaskAssertUniqueSampleTest: stateSuccess,
		dags.TaskRecordLoad:             stateUpstreamFailed,
		dags.TaskRefreshViews:           stateUpstreamFailed,
		dags.TaskDropStaging:            stateSuccess,
	})
	if _, err := p.c.Firestore.Collection(names.CollectionDayLoads).Doc(loadDay.String()).Get(ctx); status.Code(err) != codes.NotFound {
		t.Errorf("a day whose assertions failed has a load record (err %v): lifecycle could delete its raw files", err)
	}
	err := out[dags.TaskAssertCounts].err
	if !errors.Is(err, operators.ErrAssertion) {
		t.Errorf("assert_counts error %v does not wrap operators.ErrAssertion", err)
	}
	for _, s := range []string{"2026-11-20", "staging holds 2 rows", "records 3"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("assert_counts error %v does not say %q", err, s)
		}
	}
	if err != nil && (strings.Contains(err.Error(), "P1") || strings.Contains(err.Error(), "S1")) {
		t.Errorf("assert_counts error %v names a patient or sample", err)
	}
	if tableExists(t, ctx, p.deps.BigQuery, names.Dataset, dags.StagingTable(loadDay)) {
		t.Errorf("staging table %s still exists", dags.StagingTable(loadDay))
	}
}

// TestBQLoadRejectsAMalformedDay: the run parameter day must be a date.
func TestBQLoadRejectsAMalformedDay(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 30*time.Second)
	p := offlinePlatform(t)
	g := p.bqLoad(t)
	out := runDAG(t, ctx, g, hourlyRun(loadDay, 10, map[string]string{dags.ParamDay: "2026-13-01"}))
	checkStates(t, out, map[string]string{dags.TaskWaitLineage: stateFailed, dags.TaskLoadStaging: stateUpstreamFailed})
	if err := out[dags.TaskWaitLineage].err; err == nil || !strings.Contains(err.Error(), "2026-13-01") {
		t.Errorf("wait_lineage error %v does not name the day", err)
	}
	task, _ := g.Task(dags.TaskLoadStaging)
	if o := runTask(t, ctx, task, hourlyRun(loadDay, 10, map[string]string{dags.ParamDay: "2026-13-01"})); o.err == nil || !strings.Contains(o.err.Error(), "2026-13-01") {
		t.Errorf("load_staging error %v does not name the day", o.err)
	}
}

// TestBQLoadShape pins the schedule and the dependencies.
func TestBQLoadShape(t *testing.T) {
	t.Parallel()
	g := offlinePlatform(t).bqLoad(t)
	if g.ID != "bq_load" || g.Schedule != "@hourly" || g.Location != time.UTC || g.MaxActiveRuns != 1 ||
		g.Catchup != (dag.Catchup{Mode: dag.CatchupLateness, MaxLateness: 48 * time.Hour}) {
		t.Errorf("bq_load: id %s schedule %s location %v max active runs %d catchup %+v", g.ID, g.Schedule, g.Location, g.MaxActiveRuns, g.Catchup)
	}
	var ids []string
	for _, task := range g.Tasks() {
		ids = append(ids, task.ID)
	}
	for _, pair := range [][2]string{
		{dags.TaskWaitLineage, dags.TaskLoadStaging}, {dags.TaskLoadStaging, dags.TaskReplaceDay},
		{dags.TaskReplaceDay, dags.TaskAssertCounts}, {dags.TaskReplaceDay, dags.TaskAssertNoNullPatient},
		{dags.TaskReplaceDay, dags.TaskAssertUniqueSampleTest}, {dags.TaskAssertCounts, dags.TaskRefreshViews},
		{dags.TaskRefreshViews, dags.TaskDropStaging}, {dags.TaskAssertCounts, dags.TaskDropStaging},
	} {
		if slices.Index(ids, pair[0]) > slices.Index(ids, pair[1]) || !slices.Contains(ids, pair[0]) {
			t.Errorf("task order %v: %s should come before %s", ids, pair[0], pair[1])
		}
	}
	sensor, _ := g.Task(dags.TaskWaitLineage)
	if !sensor.IsSensor() || sensor.PokeInterval != time.Minute || sensor.SensorTimeout != 50*time.Minute {
		t.Errorf("wait_lineage: sensor %v poke %v timeout %v", sensor.IsSensor(), sensor.PokeInterval, sensor.SensorTimeout)
	}
	drop, _ := g.Task(dags.TaskDropStaging)
	if drop.TriggerRule != dag.AllDone {
		t.Errorf("drop_staging trigger rule %s, want all_done", drop.TriggerRule)
	}
	if _, err := dags.BQLoad(dags.Deps{}); err == nil {
		t.Error("BQLoad without clients: no error")
	}
}
