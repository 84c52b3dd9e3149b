package dags

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/schema"
	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/notify"
	"github.com/labplatform/platform/orchestrate/operators"
)

// QualityID is the ID of the data-quality DAG.
const QualityID = "quality"

// The tasks of the quality DAG, in order.
const (
	TaskComputeMetrics = "compute_metrics"
	TaskSendAlerts     = "send_alerts"
)

// QualityMetricsTable is the table of dataset lab the quality DAG writes:
// one row per (day, scope, subject, metric).
const QualityMetricsTable = "quality_metrics"

// The metrics, their scopes and the window they compare with.
const (
	ScopeTestCode = "test_code"
	ScopeRobot    = "robot"

	// MetricMeanShift is (mean of the day - trailing mean) / trailing
	// sample standard deviation, for one test code.
	MetricMeanShift = "mean_shift_sd"
	// MetricPSI is the population stability index of the day's values
	// against the trailing window, over PSIBins bins whose edges are the
	// trailing window's quantiles.
	MetricPSI = "psi"
	// MetricQuarantineRate is rows_quarantined / rows_in over the robot's
	// finished ingestions of raw objects dated the day.
	MetricQuarantineRate = "quarantine_rate"

	// TrailingDays is the reference window: [day-7, day-1].
	TrailingDays = 7
	// PSIBins is the number of PSI bins.
	PSIBins = 10
	// psiFloor replaces an empty bin's share, so the index stays finite.
	psiFloor = 1e-4
)

// Thresholds say when a quality metric is a breach. A metric computed on
// fewer results (or rows) than its minimum is recorded but never alerts.
type Thresholds struct {
	// MeanShiftSD: |mean shift| above this many trailing standard
	// deviations. Default 3.
	MeanShiftSD float64
	// PSI: population stability index above this. Default 0.25.
	PSI float64
	// QuarantineRate: share of a robot's rows quarantined above this.
	// Default 0.05.
	QuarantineRate float64
	// MinDayResults and MinTrailingResults: the fewest results of a test
	// code on the day and in the trailing window for its drift metrics to
	// count. With 10 bins the PSI of two samples of one distribution is
	// about 9/n, so fewer than 100 results would raise noise. Defaults 100
	// and 300.
	MinDayResults      int64
	MinTrailingResults int64
	// MinRobotRows: the fewest rows a robot shipped on the day for its
	// quarantine rate to count. Default 100.
	MinRobotRows int64
}

// DefaultThresholds are the thresholds used for the zero fields of
// Deps.Thresholds.
func DefaultThresholds() Thresholds {
	return Thresholds{
		MeanShiftSD:        3,
		PSI:                0.25,
		QuarantineRate:     0.05,
		MinDayResults:      100,
		MinTrailingResults: 300,
		MinRobotRows:       100,
	}
}

func (t Thresholds) withDefaults() Thresholds {
	def := DefaultThresholds()
	if t.MeanShiftSD == 0 {
		t.MeanShiftSD = def.MeanShiftSD
	}
	if t.PSI == 0 {
		t.PSI = def.PSI
	}
	if t.QuarantineRate == 0 {
		t.QuarantineRate = def.QuarantineRate
	}
	if t.MinDayResults == 0 {
		t.MinDayResults = def.MinDayResults
	}
	if t.MinTrailingResults == 0 {
		t.MinTrailingResults = def.MinTrailingResults
	}
	if t.MinRobotRows == 0 {
		t.MinRobotRows = def.MinRobotRows
	}
	return t
}

func (t Thresholds) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{{"mean shift", t.MeanShiftSD}, {"psi", t.PSI}, {"quarantine rate", t.QuarantineRate}} {
		if !(f.v > 0) || math.IsInf(f.v, 0) {
			errs = append(errs, fmt.Errorf("%s threshold %v is not a positive number", f.name, f.v))
		}
	}
	if t.MinDayResults < 0 || t.MinTrailingResults < 0 || t.MinRobotRows < 0 {
		errs = append(errs, errors.New("minimum counts must not be negative"))
	}
	return errors.Join(errs...)
}

