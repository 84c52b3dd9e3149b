package dags_test

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/scheduler"
	"github.com/labplatform/platform/orchestrate/state"
	"github.com/labplatform/platform/orchestrate/state/boltstore"
)

// TestBQLoadUnderTheScheduler runs bq_load through the real engine and the
// embedded store, as `orchestrate scheduler` does: the sensor reschedules
// until the day's last lineage document is done, the run succeeds, and the
// next hour's run leaves lab.results identical.
func TestBQLoadUnderTheScheduler(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 120*time.Second)
	p := newPlatform(t)
	g := p.bqLoad(t)
	collected := at(loadDay, 8, 0)
	rows := []result{
		{sample: "S1", patient: "P1", robot: "R001", test: "2345-7", value: 4.0, flag: "N", status: "final", collected: collected},
		{sample: "S2", patient: "P2", robot: "R001", test: "2160-0", value: 0.9, flag: "N", status: "final", collected: collected},
	}
	p.ship(t, ctx, rawFile{name: "robot=R001/date=2026-11-20/a.csv", rows: rows}, loadDay, nil)
	// A second file whose processing has not finished yet.
	var pending *lineage.Ingestion
	p.ship(t, ctx, rawFile{name: "robot=R002/date=2026-11-20/b.csv", rows: []result{
		{sample: "S3", patient: "P3", robot: "R002", test: "2345-7", value: 6.0, flag: "H", status: "final", collected: collected},
	}}, loadDay, func(ing *lineage.Ingestion) *lineage.Ingestion {
		done := *ing
		pending = &done
		ing.Status = lineage.StatusProcessing
		return ing
	})

	store, err := boltstore.Open(filepath.Join(t.TempDir(), "state.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	now := at(loadDay, 14, 1)
	clock := func() time.Time { return now }
	s, err := scheduler.New(store, []*dag.DAG{g}, scheduler.Options{Now: clock, Notifier: p.alert})
	if err != nil {
		t.Fatal(err)
	}
	run, err := scheduler.Trigger(ctx, store, g, at(loadDay, 13, 0), nil, now)
	if err != nil {
		t.Fatal(err)
	}
	s.Pass(ctx)
	s.Drain(ctx)
	tis, err := store.Tasks(ctx, g.ID, run.RunID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range tis {
		if ti.TaskID == "wait_lineage" && (ti.State != state.TaskUpForReschedule || ti.Waiting == "") {
			t.Fatalf("sensor %+v, want waiting for b.csv", ti)
		}
	}
	// The worker finishes b.csv; the next poke a minute later passes.
	if _, err := p.c.Firestore.Collection(names.CollectionIngestions).Doc(pending.RawID).Set(ctx, pending); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	s.Pass(ctx)
	s.Drain(ctx)
	if r, err := store.Run(ctx, g.ID, run.RunID); err != nil || r.State != state.RunSuccess {
		tis, _ := store.Tasks(ctx, g.ID, run.RunID)
		t.Fatalf("run %+v %v; tasks %+v", r, err, tis)
	}
	first := dayRows(t, ctx, p, loadDay)
	if len(first) != 3 {
		t.Fatalf("lab.results for %s: %d rows, want 3:\n%s", loadDay, len(first), fmtRows(first))
	}
	snap, err := p.c.Firestore.Collection(names.CollectionDayLoads).Doc(loadDay.String()).Get(ctx)
	if err != nil {
		t.Fatalf("day load record: %v", err)
	}
	var rec lineage.DayLoad
	if err := snap.DataTo(&rec); err != nil {
		t.Fatal(err)
	}
	// The load listed the files at the second pass's clock, after b.csv's
	// lineage was done.
	if rec.Rows != 3 || !rec.StagingStartedAt.Equal(now) || rec.RunID != run.RunID || rec.DAGID != g.ID {
		t.Errorf("day load %+v, want 3 rows staged at %s by run %s", rec, now, run.RunID)
	}

	now = at(loadDay, 15, 1)
	next, err := scheduler.Trigger(ctx, store, g, at(loadDay, 14, 0), nil, now)
	if err != nil {
		t.Fatal(err)
	}
	s.Pass(ctx)
	s.Drain(ctx)
	if r, err := store.Run(ctx, g.ID, next.RunID); err != nil || r.State != state.RunSuccess {
		t.Fatalf("second run %+v %v", r, err)
	}
	if again := dayRows(t, ctx, p, loadDay); !reflect.DeepEqual(again, first) {
		t.Errorf("second run changed the day:\n%s\nwant\n%s", fmtRows(again), fmtRows(first))
	}
}
