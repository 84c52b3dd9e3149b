package operators_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/operators"
	"github.com/labplatform/platform/testenv"
)

func TestGCSObjectSensor(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 30*time.Second)
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	bucket := names.CuratedBucket(p.Prefix)
	sensor := func(minObjects int) *operators.GCSObjectSensor {
		return &operators.GCSObjectSensor{
			Client: c.Storage, Bucket: bucket, MinObjects: minObjects,
			Prefix: func(tc *dag.TaskContext) string {
				return "results/date=" + tc.LogicalDate.Format(time.DateOnly) + "/"
			},
		}
	}
	poke := func(s *operators.GCSObjectSensor) (bool, string) {
		t.Helper()
		done, waiting, err := s.Poke(ctx, taskContext(t))
		if err != nil {
			t.Fatalf("Poke: %v", err)
		}
		return done, waiting
	}
	// Another day's object does not count.
	upload(t, ctx, c.Storage, bucket, "results/date=2026-03-02/a.parquet", []byte("x"))
	done, waiting := poke(sensor(0))
	if done || !strings.Contains(waiting, "0 of 1 objects under gs://"+bucket+"/results/date=2026-03-01/") {
		t.Errorf("no object: Poke = %v, %q", done, waiting)
	}
	for i := range 3 {
		upload(t, ctx, c.Storage, bucket, fmt.Sprintf("results/date=2026-03-01/robot=R00%d/x.parquet", i), []byte("x"))
	}
	if done, waiting := poke(sensor(0)); !done || waiting != "" {
		t.Errorf("3 objects, default minimum: Poke = %v, %q", done, waiting)
	}
	if done, waiting := poke(sensor(4)); done || !strings.Contains(waiting, "3 of 4 objects") {
		t.Errorf("3 objects, minimum 4: Poke = %v, %q", done, waiting)
	}
	if done, _ := poke(sensor(3)); !done {
		t.Error("3 objects, minimum 3: not done")
	}

	missing := &operators.GCSObjectSensor{Client: c.Storage, Bucket: p.Prefix + "-no-such-bucket"}
	if _, _, err := missing.Poke(ctx, taskContext(t)); err == nil {
		t.Error("missing bucket: Poke succeeded")
	}
}