// qualityDay is the day a quality run checks: the run parameter "day", or
// the UTC date one day before its data interval ends (the day that just
// ended for a daily schedule).
func qualityDay(tc *dag.TaskContext) (civil.Date, error) {
	if d, ok, err := dayParam(tc); ok || err != nil {
		return d, err
	}
	end := tc.Interval.End
	if end.IsZero() {
		end = tc.LogicalDate.AddDate(0, 0, 1)
	}
	return civil.DateOf(end.UTC().AddDate(0, 0, -1)), nil
}

// Quality returns the daily DAG compute_metrics -> send_alerts. For the day
// D, per test code: the shift of D's mean in trailing standard deviations
// and the PSI of D's values against [D-7, D-1], both computed in BigQuery
// (only aggregates leave it); per robot: the quarantine rate of D's
// ingestions from lineage. The metrics replace day D of lab.quality_metrics;
// send_alerts sends one notify.QualityAlert per breach recorded for D.
func Quality(d Deps) (*dag.DAG, error) {
	if err := d.requireData(QualityID); err != nil {
		return nil, err
	}
	if d.Notifier == nil {
		return nil, errors.New("dag quality: no Notifier")
	}
	th := d.Thresholds.withDefaults()
	if err := th.validate(); err != nil {
		return nil, fmt.Errorf("dag quality: %w", err)
	}
	q := &quality{d: d, th: th}
	return dag.New(dag.DAG{
		ID:            QualityID,
		Description:   "Per test code: mean shift and PSI of the day against the trailing 7 days; per robot: quarantine rate. Recorded in lab.quality_metrics, alerted on.",
		Schedule:      "30 1 * * *",
		Location:      time.UTC,
		Catchup:       dag.Catchup{Mode: dag.CatchupLateness, MaxLateness: TrailingDays * 24 * time.Hour},
		MaxActiveRuns: 1,
		RunDeadline:   6 * time.Hour,
		Params:        map[string]string{ParamDay: ""},
		Tags:          []string{"bigquery", "quality"},
	},
		&dag.Task{ID: TaskComputeMetrics, Operator: onDay(qualityDay, q.compute), Retries: 2, RetryDelay: time.Minute, Timeout: 30 * time.Minute},
		&dag.Task{ID: TaskSendAlerts, Operator: onDay(qualityDay, q.alert), Upstream: []string{TaskComputeMetrics}, Retries: 2, RetryDelay: time.Minute, Timeout: 10 * time.Minute},
	)
}

type quality struct {
	d  Deps
	th Thresholds
}

// metric is one row of lab.quality_metrics.
type metric struct {
	Scope   string
	Subject string
	Metric  string
	Value   float64
	// Threshold is the breach threshold in force when it was computed.
	Threshold float64
	// NDay is the test's results on the day, or the robot's rows in.
	NDay int64
	// NReference is the test's results in the trailing window, or the
	// robot's finished ingestions.
	NReference int64
	// Sufficient says the counts reached the minimums; only then can the
	// metric breach.
	Sufficient bool
	Breach     bool
}

// float64Field is BigQuery's FLOAT under its other name. BigQuery stores
// both as FLOAT; the emulator types a FLOAT column as a 32-bit float, into
// which INSERT ... SELECT of a FLOAT64 expression fails, and a FLOAT64 column
// as a 64-bit one.
const float64Field bigquery.FieldType = "FLOAT64"

func metricsSchema() bigquery.Schema {
	return bigquery.Schema{
		{Name: "day", Type: bigquery.DateFieldType, Required: true, Description: "day the metric is about (UTC)"},
		{Name: "scope", Type: bigquery.StringFieldType, Required: true, Description: "test_code or robot"},
		{Name: "subject", Type: bigquery.StringFieldType, Required: true, Description: "LOINC test code or robot id"},
		{Name: "metric", Type: bigquery.StringFieldType, Required: true, Description: "mean_shift_sd, psi or quarantine_rate"},
		{Name: "value", Type: float64Field, Required: true},
		{Name: "threshold", Type: float64Field, Required: true, Description: "breach threshold in force"},
		{Name: "n_day", Type: bigquery.IntegerFieldType, Required: true, Description: "results of the test on the day, or rows the robot shipped"},
		{Name: "n_reference", Type: bigquery.IntegerFieldType, Required: true, Description: "results of the test in the trailing window, or the robot's ingestions"},
		{Name: "sufficient", Type: bigquery.BooleanFieldType, Required: true, Description: "counts reached the minimums"},
		{Name: "breach", Type: bigquery.BooleanFieldType, Required: true},
		{Name: "computed_at", Type: bigquery.TimestampFieldType, Required: true},
		{Name: "run_id", Type: bigquery.StringFieldType, Required: true},
	}
}

