package enforce

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/civil"
	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/lifecycle/policy"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }

const day = 24 * time.Hour

// fixture is one isolated platform: objects are written straight to the
// emulators, the enforcer's storage client goes through a gcsProxy.
type fixture struct {
	t      testing.TB
	ctx    context.Context
	p      config.Platform
	direct *testenv.Clients
	proxy  *gcsProxy
	c      Clients

	mu sync.Mutex
	// latest is the latest creation time of an object put: the emulator
	// stamps creation with its own clock, so ages are counted from it.
	latest time.Time
}

func newFixture(t testing.TB, versionedCurated bool) *fixture {
	t.Helper()
	ctx := context.Background()
	p := env.NewTestPlatform(t)
	direct := testenv.NewTestClients(t, p)
	proxy := newGCSProxy(t, p.Emulators.Storage, direct.Storage)
	viaProxy := p
	viaProxy.Emulators.Storage = proxy.URL()
	st, err := gcp.NewStorage(ctx, viaProxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if !versionedCurated {
		_, err := direct.Storage.Bucket(names.CuratedBucket(p.Prefix)).Update(ctx, storage.BucketAttrsToUpdate{VersioningEnabled: false})
		if err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{t: t, ctx: ctx, p: p, direct: direct, proxy: proxy, c: Clients{Storage: st, Firestore: direct.Firestore}}
}

func (f *fixture) raw() string        { return names.RawBucket(f.p.Prefix) }
func (f *fixture) curated() string    { return names.CuratedBucket(f.p.Prefix) }
func (f *fixture) quarantine() string { return names.QuarantineBucket(f.p.Prefix) }
func (f *fixture) models() string     { return names.ModelsBucket(f.p.Prefix) }

// put writes an object; class "" is STANDARD.
type put struct {
	class      policy.Class
	customTime time.Time
	metadata   map[string]string
	data       string
}

func (f *fixture) put(bucket, name string, o put) *storage.ObjectAttrs {
	f.t.Helper()
	w := f.direct.Storage.Bucket(bucket).Object(name).NewWriter(f.ctx)
	w.ChunkSize = 0 // one multipart request: the emulator keeps its storageClass
	w.StorageClass = string(o.class)
	w.CustomTime = o.customTime
	w.Metadata = o.metadata
	w.ContentType = "application/octet-stream"
	data := o.data
	if data == "" {
		data = bucket + "/" + name
	}
	if _, err := io.WriteString(w, data); err != nil {
		f.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		f.t.Fatalf("put gs://%s/%s: %v", bucket, name, err)
	}
	a := w.Attrs()
	f.mu.Lock()
	if a.Created.After(f.latest) {
		f.latest = a.Created
	}
	f.mu.Unlock()
	return a
}

// at is a clock standing days (and an hour) after the latest object put:
// every object put so far is then exactly days old.
func (f *fixture) at(days int) func() time.Time {
	t := f.latest.Add(time.Duration(days)*day + time.Hour)
	return func() time.Time { return t }
}

// attrs reads an object's live attributes; nil when it does not exist.
func (f *fixture) attrs(bucket, name string) *storage.ObjectAttrs {
	f.t.Helper()
	a, err := f.direct.Storage.Bucket(bucket).Object(name).Attrs(f.ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

func (f *fixture) content(bucket, name string) string {
	f.t.Helper()
	r, err := f.direct.Storage.Bucket(bucket).Object(name).NewReader(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// versions lists every version of a bucket: name -> generations.
func (f *fixture) versions(bucket string) map[string][]int64 {
	f.t.Helper()
	out := map[string][]int64{}
	it := f.direct.Storage.Bucket(bucket).Objects(f.ctx, &storage.Query{Versions: true})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			f.t.Fatal(err)
		}
		out[a.Name] = append(out[a.Name], a.Generation)
	}
	return out
}

func (f *fixture) lineage(ing lineage.Ingestion) {
	f.t.Helper()
	id, err := names.RawID(ing.Object, ing.Generation)
	if err != nil {
		f.t.Fatal(err)
	}
	ing.RawID = id
	if _, err := f.direct.Firestore.Collection(names.CollectionIngestions).Doc(id).Set(f.ctx, ing); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) dayLoad(d string, staged time.Time) {
	f.t.Helper()
	dl := lineage.DayLoad{Day: d, StagingStartedAt: staged, LoadedAt: staged.Add(time.Minute), DAGID: "bq_load", RunID: "test"}
	if _, err := f.direct.Firestore.Collection(names.CollectionDayLoads).Doc(d).Set(f.ctx, dl); err != nil {
		f.t.Fatal(err)
	}
}

// run runs the enforcer with opts (Logger discarded unless set).
func (f *fixture) run(pol *policy.File, opts Options) *Report {
	f.t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	rep, err := Run(f.ctx, f.c, pol, f.p.Prefix, opts)
	if err != nil {
		f.t.Fatalf("run: %v\nreport: %+v", err, rep)
	}
	return rep
}

// keys renders actions as sorted "kind bucket/object[ to]" lines.
func keys(f *fixture, acts []Action) []string {
	var out []string
	for _, a := range acts {
		role := strings.TrimPrefix(a.Bucket, f.p.Prefix+"-")
		k := a.Kind + " " + role + "/" + a.Object
		if a.To != "" {
			k += " " + string(a.To)
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mustParse(t testing.TB, js string) *policy.File {
	t.Helper()
	p, err := policy.Parse([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sameStrings(t testing.TB, what string, got, want []string) {
	t.Helper()
	sort.Strings(want)
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// TestTimeline walks a deployment's objects through a year and more of the
// default policies: at each age the enforcer moves and deletes exactly what
// the rules say, keeps what it rewrites intact, and a second run at the same
// instant plans nothing.
func TestTimeline(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	pol := policy.Default()
	finished := time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)

	// a.csv: processed, its curated day loaded after; b.csv: its day never
	// loaded; the chunk: every row quarantined, no outputs.
	rawA, rawB := "robot=R001/date=2026-01-02/a.csv", "robot=R001/date=2026-01-02/b.csv"
	chunk := "robot=R002/date=2026-01-02/db/results.db.csv.s1.0-100.csv"
	ga := f.put(f.raw(), rawA, put{data: "a-bytes", metadata: map[string]string{"robot": "R001"}, customTime: finished})
	gb := f.put(f.raw(), rawB, put{})
	gc := f.put(f.raw(), chunk, put{})
	curA, _ := names.CuratedObject(rawA, ga.Generation, civilDate("2026-01-02"))
	curB, _ := names.CuratedObject(rawB, gb.Generation, civilDate("2026-01-03"))
	f.put(f.curated(), curA, put{})
	f.put(f.curated(), curB, put{})
	quar := "rows/date=2026-01-02/x.csv"
	f.put(f.quarantine(), quar, put{})
	f.put(f.models(), "scoring/v1.json", put{})

	f.lineage(lineage.Ingestion{Bucket: f.raw(), Object: rawA, Generation: ga.Generation, Status: lineage.StatusDone,
		FinishedAt: finished, Outputs: []lineage.Output{{Bucket: f.curated(), Object: curA, Day: "2026-01-02", Rows: 3}}, Days: []string{"2026-01-02"}})
	f.lineage(lineage.Ingestion{Bucket: f.raw(), Object: rawB, Generation: gb.Generation, Status: lineage.StatusDone,
		FinishedAt: finished, Outputs: []lineage.Output{{Bucket: f.curated(), Object: curB, Day: "2026-01-03", Rows: 3}}, Days: []string{"2026-01-03"}})
	f.lineage(lineage.Ingestion{Bucket: f.raw(), Object: chunk, Generation: gc.Generation, Status: lineage.StatusDone,
		FinishedAt: finished, Outputs: []lineage.Output{}, Days: []string{}})
	f.dayLoad("2026-01-02", finished.Add(time.Hour))

	steps := []struct {
		days int
		want []string
		held []string
	}{
		{days: 10},
		{days: 31, want: []string{
			"set_storage_class raw/" + rawA + " NEARLINE", "set_storage_class raw/" + rawB + " NEARLINE",
			"set_storage_class raw/" + chunk + " NEARLINE",
			"set_storage_class curated/" + curA + " NEARLINE", "set_storage_class curated/" + curB + " NEARLINE",
		}},
		{days: 91, want: []string{
			"set_storage_class raw/" + rawA + " COLDLINE", "set_storage_class raw/" + rawB + " COLDLINE",
			"set_storage_class raw/" + chunk + " COLDLINE",
			"set_storage_class curated/" + curA + " COLDLINE", "set_storage_class curated/" + curB + " COLDLINE",
			"delete quarantine/" + quar,
		}},
		{days: 366, want: []string{
			"set_storage_class curated/" + curA + " ARCHIVE", "set_storage_class curated/" + curB + " ARCHIVE",
		}},
		{days: 401, want: []string{"delete raw/" + rawA, "delete raw/" + chunk}, held: []string{rawB}},
	}
	for _, st := range steps {
		rep := f.run(pol, Options{Now: f.at(st.days), PageSize: 3})
		sameStrings(t, "day "+itoa(st.days)+" done", keys(f, rep.Done), st.want)
		sameStrings(t, "day "+itoa(st.days)+" planned", keys(f, rep.Planned), slices.Clone(st.want))
		var held []string
		for _, h := range rep.Held {
			held = append(held, h.Object)
		}
		sameStrings(t, "day "+itoa(st.days)+" held", held, slices.Clone(st.held))
		if rep.Scanned == 0 || rep.Skipped != 0 || len(rep.Errors) != 0 {
			t.Errorf("day %d: scanned %d, skipped %d, errors %q", st.days, rep.Scanned, rep.Skipped, rep.Errors)
		}
		again := f.run(pol, Options{Now: f.at(st.days)})
		if len(again.Planned) != 0 {
			t.Errorf("day %d: second run planned %q", st.days, keys(f, again.Planned))
		}
	}

	// What is left, and in which class.
	wantClass := map[string]string{
		f.raw() + "/" + rawB: "COLDLINE", f.curated() + "/" + curA: "ARCHIVE", f.curated() + "/" + curB: "ARCHIVE",
		f.models() + "/scoring/v1.json": "STANDARD",
	}
	for _, gone := range []string{f.raw() + "/" + rawA, f.raw() + "/" + chunk, f.quarantine() + "/" + quar} {
		wantClass[gone] = ""
	}
	for k, want := range wantClass {
		b, o, _ := strings.Cut(k, "/")
		a := f.attrs(b, o)
		switch {
		case want == "" && a != nil:
			t.Errorf("%s still exists", k)
		case want != "" && a == nil:
			t.Errorf("%s is gone", k)
		case want != "" && a.StorageClass != want:
			t.Errorf("%s is %s, want %s", k, a.StorageClass, want)
		}
	}
	// A rewrite keeps the bytes and attributes, and records the origin.
	b := f.attrs(f.raw(), rawB)
	if got := f.content(f.raw(), rawB); got != f.raw()+"/"+rawB {
		t.Errorf("content after rewrites = %q", got)
	}
	if b.ContentType != "application/octet-stream" || b.Metadata[MetaSourceGeneration] != itoa64(gb.Generation) ||
		b.Metadata[MetaCreated] != gb.Created.UTC().Format(time.RFC3339Nano) {
		t.Errorf("rewritten raw object attrs: type %q, metadata %v (first generation %d created %s)",
			b.ContentType, b.Metadata, gb.Generation, gb.Created.UTC().Format(time.RFC3339Nano))
	}
}

// TestRewriteKeepsAttributes checks a rewrite carries custom metadata and
// custom time over.
func TestRewriteKeepsAttributes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	ct := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	name := "results/date=2026-01-02/robot=R001/x.parquet"
	orig := f.put(f.curated(), name, put{customTime: ct, metadata: map[string]string{"k": "v"}, data: "parquet"})
	rep := f.run(policy.Default(), Options{Now: f.at(31)})
	if len(rep.Done) != 1 {
		t.Fatalf("done %q", keys(f, rep.Done))
	}
	a := f.attrs(f.curated(), name)
	if a.StorageClass != "NEARLINE" || !a.CustomTime.Equal(ct) || a.Metadata["k"] != "v" ||
		a.Generation == orig.Generation || f.content(f.curated(), name) != "parquet" {
		t.Errorf("after rewrite: class %s custom time %s metadata %v generation %d (was %d)",
			a.StorageClass, a.CustomTime, a.Metadata, a.Generation, orig.Generation)
	}
	if rep.BytesMoved != int64(len("parquet")) || rep.BytesDeleted != 0 {
		t.Errorf("bytes moved %d deleted %d", rep.BytesMoved, rep.BytesDeleted)
	}
}

// TestAgeCountsFromFirstUpload: an object the enforcer rewrote is as old as
// its first generation, as GCS's own transitions keep the creation time.
func TestAgeCountsFromFirstUpload(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	base := f.put(f.models(), "probe", put{}).Created // the emulator's clock
	old := base.Add(-100 * day).UTC().Format(time.RFC3339Nano)
	future := base.Add(100 * day).UTC().Format(time.RFC3339Nano)
	f.put(f.curated(), "old.parquet", put{class: policy.Nearline, metadata: map[string]string{MetaCreated: old}})
	f.put(f.curated(), "young.parquet", put{class: policy.Nearline})
	f.put(f.curated(), "bogus.parquet", put{class: policy.Nearline, metadata: map[string]string{MetaCreated: future}})
	f.put(f.curated(), "junk.parquet", put{class: policy.Nearline, metadata: map[string]string{MetaCreated: "yesterday"}})
	rep := f.run(policy.Default(), Options{Now: f.at(1)})
	sameStrings(t, "done", keys(f, rep.Done), []string{"set_storage_class curated/old.parquet COLDLINE"})
	if got := f.attrs(f.curated(), "old.parquet").Metadata[MetaCreated]; got != old {
		t.Errorf("rewrite changed %s to %q, want %q", MetaCreated, got, old)
	}
}

// TestCustomTimeAndNameRules drives days_since_custom_time with the
// objects' custom times, filtered by prefix and suffix.
func TestCustomTimeAndNameRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	pol := mustParse(t, `{"version": 1, "buckets": {"curated": {"rules": [
		{"action": {"type": "Delete"}, "condition": {"days_since_custom_time": 30, "matches_suffix": [".tmp"]}},
		{"action": {"type": "SetStorageClass", "storage_class": "COLDLINE"},
		 "condition": {"days_since_custom_time": 10, "matches_prefix": ["results/"]}}
	]}}}`)
	base := f.put(f.models(), "probe", put{}).Created
	ago := func(days int) time.Time { return base.Add(-time.Duration(days) * day) }
	f.put(f.curated(), "results/a.parquet", put{customTime: ago(20)})
	f.put(f.curated(), "results/b.parquet", put{customTime: ago(5)})
	f.put(f.curated(), "results/c.parquet", put{})
	f.put(f.curated(), "other/d.parquet", put{customTime: ago(20)})
	f.put(f.curated(), "results/e.tmp", put{customTime: ago(40)})
	f.put(f.curated(), "results/f.tmp", put{customTime: ago(20)})
	f.put(f.curated(), "other/g.tmp", put{customTime: ago(31)})
	f.put(f.curated(), "results/h.parquet", put{customTime: ago(20), class: policy.Archive})
	rep := f.run(pol, Options{Now: f.at(0)})
	want := []string{
		"set_storage_class curated/results/a.parquet COLDLINE",
		"delete curated/results/e.tmp",
		"set_storage_class curated/results/f.tmp COLDLINE",
		"delete curated/other/g.tmp",
	}
	sameStrings(t, "done", keys(f, rep.Done), want)
	for name, class := range map[string]string{
		"results/a.parquet": "COLDLINE", "results/b.parquet": "STANDARD", "results/c.parquet": "STANDARD",
		"other/d.parquet": "STANDARD", "results/f.tmp": "COLDLINE", "results/h.parquet": "ARCHIVE",
	} {
		if a := f.attrs(f.curated(), name); a == nil || a.StorageClass != class {
			t.Errorf("%s: %+v, want class %s", name, a, class)
		}
	}
	for _, gone := range []string{"results/e.tmp", "other/g.tmp"} {
		if f.attrs(f.curated(), gone) != nil {
			t.Errorf("%s not deleted", gone)
		}
	}
	if rep.Scanned != 8 {
		t.Errorf("scanned %d, want 8", rep.Scanned)
	}
}

// TestDryRunChangesNothing: a dry run plans what a real run then does, and
// changes nothing itself.
func TestDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	before := map[string]*storage.ObjectAttrs{}
	for _, n := range []string{"a", "b", "c"} {
		before["q/"+n] = f.put(f.quarantine(), n, put{})
		before["c/"+n] = f.put(f.curated(), n, put{class: policy.Nearline})
	}
	before["r/x"] = f.put(f.raw(), "robot=R001/date=2026-01-02/x.csv", put{})
	dry := f.run(policy.Default(), Options{Now: f.at(400), DryRun: true})
	if len(dry.Planned) != 7 || len(dry.Done) != 0 || len(dry.Held) != 1 || dry.BytesDeleted == 0 || dry.BytesMoved == 0 {
		t.Fatalf("dry run: planned %q, done %d, held %+v, bytes %d/%d", keys(f, dry.Planned), len(dry.Done), dry.Held,
			dry.BytesDeleted, dry.BytesMoved)
	}
	if n := f.proxy.changes.Load(); n != 0 {
		t.Errorf("dry run sent %d changes", n)
	}
	for k, was := range before {
		bucket := map[string]string{"q": f.quarantine(), "c": f.curated(), "r": f.raw()}[k[:1]]
		a := f.attrs(bucket, was.Name)
		if a == nil || a.Generation != was.Generation || a.StorageClass != was.StorageClass {
			t.Errorf("%s changed by a dry run: %+v", k, a)
		}
	}
	real := f.run(policy.Default(), Options{Now: f.at(400)})
	// The held raw object still moves colder.
	if !slices.Contains(keys(f, dry.Planned), "set_storage_class raw/robot=R001/date=2026-01-02/x.csv COLDLINE") {
		t.Errorf("dry run did not plan the held object's move: %q", keys(f, dry.Planned))
	}
	sameStrings(t, "real run after dry run", keys(f, real.Done), keys(f, dry.Planned))
}

// TestHeldObjectStillMovesColder: a raw object held back from deletion is
// still moved to the coldest class the other rules give.
func TestHeldObjectStillMovesColder(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	name := "robot=R001/date=2026-01-02/x.csv"
	f.put(f.raw(), name, put{})
	rep := f.run(policy.Default(), Options{Now: f.at(500), DryRun: true})
	sameStrings(t, "planned", keys(f, rep.Planned), []string{"set_storage_class raw/" + name + " COLDLINE"})
	if len(rep.Held) != 1 || rep.Held[0].Why != "lineage missing" {
		t.Errorf("held %+v", rep.Held)
	}
}

// TestPreconditionRace: an object replaced between the listing and the
// action is skipped, and the new upload is left as it is.
func TestPreconditionRace(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	for _, n := range []string{"a", "b"} {
		f.put(f.quarantine(), "rows/"+n+".csv", put{data: "old"})
		f.put(f.curated(), "results/"+n+".parquet", put{data: "old"})
	}
	var mu sync.Mutex
	replaced := map[string]int64{}
	f.proxy.setBeforeChange(func(bucket, object string) {
		mu.Lock()
		defer mu.Unlock()
		if _, done := replaced[bucket+"/"+object]; done {
			return
		}
		replaced[bucket+"/"+object] = f.put(bucket, object, put{data: "new"}).Generation
	})
	rep := f.run(policy.Default(), Options{Now: f.at(100)})
	f.proxy.setBeforeChange(nil)
	if len(rep.Planned) != 4 || len(rep.Done) != 0 || rep.Skipped != 4 || len(rep.Errors) != 0 {
		t.Fatalf("planned %d done %q skipped %d errors %q", len(rep.Planned), keys(f, rep.Done), rep.Skipped, rep.Errors)
	}
	for k, gen := range replaced {
		b, o, _ := strings.Cut(k, "/")
		a := f.attrs(b, o)
		if a == nil || a.Generation != gen || a.StorageClass != "STANDARD" || f.content(b, o) != "new" {
			t.Errorf("%s clobbered: %+v", k, a)
		}
	}
	if len(replaced) != 4 {
		t.Errorf("replaced %d objects, want 4", len(replaced))
	}
}

// TestPagination: small pages over ~50 objects act on each exactly once.
func TestPagination(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	var want []string
	for i := range 50 {
		n := "results/date=2026-01-02/robot=R001/" + itoa(i) + ".parquet"
		f.put(f.curated(), n, put{})
		want = append(want, "set_storage_class curated/"+n+" NEARLINE")
	}
	lists := f.proxy.lists.Load()
	rep := f.run(policy.Default(), Options{Now: f.at(31), PageSize: 7, Workers: 3})
	sameStrings(t, "done", keys(f, rep.Done), want)
	if rep.Scanned != 50 {
		t.Errorf("scanned %d, want 50", rep.Scanned)
	}
	// 4 buckets; the curated one in ceil(50/7) = 8 pages.
	if n := f.proxy.lists.Load() - lists; n < 8+3 {
		t.Errorf("%d list requests, want at least 11 (pages of 7)", n)
	}
	if again := f.run(policy.Default(), Options{Now: f.at(31), PageSize: 7}); len(again.Planned) != 0 || again.Scanned != 50 {
		t.Errorf("second run: scanned %d planned %q", again.Scanned, keys(f, again.Planned))
	}
}

// TestVersions: in a versioned bucket, noncurrent versions are listed once
// each even across small pages, judged by their noncurrent time and the
// number of newer versions, and never rewritten.
func TestVersions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	gens := map[string][]int64{}
	for i := range 12 {
		n := "v" + itoa(i)
		for range 1 + i%3 {
			gens[n] = append(gens[n], f.put(f.curated(), n, put{}).Generation)
		}
	}
	total, noncurrent := 0, 0
	for _, g := range gens {
		total += len(g)
		noncurrent += len(g) - 1
	}
	if got := f.versions(f.curated()); len(got) != 12 {
		t.Fatalf("emulator lists %d names, want 12", len(got))
	}

	// Default policy: noncurrent versions go 7 days after they were replaced.
	rep := f.run(policy.Default(), Options{Now: f.at(6), PageSize: 4, DryRun: true})
	if rep.Scanned != total || len(rep.Planned) != 0 {
		t.Errorf("day 6: scanned %d (want %d), planned %q", rep.Scanned, total, keys(f, rep.Planned))
	}
	rep = f.run(policy.Default(), Options{Now: f.at(8), PageSize: 4, DryRun: true})
	var want []string
	seen := map[int64]bool{}
	for n, g := range gens {
		for _, gen := range g[:len(g)-1] {
			want = append(want, "delete curated/"+n)
			seen[gen] = true
		}
	}
	sameStrings(t, "day 8 planned", keys(f, rep.Planned), want)
	for _, a := range rep.Planned {
		if !seen[a.Generation] {
			t.Errorf("planned generation %d of %s is not noncurrent (or planned twice)", a.Generation, a.Object)
		}
		delete(seen, a.Generation)
	}

	// SkipNoncurrent (the emulator's mode) plans none of those deletes.
	rep = f.run(policy.Default(), Options{Now: f.at(8), PageSize: 4, DryRun: true, SkipNoncurrent: true})
	if len(rep.Planned) != 0 || rep.Scanned != 12 {
		t.Errorf("SkipNoncurrent: scanned %d (want the 12 live objects), planned %q", rep.Scanned, keys(f, rep.Planned))
	}

	// num_newer_versions: keep the two newest versions; noncurrent versions
	// are never moved to another class.
	pol := mustParse(t, `{"version": 1, "buckets": {"curated": {"rules": [
		{"action": {"type": "Delete"}, "condition": {"num_newer_versions": 2, "with_state": "ARCHIVED"}},
		{"action": {"type": "SetStorageClass", "storage_class": "NEARLINE"}, "condition": {"age": 1, "with_state": "ANY"}}
	]}}}`)
	rep = f.run(pol, Options{Now: f.at(2), PageSize: 5, DryRun: true})
	want = nil
	for n, g := range gens {
		if len(g) == 3 {
			want = append(want, "delete curated/"+n)
		}
		want = append(want, "set_storage_class curated/"+n+" NEARLINE")
	}
	sameStrings(t, "newer versions planned", keys(f, rep.Planned), want)
	for _, a := range rep.Planned {
		if a.Kind == KindDelete && a.Generation != gens[a.Object][0] {
			t.Errorf("planned deleting generation %d of %s, want the oldest %d", a.Generation, a.Object, gens[a.Object][0])
		}
	}
	// Every noncurrent version not deleted would be moved: skipped.
	if deletes := len(want) - 12; rep.Skipped != noncurrent-deletes {
		t.Errorf("skipped %d, want %d", rep.Skipped, noncurrent-deletes)
	}
}

// TestEnforcerOnly leaves native rules to GCS and still carries out the
// data-aware deletion.
func TestEnforcerOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	name := "robot=R001/date=2026-01-02/a.csv"
	g := f.put(f.raw(), name, put{}).Generation
	f.put(f.raw(), "robot=R001/date=2026-01-02/b.csv", put{})
	f.put(f.quarantine(), "rows/x.csv", put{})
	f.lineage(lineage.Ingestion{Object: name, Generation: g, Status: lineage.StatusDone,
		FinishedAt: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)})
	lists := f.proxy.lists.Load()
	rep := f.run(policy.Default(), Options{Now: f.at(401), EnforcerOnly: true})
	sameStrings(t, "done", keys(f, rep.Done), []string{"delete raw/" + name})
	if rep.LeftToGCS != 2 || len(rep.Held) != 1 {
		// b.csv is held and its move to Coldline left to GCS; the
		// quarantine delete is GCS's.
		t.Errorf("left to GCS %d, held %+v", rep.LeftToGCS, rep.Held)
	}
	if f.attrs(f.quarantine(), "rows/x.csv") == nil {
		t.Error("quarantine object deleted: a native rule's")
	}
	if n := f.proxy.lists.Load() - lists; n != 4 {
		t.Errorf("%d list requests, want 4", n)
	}
}

// TestInterrupt: a run cancelled midway reports it; the next run finishes
// the job without doing anything twice.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	for i := range 20 {
		f.put(f.curated(), "results/"+itoa(i)+".parquet", put{data: "p" + itoa(i)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var n sync.Mutex
	count := 0
	f.proxy.setBeforeChange(func(string, string) {
		n.Lock()
		defer n.Unlock()
		if count++; count == 5 {
			cancel()
		}
	})
	rep, err := Run(ctx, f.c, policy.Default(), f.p.Prefix, Options{Now: f.at(31), Workers: 2, PageSize: 5,
		Logger: slog.New(slog.DiscardHandler)})
	f.proxy.setBeforeChange(nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err %v", err)
	}
	if len(rep.Errors) != 0 || len(rep.Done) >= 20 {
		t.Errorf("interrupted run: done %d errors %q", len(rep.Done), rep.Errors)
	}
	rest := f.run(policy.Default(), Options{Now: f.at(31)})
	if len(rep.Done)+len(rest.Done) > 20 || len(rest.Done) == 0 {
		t.Errorf("done %d then %d, want 20 in all at most", len(rep.Done), len(rest.Done))
	}
	for i := range 20 {
		n := "results/" + itoa(i) + ".parquet"
		if a := f.attrs(f.curated(), n); a.StorageClass != "NEARLINE" || f.content(f.curated(), n) != "p"+itoa(i) {
			t.Errorf("%s: class %s", n, a.StorageClass)
		}
	}
	if again := f.run(policy.Default(), Options{Now: f.at(31)}); len(again.Planned) != 0 {
		t.Errorf("third run planned %q", keys(f, again.Planned))
	}
}

func TestRunRejects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bad := policy.Default()
	bad.Buckets["raw"].Rules[0].Action.StorageClass = "WARM"
	for name, tc := range map[string]struct {
		c      Clients
		pol    *policy.File
		prefix string
	}{
		"no storage":     {c: Clients{}, pol: policy.Default(), prefix: "x"},
		"no firestore":   {c: Clients{Storage: &storage.Client{}}, pol: policy.Default(), prefix: "x"},
		"no policy":      {c: Clients{Storage: &storage.Client{}}, prefix: "x"},
		"invalid policy": {c: Clients{Storage: &storage.Client{}}, pol: bad, prefix: "x"},
		"empty prefix":   {c: Clients{Storage: &storage.Client{}}, pol: &policy.File{Version: 1}, prefix: ""},
	} {
		if rep, err := Run(ctx, tc.c, tc.pol, tc.prefix, Options{}); err == nil || rep == nil {
			t.Errorf("%s: err %v, report %v", name, err, rep)
		}
	}
}

func TestReason(t *testing.T) {
	t.Parallel()
	r := policy.Default().Buckets["raw"].Rules[2]
	got := reason(2, r)
	if !strings.HasPrefix(got, "rule 2: age>=400d, live, data loaded (") {
		t.Errorf("reason = %q", got)
	}
}

func itoa(i int) string     { return strconv.Itoa(i) }
func itoa64(i int64) string { return strconv.FormatInt(i, 10) }
func civilDate(s string) civil.Date {
	d, err := civil.ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}
