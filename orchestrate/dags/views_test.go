package dags_test

import (
	"testing"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/orchestrate/dags"
)

// TestRefreshViewsReplacesAChangedView: a view whose SQL is not the one in
// code (an old version, or one edited by hand) is replaced by refresh_views.
func TestRefreshViewsReplacesAChangedView(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := newPlatform(t)
	stale := p.deps.BigQuery.Dataset(names.Dataset).Table(dags.ViewDailyTestStats)
	if err := stale.Create(ctx, &bigquery.TableMetadata{ViewQuery: "SELECT 1 AS x"}); err != nil {
		t.Fatal(err)
	}
	task, _ := p.bqLoad(t).Task(dags.TaskRefreshViews)
	if o := runTask(t, ctx, task, hourlyRun(loadDay, 10, nil)); o.state != stateSuccess {
		t.Fatalf("refresh_views: %s %v", o.state, o.err)
	}
	want := map[string]string{}
	for _, v := range dags.Views(p.deps.BigQuery.Project()) {
		want[v.ID] = v.SQL
	}
	for id, sql := range want {
		md, err := p.deps.BigQuery.Dataset(names.Dataset).Table(id).Metadata(ctx)
		if err != nil {
			t.Fatalf("view %s: %v", id, err)
		}
		if md.Type != bigquery.ViewTable || md.ViewQuery != sql {
			t.Errorf("view %s: type %s query %q, want the view in code", id, md.Type, md.ViewQuery)
		}
	}
	// The replaced view answers with its new columns.
	query(t, ctx, p.deps.BigQuery, "SELECT day, test_code, abnormal_rate FROM `lab.daily_test_stats`")
}