// driftSQL computes, per test code with results both on @day and in the
// trailing window, the counts, means, trailing standard deviation and PSI.
// The bin edges are the trailing window's @bins-quantiles (the interior
// ones); RANGE_BUCKET puts each value in bin 0..@bins-1.
func driftSQL() string {
	results := table(names.ResultsTable)
	return `WITH trail AS (
  SELECT test_code, value FROM ` + results + `
  WHERE DATE(collected_at) BETWEEN DATE_SUB(@day, INTERVAL @window DAY) AND DATE_SUB(@day, INTERVAL 1 DAY)
), cur AS (
  SELECT test_code, value FROM ` + results + ` WHERE DATE(collected_at) = @day
), stats AS (
  SELECT test_code, APPROX_QUANTILES(value, @bins) AS q, COUNT(*) AS n, AVG(value) AS mean, STDDEV_SAMP(value) AS sd
  FROM trail GROUP BY test_code
), edges AS (
  SELECT test_code, n, mean, sd, ARRAY(SELECT x FROM UNNEST(q) AS x WITH OFFSET AS o WHERE o > 0 AND o < @bins ORDER BY o) AS e
  FROM stats
), cs AS (
  SELECT test_code, COUNT(*) AS n, AVG(value) AS mean FROM cur GROUP BY test_code
), tb AS (
  SELECT t.test_code, RANGE_BUCKET(t.value, e.e) AS bin, COUNT(*) AS n FROM trail AS t JOIN edges AS e USING (test_code) GROUP BY 1, 2
), cb AS (
  SELECT c.test_code, RANGE_BUCKET(c.value, e.e) AS bin, COUNT(*) AS n FROM cur AS c JOIN edges AS e USING (test_code) GROUP BY 1, 2
), bins AS (
  SELECT e.test_code,
    GREATEST(IFNULL(tb.n, 0) / e.n, ` + strconv.FormatFloat(psiFloor, 'g', -1, 64) + `) AS pt,
    GREATEST(IFNULL(cb.n, 0) / cs.n, ` + strconv.FormatFloat(psiFloor, 'g', -1, 64) + `) AS pc
  FROM edges AS e JOIN cs USING (test_code) CROSS JOIN UNNEST(GENERATE_ARRAY(0, @bins - 1)) AS b
  LEFT JOIN tb ON tb.test_code = e.test_code AND tb.bin = b
  LEFT JOIN cb ON cb.test_code = e.test_code AND cb.bin = b
), psi AS (
  SELECT test_code, SUM((pc - pt) * LN(pc / pt)) AS psi FROM bins GROUP BY test_code
)
SELECT e.test_code, cs.n AS n_day, cs.mean AS mean_day, e.n AS n_trail, e.mean AS mean_trail, e.sd AS sd_trail, psi.psi
FROM edges AS e JOIN cs USING (test_code) JOIN psi USING (test_code)
ORDER BY e.test_code`
}

type driftRow struct {
	TestCode  string               `bigquery:"test_code"`
	NDay      int64                `bigquery:"n_day"`
	MeanDay   float64              `bigquery:"mean_day"`
	NTrail    int64                `bigquery:"n_trail"`
	MeanTrail float64              `bigquery:"mean_trail"`
	SDTrail   bigquery.NullFloat64 `bigquery:"sd_trail"`
	PSI       bigquery.NullFloat64 `bigquery:"psi"`
}

