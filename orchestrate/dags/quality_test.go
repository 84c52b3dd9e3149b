package dags_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/dags"
	"github.com/labplatform/platform/orchestrate/notify"
)

// qualityDay is the day the quality runs below check.
var qualityDay = civil.Date{Year: 2026, Month: 11, Day: 20}

// dailyRun is the context of the quality run that checks qualityDay: its
// interval ends at 01:30 the next day.
func dailyRun(params map[string]string) dag.TaskContext {
	end := at(qualityDay.AddDays(1), 1, 30)
	return runContext(dags.QualityID, end.AddDate(0, 0, -1), end, end.Add(time.Minute), params)
}

// seeder builds result rows with normally distributed values.
type seeder struct {
	rng  *rand.Rand
	rows []result
}

func newSeeder() *seeder { return &seeder{rng: rand.New(rand.NewPCG(7, 11))} }

// add adds n results of test on d, drawn from N(mean, sd).
func (s *seeder) add(d civil.Date, test string, n int, mean, sd float64) {
	for i := range n {
		s.rows = append(s.rows, result{
			sample:    fmt.Sprintf("Q%06d", len(s.rows)),
			patient:   fmt.Sprintf("P%04d", len(s.rows)%500),
			robot:     "R001",
			test:      test,
			value:     mean + sd*s.rng.NormFloat64(),
			flag:      "N",
			status:    "final",
			collected: at(d, 6, 0).Add(time.Duration(i) * time.Minute),
		})
	}
}

// load appends the rows to lab.results.
func (s *seeder) load(t *testing.T, ctx context.Context, p *platform) {
	t.Helper()
	p.appendResults(t, ctx, "robot=R001/date=2026-11-01/seed.csv", s.rows)
}

// ingestion writes a lineage document of a raw object of robot dated day.
func (p *platform) ingestion(t *testing.T, ctx context.Context, robot string, day civil.Date, status string, in, quarantined int64) {
	t.Helper()
	id := fmt.Sprintf("%s_%s_f%d.csv_1", robot, day, in)
	ing := lineage.Ingestion{
		RawID: id, Object: "robot=" + robot + "/date=" + day.String() + "/f.csv", Generation: 1,
		Robot: robot, Date: day.String(), Status: status,
		RowsIn: in, RowsValid: in - quarantined, RowsQuarantined: quarantined,
	}
	if _, err := p.c.Firestore.Collection(names.CollectionIngestions).Doc(id).Set(ctx, ing); err != nil {
		t.Fatal(err)
	}
}

// alertKey is what identifies a quality alert.
func alertKey(a notify.Alert) string {
	return a.Details["scope"] + " " + a.Details["subject"] + " " + a.Details["metric"]
}

func (p *platform) quality(t *testing.T) *dag.DAG {
	t.Helper()
	g, err := dags.Quality(p.deps)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// metricsOfDay returns the day's rows of lab.quality_metrics.
func metricsOfDay(t *testing.T, ctx context.Context, p *platform) [][]bigquery.Value {
	t.Helper()
	return query(t, ctx, p.deps.BigQuery, "SELECT scope, subject, metric, value, threshold, n_day, n_reference, sufficient, breach FROM `lab.quality_metrics` WHERE day = @day ORDER BY scope, subject, metric", dayParam(qualityDay))
}

// TestQualityAlertsOnDrift seeds a stable test, a test whose mean shifts, a
// test whose spread grows, a test with too few results to judge, and robots
// with low, high and too few quarantined rows: exactly the shifted test, the
// spread one and the high-quarantine robot raise alerts, once per breach;
// a re-run replaces the day's metrics instead of adding to them.
func TestQualityAlertsOnDrift(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 90*time.Second)
	p := newPlatform(t)
	s := newSeeder()
	for i := 1; i <= dags.TrailingDays; i++ {
		d := qualityDay.AddDays(-i)
		s.add(d, "2345-7", 60, 100, 10)
		s.add(d, "2160-0", 60, 1.0, 0.2)
		s.add(d, "718-7", 60, 14, 1)
		s.add(d, "1975-2", 60, 10, 1)
	}
	s.add(qualityDay, "2345-7", 200, 100, 10)
	s.add(qualityDay, "2160-0", 200, 1.8, 0.2) // 4 trailing sd up
	s.add(qualityDay, "718-7", 200, 14, 3)     // same mean, three times the spread
	s.add(qualityDay, "1975-2", 20, 50, 1)     // far off, but too few results
	// Outside the window: must not count.
	s.add(qualityDay.AddDays(-dags.TrailingDays-1), "2345-7", 60, 500, 10)
	s.add(qualityDay.AddDays(1), "2345-7", 60, 500, 10)
	s.load(t, ctx, p)

	p.ingestion(t, ctx, "R001", qualityDay, lineage.StatusDone, 1000, 10)
	p.ingestion(t, ctx, "R002", qualityDay, lineage.StatusDone, 600, 90)
	p.ingestion(t, ctx, "R002", qualityDay, lineage.StatusDone, 400, 30)        // R002: 120 of 1000
	p.ingestion(t, ctx, "R003", qualityDay, lineage.StatusDone, 50, 25)         // too few rows
	p.ingestion(t, ctx, "R004", qualityDay, lineage.StatusProcessing, 500, 500) // not finished
	p.ingestion(t, ctx, "R005", qualityDay.AddDays(-1), lineage.StatusDone, 500, 500)

	g := p.quality(t)
	wantAlerts := []string{"robot R002 quarantine_rate", "test_code 2160-0 mean_shift_sd", "test_code 2160-0 psi", "test_code 718-7 psi"}
	var first [][]bigquery.Value
	for run := range 2 {
		allSucceed(t, runDAG(t, ctx, g, dailyRun(nil)))
		alerts := p.alert.take()
		var keys []string
		for _, a := range alerts {
			keys = append(keys, alertKey(a))
			if a.Kind != notify.QualityAlert || a.DAGID != dags.QualityID || a.TaskID != dags.TaskSendAlerts || a.Details["day"] != "2026-11-20" {
				t.Errorf("run %d: alert %+v: want a quality alert of quality/send_alerts for 2026-11-20", run, a)
			}
			if !strings.Contains(a.Message, a.Details["subject"]) || !strings.Contains(a.Message, a.Details["metric"]) || !strings.Contains(a.Message, "2026-11-20") {
				t.Errorf("run %d: alert message %q does not name subject, metric and day", run, a.Message)
			}
		}
		if !slices.Equal(keys, wantAlerts) {
			t.Errorf("run %d: alerts %q, want %q", run, keys, wantAlerts)
		}

		rows := metricsOfDay(t, ctx, p)
		// 4 tests x 2 metrics, 3 robots with finished ingestions.
		if len(rows) != 11 {
			t.Fatalf("run %d: %d metrics for the day, want 11:\n%s", run, len(rows), fmtRows(rows))
		}
		if run == 0 {
			first = rows
			continue
		}
		if fmtRows(rows) != fmtRows(first) {
			t.Errorf("re-run changed the metrics:\n%s\nwant\n%s", fmtRows(rows), fmtRows(first))
		}
	}
	for _, r := range first {
		subject, metric, value := r[1].(string), r[2].(string), r[3].(float64)
		switch {
		case subject == "2345-7" && metric == dags.MetricPSI && value > 0.1:
			t.Errorf("stable test: psi %v, want < 0.1", value)
		case subject == "2345-7" && metric == dags.MetricMeanShift && (value > 0.5 || value < -0.5):
			t.Errorf("stable test: mean shift %v sd, want about 0", value)
		case subject == "2160-0" && metric == dags.MetricMeanShift && (value < 3.5 || value > 4.5):
			t.Errorf("shifted test: mean shift %v sd, want about 4", value)
		case subject == "R002" && value != 0.12:
			t.Errorf("R002: quarantine rate %v, want 0.12", value)
		case subject == "1975-2" && r[7] != false:
			t.Errorf("test with 20 results on the day: sufficient %v, want false", r[7])
		}
	}
}

