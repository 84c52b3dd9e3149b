package dags

import (
	"context"
	"fmt"

	"cloud.google.com/go/bigquery"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/orchestrate/dag"
)

// The analyst views of dataset lab.
const (
	// ViewDailyTestStats: per day (of collection) and test code, the number
	// of results, their mean, sample standard deviation, minimum, maximum and
	// the share flagged abnormal (flag other than N).
	ViewDailyTestStats = "daily_test_stats"
	// ViewAbnormalRateByRobot: per day, robot and test code, the number of
	// results, of abnormal and of critical (LL, HH) ones, and the abnormal
	// share.
	ViewAbnormalRateByRobot = "abnormal_rate_by_robot"
)

// View is the definition of an analyst view.
type View struct {
	ID          string
	Description string
	SQL         string
}

// Views returns the analyst views of project's dataset lab. Their SQL names
// lab.results with its project, as BigQuery resolves a view's references
// independently of the project that queries it.
func Views(project string) []View {
	results := "`" + project + "." + names.Dataset + "." + names.ResultsTable + "`"
	return []View{
		{
			ID:          ViewDailyTestStats,
			Description: "Per day of collection and test code: count, mean, standard deviation, min, max and abnormal rate of lab.results.",
			SQL: `SELECT
  DATE(collected_at) AS day,
  test_code,
  MIN(unit) AS unit,
  COUNT(*) AS results,
  AVG(value) AS mean,
  STDDEV_SAMP(value) AS stddev,
  MIN(value) AS min_value,
  MAX(value) AS max_value,
  SAFE_DIVIDE(COUNTIF(flag != 'N'), COUNT(*)) AS abnormal_rate
FROM ` + results + `
GROUP BY day, test_code`,
		},
		{
			ID:          ViewAbnormalRateByRobot,
			Description: "Per day of collection, robot and test code: results, abnormal and critical results, abnormal rate of lab.results.",
			SQL: `SELECT
  DATE(collected_at) AS day,
  robot_id,
  test_code,
  COUNT(*) AS results,
  COUNTIF(flag != 'N') AS abnormal,
  COUNTIF(flag IN ('LL', 'HH')) AS critical,
  SAFE_DIVIDE(COUNTIF(flag != 'N'), COUNT(*)) AS abnormal_rate
FROM ` + results + `
GROUP BY day, robot_id, test_code`,
		},
	}
}

// refreshViews creates the analyst views that are missing and replaces those
// whose SQL changed. It uses the tables API, not CREATE OR REPLACE VIEW: the
// emulator runs CREATE OR REPLACE VIEW only when the view does not exist,
// and accepts a changed ViewQuery (tables.update) while the view keeps its
// old query. A changed view is therefore deleted and created again, which
// on BigQuery leaves it missing for a moment; that happens only when its
// definition changes, at a deployment.
func (l *bqLoad) refreshViews(ctx context.Context, tc *dag.TaskContext) error {
	bq := l.d.BigQuery
	if err := ensureDataset(ctx, bq, names.Dataset); err != nil {
		return err
	}
	for _, v := range Views(bq.Project()) {
		t := bq.Dataset(names.Dataset).Table(v.ID)
		want := &bigquery.TableMetadata{Description: v.Description, ViewQuery: v.SQL}
		md, err := t.Metadata(ctx)
		switch {
		case isNotFound(err):
			if err := t.Create(ctx, want); err != nil {
				return fmt.Errorf("create view %s.%s: %w", names.Dataset, v.ID, err)
			}
			logger(tc).Info("view created", "view", names.Dataset+"."+v.ID)
		case err != nil:
			return fmt.Errorf("view %s.%s: %w", names.Dataset, v.ID, err)
		case md.Type == bigquery.ViewTable && md.ViewQuery == v.SQL:
			logger(tc).Debug("view unchanged", "view", names.Dataset+"."+v.ID)
		default:
			if err := recreateTable(ctx, bq, names.Dataset, v.ID, want); err != nil {
				return fmt.Errorf("replace view: %w", err)
			}
			logger(tc).Info("view replaced", "view", names.Dataset+"."+v.ID)
		}
	}
	return nil
}