// compute computes day's metrics and replaces the day in lab.quality_metrics.
func (q *quality) compute(ctx context.Context, tc *dag.TaskContext, day civil.Date) error {
	bq := q.d.BigQuery
	if err := ensureTable(ctx, bq, names.Dataset, names.ResultsTable, schema.BigQueryTable()); err != nil {
		return err
	}
	if err := ensureTable(ctx, bq, names.Dataset, QualityMetricsTable, &bigquery.TableMetadata{
		Description:      "Data-quality metrics of lab.results and of ingestion, one row per day, scope, subject and metric; written by the quality DAG.",
		Schema:           metricsSchema(),
		TimePartitioning: &bigquery.TimePartitioning{Type: bigquery.DayPartitioningType, Field: "day"},
	}); err != nil {
		return err
	}
	stamp := func(m metric) metric {
		m.Sufficient = m.NDay >= q.minDay(m.Scope) && m.NReference >= q.minReference(m.Scope)
		m.Breach = m.Sufficient && math.Abs(m.Value) > m.Threshold
		return m
	}
	drift, err := q.drift(ctx, tc, day)
	if err != nil {
		return err
	}
	robots, err := q.quarantine(ctx, day)
	if err != nil {
		return err
	}
	var metrics []metric
	for _, m := range append(drift, robots...) {
		metrics = append(metrics, stamp(m))
	}
	if err := q.replace(ctx, tc, day, metrics); err != nil {
		return err
	}
	breaches := 0
	for _, m := range metrics {
		if m.Breach {
			breaches++
		}
	}
	logger(tc).Info("quality metrics recorded", "day", day.String(), "metrics", len(metrics), "breaches", breaches)
	return nil
}

func (q *quality) minDay(scope string) int64 {
	if scope == ScopeRobot {
		return q.th.MinRobotRows
	}
	return q.th.MinDayResults
}

func (q *quality) minReference(scope string) int64 {
	if scope == ScopeRobot {
		return 1
	}
	return q.th.MinTrailingResults
}

// drift runs driftSQL and turns its rows into metrics. A test whose trailing
// values do not vary has no mean shift (it is left out, and logged).
func (q *quality) drift(ctx context.Context, tc *dag.TaskContext, day civil.Date) ([]metric, error) {
	query := q.d.BigQuery.Query(driftSQL())
	query.Parameters = []bigquery.QueryParameter{
		{Name: "day", Value: day},
		{Name: "window", Value: TrailingDays},
		{Name: "bins", Value: PSIBins},
	}
	it, err := query.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("drift of %s: %w", day, err)
	}
	var out []metric
	for {
		var r driftRow
		err := it.Next(&r)
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("drift of %s: read: %w", day, err)
		}
		base := metric{Scope: ScopeTestCode, Subject: r.TestCode, NDay: r.NDay, NReference: r.NTrail}
		if r.SDTrail.Valid && r.SDTrail.Float64 > 0 {
			m := base
			m.Metric, m.Value, m.Threshold = MetricMeanShift, (r.MeanDay-r.MeanTrail)/r.SDTrail.Float64, q.th.MeanShiftSD
			out = append(out, m)
		} else {
			logger(tc).Info("no mean shift: trailing values do not vary", "day", day.String(), "test_code", r.TestCode, "n_trail", r.NTrail)
		}
		if r.PSI.Valid {
			m := base
			m.Metric, m.Value, m.Threshold = MetricPSI, r.PSI.Float64, q.th.PSI
			out = append(out, m)
		}
	}
}