// TestLineageSensor walks a day's raw objects through their lineage states:
// no lineage, processing, done and failed, with a database chunk among them
// and objects of another day and outside the layout that do not count.
func TestLineageSensor(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	raw := names.RawBucket(p.Prefix)
	sensor := func(minObjects int) *operators.LineageSensor {
		return &operators.LineageSensor{
			Storage: c.Storage, Firestore: c.Firestore, RawBucket: raw, MinObjects: minObjects,
			Day: func(tc *dag.TaskContext) string { return tc.LogicalDate.Format(time.DateOnly) },
		}
	}
	poke := func(s *operators.LineageSensor) (bool, string) {
		t.Helper()
		done, waiting, err := s.Poke(ctx, taskContext(t))
		if err != nil {
			t.Fatalf("Poke: %v", err)
		}
		return done, waiting
	}

	if done, waiting := poke(sensor(0)); !done {
		t.Errorf("empty day, minimum 0: Poke = %v, %q", done, waiting)
	}
	if done, waiting := poke(sensor(1)); done || !strings.Contains(waiting, "0 raw objects for 2026-03-01") {
		t.Errorf("empty day, minimum 1: Poke = %v, %q", done, waiting)
	}

	const chunk = "robot=R002/date=2026-03-01/db/results.db.csv.s1.10-200.csv"
	if _, err := names.ParseChunkObject(chunk); err != nil {
		t.Fatal(err)
	}
	objects := []string{
		"robot=R001/date=2026-03-01/a.csv",
		"robot=R001/date=2026-03-01/b.csv",
		"robot=R002/date=2026-03-01/c.csv",
		chunk,
	}
	gens := map[string]int64{}
	for _, o := range objects {
		gens[o] = upload(t, ctx, c.Storage, raw, o, []byte("header\n")).Generation
	}
	// Not waited for: another day, and names outside the raw layout.
	upload(t, ctx, c.Storage, raw, "robot=R001/date=2026-03-02/other-day.csv", []byte("x"))
	upload(t, ctx, c.Storage, raw, "robot=bad/date=2026-03-01/x.csv", []byte("x"))
	upload(t, ctx, c.Storage, raw, "stray.csv", []byte("x"))

	setStatus := func(object, status string) {
		t.Helper()
		id, err := names.RawID(object, gens[object])
		if err != nil {
			t.Fatal(err)
		}
		ing := lineage.Ingestion{RawID: id, Bucket: raw, Object: object, Generation: gens[object], Status: status}
		if _, err := c.Firestore.Collection(names.CollectionIngestions).Doc(id).Set(ctx, ing); err != nil {
			t.Fatalf("write lineage %s: %v", id, err)
		}
	}

	done, waiting := poke(sensor(0))
	if done || !strings.HasPrefix(waiting, "4 of 4 raw objects of 2026-03-01 not finished") {
		t.Errorf("no lineage: Poke = %v, %q", done, waiting)
	}
	for _, o := range objects {
		if !strings.Contains(waiting, o+" (no lineage)") {
			t.Errorf("waiting %q does not name %s", waiting, o)
		}
	}

	setStatus(objects[0], lineage.StatusDone)
	setStatus(objects[1], lineage.StatusFailed)
	setStatus(objects[2], lineage.StatusProcessing)
	setStatus(chunk, lineage.StatusRetrying)
	done, waiting = poke(sensor(0))
	want := "2 of 4 raw objects of 2026-03-01 not finished: robot=R002/date=2026-03-01/c.csv (processing), " + chunk + " (retrying)"
	if done || waiting != want {
		t.Errorf("processing: Poke = %v, %q, want false, %q", done, waiting, want)
	}

	// A lineage document of another generation is not this object's.
	setStatus(objects[2], lineage.StatusDone)
	gens[chunk]++
	setStatus(chunk, lineage.StatusDone)
	gens[chunk]--
	if done, waiting = poke(sensor(0)); done || !strings.Contains(waiting, chunk+" (retrying)") {
		t.Errorf("other generation done: Poke = %v, %q", done, waiting)
	}

	setStatus(chunk, lineage.StatusDone)
	if done, waiting = poke(sensor(4)); !done || waiting != "" {
		t.Errorf("all finished, minimum 4: Poke = %v, %q", done, waiting)
	}
	if done, waiting = poke(sensor(5)); done || !strings.Contains(waiting, "4 raw objects for 2026-03-01") {
		t.Errorf("all finished, minimum 5: Poke = %v, %q", done, waiting)
	}
}

// TestLineageSensorNamesAtMostTenStragglers uploads objects for several
// lineage batches, a few finished.
func TestLineageSensorNamesAtMostTenStragglers(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 60*time.Second)
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	raw := names.RawBucket(p.Prefix)
	const n, finished = 25, 3
	for i := range n {
		name := fmt.Sprintf("robot=R%03d/date=2026-03-01/f%03d.csv", i%7+1, i)
		a := upload(t, ctx, c.Storage, raw, name, []byte("h\n"))
		if i%8 == 7 { // 3 finished, one in each batch of 10 but the last
			id, err := names.RawID(name, a.Generation)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Firestore.Collection(names.CollectionIngestions).Doc(id).Set(ctx, lineage.Ingestion{RawID: id, Status: lineage.StatusDone}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := &operators.LineageSensor{Storage: c.Storage, Firestore: c.Firestore, RawBucket: raw,
		Day: func(*dag.TaskContext) string { return "2026-03-01" }}
	s.SetLineageBatch(10)
	done, waiting, err := s.Poke(ctx, taskContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if done || !strings.HasPrefix(waiting, fmt.Sprintf("%d of %d raw objects", n-finished, n)) || !strings.HasSuffix(waiting, fmt.Sprintf("and %d more", n-finished-10)) {
		t.Errorf("Poke = %v, %q", done, waiting)
	}
	if got := strings.Count(waiting, "(no lineage)"); got != 10 {
		t.Errorf("waiting names %d stragglers, want 10", got)
	}

	bad := &operators.LineageSensor{Storage: c.Storage, Firestore: c.Firestore, RawBucket: raw,
		Day: func(*dag.TaskContext) string { return "2026-3-1" }}
	if _, _, err := bad.Poke(ctx, taskContext(t)); err == nil {
		t.Error("malformed day: Poke succeeded")
	}
}