// TestQualityStableDataRaisesNoAlert: stable data records its metrics and
// alerts on nothing, until the thresholds are made strict enough.
func TestQualityStableDataRaisesNoAlert(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := newPlatform(t)
	s := newSeeder()
	for i := 1; i <= dags.TrailingDays; i++ {
		s.add(qualityDay.AddDays(-i), "2345-7", 60, 100, 10)
	}
	s.add(qualityDay, "2345-7", 200, 100, 10)
	s.load(t, ctx, p)
	p.ingestion(t, ctx, "R001", qualityDay, lineage.StatusDone, 1000, 20)

	allSucceed(t, runDAG(t, ctx, p.quality(t), dailyRun(nil)))
	if a := p.alert.take(); len(a) != 0 {
		t.Errorf("stable data raised %d alerts: %+v", len(a), a)
	}
	rows := metricsOfDay(t, ctx, p)
	if len(rows) != 3 {
		t.Fatalf("%d metrics, want 3:\n%s", len(rows), fmtRows(rows))
	}
	for _, r := range rows {
		if r[7] != true || r[8] != false {
			t.Errorf("metric %v: sufficient %v breach %v, want true and false", r[:3], r[7], r[8])
		}
	}

	// A manual run for the day with strict thresholds alerts on all three.
	p.deps.Thresholds = dags.Thresholds{MeanShiftSD: 1e-9, PSI: 1e-9, QuarantineRate: 0.01}
	run := dailyRun(map[string]string{dags.ParamDay: qualityDay.String()})
	run.Interval = dag.Interval{Start: at(qualityDay, 12, 0), End: at(qualityDay, 12, 0)}
	allSucceed(t, runDAG(t, ctx, p.quality(t), run))
	if a := p.alert.take(); len(a) != 3 {
		t.Errorf("strict thresholds raised %d alerts, want 3: %+v", len(a), a)
	}
	if rows := metricsOfDay(t, ctx, p); len(rows) != 3 {
		t.Errorf("after the re-run: %d metrics, want 3:\n%s", len(rows), fmtRows(rows))
	}
}

// TestQualityNeedsANotifier: Quality and Platform refuse to build without
// the notifier the alerts go to, and Thresholds must be positive.
func TestQualityNeedsANotifier(t *testing.T) {
	t.Parallel()
	p := offlinePlatform(t)
	d := p.deps
	d.Notifier = nil
	if _, err := dags.Quality(d); err == nil {
		t.Error("Quality without a notifier: no error")
	}
	if _, err := dags.Platform(d); err == nil {
		t.Error("Platform without a notifier: no error")
	}
	d = p.deps
	d.Thresholds.PSI = -1
	if _, err := dags.Quality(d); err == nil {
		t.Error("Quality with a negative PSI threshold: no error")
	}
	g, err := dags.Quality(p.deps)
	if err != nil {
		t.Fatal(err)
	}
	if g.ID != "quality" || g.Schedule != "30 1 * * *" || g.MaxActiveRuns != 1 || g.Location != time.UTC {
		t.Errorf("quality: id %s schedule %s max active runs %d location %v", g.ID, g.Schedule, g.MaxActiveRuns, g.Location)
	}
}