// quarantine computes each robot's quarantine rate over the done
// ingestions of raw objects dated day.
func (q *quality) quarantine(ctx context.Context, day civil.Date) ([]metric, error) {
	type acc struct{ in, quarantined, ingestions int64 }
	per := map[string]*acc{}
	it := q.d.Firestore.Collection(names.CollectionIngestions).Where("date", "==", day.String()).Documents(ctx)
	defer it.Stop()
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("ingestions of %s: %w", day, err)
		}
		var ing lineage.Ingestion
		if err := snap.DataTo(&ing); err != nil {
			return nil, fmt.Errorf("ingestions of %s: decode %s: %w", day, snap.Ref.ID, err)
		}
		if ing.Status != lineage.StatusDone || ing.Robot == "" {
			continue
		}
		a := per[ing.Robot]
		if a == nil {
			a = &acc{}
			per[ing.Robot] = a
		}
		a.in += ing.RowsIn
		a.quarantined += ing.RowsQuarantined
		a.ingestions++
	}
	robots := make([]string, 0, len(per))
	for r := range per {
		robots = append(robots, r)
	}
	slices.Sort(robots)
	var out []metric
	for _, r := range robots {
		a := per[r]
		if a.in == 0 {
			continue
		}
		out = append(out, metric{
			Scope: ScopeRobot, Subject: r, Metric: MetricQuarantineRate,
			Value: float64(a.quarantined) / float64(a.in), Threshold: q.th.QuarantineRate,
			NDay: a.in, NReference: a.ingestions,
		})
	}
	return out, nil
}

// replace makes day's rows of lab.quality_metrics exactly metrics: they go
// into a staging table with one INSERT whose columns are array parameters,
// and are swapped in with one transaction, as bq_load swaps a day of
// results. Neither a load from memory (the emulator's router serves no
// upload endpoint) nor streaming inserts (BigQuery may drop rows streamed
// into a table just re-created under the same name) fit here.
func (q *quality) replace(ctx context.Context, tc *dag.TaskContext, day civil.Date, metrics []metric) (err error) {
	bq := q.d.BigQuery
	staging := QualityMetricsTable + "_staging_" + compact(day)
	if err := recreateTable(ctx, bq, names.Dataset, staging, &bigquery.TableMetadata{
		Schema:         metricsSchema(),
		ExpirationTime: now(tc).Add(stagingTTL),
	}); err != nil {
		return err
	}
	defer func() {
		if derr := dropTable(ctx, bq, names.Dataset, staging); derr != nil && err == nil {
			err = derr
		}
	}()
	if len(metrics) > 0 {
		insert := &operators.BigQueryQuery{Client: bq, SQL: insertMetricsSQL(staging), Params: metricParams(day, now(tc), tc.RunID, metrics)}
		if err := insert.Execute(ctx, tc); err != nil {
			return fmt.Errorf("stage %d metrics of %s: %w", len(metrics), day, err)
		}
	}
	swap := &operators.BigQueryQuery{
		Client: bq,
		SQL: `BEGIN TRANSACTION;
DELETE FROM ` + table(QualityMetricsTable) + ` WHERE day = @day;
INSERT INTO ` + table(QualityMetricsTable) + ` SELECT * FROM ` + table(staging) + ` WHERE day = @day;
COMMIT TRANSACTION;`,
		Params: dayParams(day),
	}
	if err := swap.Execute(ctx, tc); err != nil {
		return fmt.Errorf("replace %s of %s.%s: %w", day, names.Dataset, QualityMetricsTable, err)
	}
	return nil
}

// insertMetricsSQL inserts the rows given as one array parameter per column
// (metricParams). The casts are for the emulator, which types DATE and
// TIMESTAMP parameters, and the elements of arrays, as STRING; on BigQuery
// they change nothing.
func insertMetricsSQL(staging string) string {
	return `INSERT INTO ` + table(staging) + ` (day, scope, subject, metric, value, threshold, n_day, n_reference, sufficient, breach, computed_at, run_id)
SELECT CAST(@day AS DATE), scope, @subject[OFFSET(i)], @metric[OFFSET(i)],
  CAST(@value[OFFSET(i)] AS FLOAT64), CAST(@threshold[OFFSET(i)] AS FLOAT64),
  CAST(@n_day[OFFSET(i)] AS INT64), CAST(@n_reference[OFFSET(i)] AS INT64),
  CAST(@sufficient[OFFSET(i)] AS BOOL), CAST(@breach[OFFSET(i)] AS BOOL),
  CAST(@computed_at AS TIMESTAMP), @run_id
FROM UNNEST(@scope) AS scope WITH OFFSET AS i`
}

func metricParams(day civil.Date, at time.Time, runID string, metrics []metric) func(*dag.TaskContext) []bigquery.QueryParameter {
	n := len(metrics)
	var (
		scope, subject, name = make([]string, n), make([]string, n), make([]string, n)
		value, threshold     = make([]float64, n), make([]float64, n)
		nDay, nRef           = make([]int64, n), make([]int64, n)
		sufficient, breach   = make([]bool, n), make([]bool, n)
	)
	for i, m := range metrics {
		scope[i], subject[i], name[i] = m.Scope, m.Subject, m.Metric
		value[i], threshold[i] = m.Value, m.Threshold
		nDay[i], nRef[i] = m.NDay, m.NReference
		sufficient[i], breach[i] = m.Sufficient, m.Breach
	}
	return func(*dag.TaskContext) []bigquery.QueryParameter {
		return []bigquery.QueryParameter{
			{Name: "day", Value: day},
			{Name: "scope", Value: scope},
			{Name: "subject", Value: subject},
			{Name: "metric", Value: name},
			{Name: "value", Value: value},
			{Name: "threshold", Value: threshold},
			{Name: "n_day", Value: nDay},
			{Name: "n_reference", Value: nRef},
			{Name: "sufficient", Value: sufficient},
			{Name: "breach", Value: breach},
			{Name: "computed_at", Value: at.UTC()},
			{Name: "run_id", Value: runID},
		}
	}
}

// alert sends one quality alert per breach recorded for day.
func (q *quality) alert(ctx context.Context, tc *dag.TaskContext, day civil.Date) error {
	query := q.d.BigQuery.Query(`SELECT scope, subject, metric, value, threshold, n_day, n_reference FROM ` + table(QualityMetricsTable) + `
WHERE day = @day AND breach ORDER BY scope, subject, metric`)
	query.Parameters = []bigquery.QueryParameter{{Name: "day", Value: day}}
	it, err := query.Read(ctx)
	if err != nil {
		return fmt.Errorf("breaches of %s: %w", day, err)
	}
	var errs []error
	sent := 0
	for {
		var m struct {
			Scope      string  `bigquery:"scope"`
			Subject    string  `bigquery:"subject"`
			Metric     string  `bigquery:"metric"`
			Value      float64 `bigquery:"value"`
			Threshold  float64 `bigquery:"threshold"`
			NDay       int64   `bigquery:"n_day"`
			NReference int64   `bigquery:"n_reference"`
		}
		err := it.Next(&m)
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return fmt.Errorf("breaches of %s: read: %w", day, err)
		}
		var msg string
		switch m.Scope {
		case ScopeRobot:
			msg = fmt.Sprintf("robot %s on %s: %s %.4g exceeds %.4g (%d rows in %d ingestions)",
				m.Subject, day, m.Metric, m.Value, m.Threshold, m.NDay, m.NReference)
		default:
			msg = fmt.Sprintf("test %s on %s: %s %.4g exceeds %.4g (%d results; %d in the trailing %d days)",
				m.Subject, day, m.Metric, m.Value, m.Threshold, m.NDay, m.NReference, TrailingDays)
		}
		a := notify.Alert{
			Kind: notify.QualityAlert, DAGID: tc.DAGID, RunID: tc.RunID, TaskID: tc.TaskID, Try: tc.Try,
			Message: msg, At: now(tc),
			Details: map[string]string{
				"day": day.String(), "scope": m.Scope, "subject": m.Subject, "metric": m.Metric,
				"value": strconv.FormatFloat(m.Value, 'g', 6, 64), "threshold": strconv.FormatFloat(m.Threshold, 'g', 6, 64),
				"n_day": strconv.FormatInt(m.NDay, 10), "n_reference": strconv.FormatInt(m.NReference, 10),
			},
		}
		if err := q.d.Notifier.Notify(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("notify %s %s %s of %s: %w", m.Scope, m.Subject, m.Metric, day, err))
			continue
		}
		sent++
	}
	logger(tc).Info("quality alerts sent", "day", day.String(), "alerts", sent, "failed", len(errs))
	return errors.Join(errs...)
}
