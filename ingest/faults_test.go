package ingest_test

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/ingest"
	"github.com/labplatform/platform/ingest/internal/faultfs"
	"github.com/labplatform/platform/ingest/internal/fstest"
	"github.com/labplatform/platform/ingest/internal/rawcheck"
)

func TestFSConformance(t *testing.T) {
	t.Parallel()
	for name, wrap := range map[string]func() ingest.FS{
		"local": func() ingest.FS { return ingest.OS{} },
		"fault-injecting": func() ingest.FS {
			f := faultfs.New(ingest.OS{})
			// A fault on a name the suite never uses must change nothing.
			f.Inject(faultfs.Fault{Op: faultfs.OpOpen, Suffix: "never-used", Err: syscall.ESTALE})
			return f
		},
	} {
		t.Run(name, func(t *testing.T) {
			fstest.Run(t, func(t *testing.T) (ingest.FS, string) { return wrap(), t.TempDir() })
		})
	}
}

// TestFaultsAreRetried: ESTALE, permission denied and a file vanishing in
// the middle of a read fail the attempt, leave the checkpoint and the
// bucket untouched, are counted by kind, and succeed after the backoff.
func TestFaultsAreRetried(t *testing.T) {
	t.Parallel()
	ffs := faultfs.New(ingest.OS{})
	r := newRig(t, ffs, ingest.Options{Convention: ingest.Rename, ChunkMin: 1, ChunkMax: 1 << 20})
	r.write("R001", "stale.csv", v2("1"))
	r.write("R001", "denied.csv", v2("2"))
	r.write("R001", "vanishing.csv", v2("3"))
	db := newDB(r, "R001")
	db.add(4)
	ffs.Inject(faultfs.Fault{Op: faultfs.OpOpen, Suffix: "stale.csv", Err: syscall.ESTALE})
	ffs.Inject(faultfs.Fault{Op: faultfs.OpOpen, Suffix: "denied.csv", Err: fs.ErrPermission})
	ffs.Inject(faultfs.Fault{Op: faultfs.OpRead, Suffix: "vanishing.csv", Err: fs.ErrNotExist, AfterBytes: 20})
	ffs.Inject(faultfs.Fault{Op: faultfs.OpRead, Suffix: "results.db.csv", Err: syscall.ESTALE, AfterBytes: int64(len(dbHeader)) + 1})

	if res := r.pass(); res.Shipped != 0 || res.Chunks != 0 || res.Failed != 4 {
		t.Fatalf("pass with faults: %+v, want 4 failed, nothing shipped", res)
	}
	if n := len(r.objects()); n != 0 {
		t.Errorf("%d objects after failed attempts, want 0", n)
	}
	for _, key := range []string{"R001/stale.csv", "R001/denied.csv", "R001/vanishing.csv"} {
		if rec, _, _ := r.ckpt.File(key); rec.Done {
			t.Errorf("%s recorded done after a failed attempt", key)
		}
	}
	if st, _, _ := r.ckpt.DB("R001/db/results.db.csv"); st.Offset > int64(len(dbHeader)) {
		t.Errorf("database offset %d moved past the header after a failed read", st.Offset)
	}
	for kind, want := range map[string]float64{"stale": 2, "permission": 1, "not_found": 1} {
		if got := r.counter(r.metrics.Errors.WithLabelValues("R001", kind)); got != want {
			t.Errorf("errors{kind=%s} = %v, want %v", kind, got, want)
		}
	}
	// Within the backoff nothing is tried again, even with the faults gone.
	ffs.Clear()
	if res := r.pass(); res.Shipped != 0 || res.Failed != 0 {
		t.Fatalf("pass within the backoff: %+v, want nothing tried", res)
	}
	r.clock.Advance(2 * time.Second)
	if res := r.pass(); res.Shipped != 3 || res.Chunks == 0 || res.Failed != 0 {
		t.Fatalf("pass after the backoff: %+v, want 3 shipped and chunks", res)
	}
	if got := r.counter(r.metrics.Retries.WithLabelValues("R001")); got != 4 {
		t.Errorf("retries = %v, want 4 (three files and the database)", got)
	}
	if got := rawcheck.ChunkLines(t, t.Context(), r.bucket, r.objects(), dbHeader); !slices.Equal(got, db.lines) {
		t.Errorf("database lines %q, want %q", got, db.lines)
	}
}

// TestFileChangedWhileRead: a file that grows while it is being read is
// not shipped (no object, no record), and is shipped whole once it holds
// still.
func TestFileChangedWhileRead(t *testing.T) {
	t.Parallel()
	ffs := faultfs.New(ingest.OS{})
	r := newRig(t, ffs, ingest.Options{Convention: ingest.Rename})
	p := r.write("R001", "moving.csv", v2("1"))
	ffs.Inject(faultfs.Fault{Op: faultfs.OpRead, Suffix: "moving.csv", Times: 1, Hook: func() {
		r.clock.Advance(time.Second)
		r.appendTo(p, "S2,P1,2345-7,Glucose,5.2,mmol/L,3.9,5.5,2026-11-21T08:01:00+01:00\n")
	}})
	if res := r.pass(); res.Failed != 1 || res.Shipped != 0 {
		t.Fatalf("pass: %+v, want 1 failed", res)
	}
	if got := r.counter(r.metrics.Errors.WithLabelValues("R001", "changed")); got != 1 {
		t.Errorf("errors{kind=changed} = %v, want 1", got)
	}
	if n := len(r.objects()); n != 0 {
		t.Errorf("%d objects after a changed read, want 0", n)
	}
	if rec, _, _ := r.ckpt.File("R001/moving.csv"); rec.Done {
		t.Errorf("recorded done: %+v", rec)
	}
	r.clock.Advance(time.Minute)
	if res := r.pass(); res.Shipped != 1 {
		t.Fatalf("pass: %+v, want 1 shipped", res)
	}
	want, _ := os.ReadFile(p)
	if got := rawcheck.Read(t, t.Context(), r.bucket, rawPrefix+"moving.csv"); string(got) != string(want) {
		t.Errorf("object %q, want %q", got, want)
	}
}

// TestGCSUnavailable: uploads to an endpoint that does not answer fail
// within the upload timeout and leave the checkpoint without a done record.
func TestGCSUnavailable(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	p := env.NewTestPlatform(t)
	p.Emulators.Storage = "http://" + addr
	client, err := gcp.NewStorage(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	dir := t.TempDir()
	root := filepath.Join(dir, "exports")
	if err := os.MkdirAll(filepath.Join(root, "R001"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "R001", "a.csv"), []byte(v2("1")), 0o644); err != nil {
		t.Fatal(err)
	}
	ckpt, err := ingest.OpenCheckpoint(filepath.Join(dir, "ckpt.db"), ingest.CheckpointOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ckpt.Close()
	m := ingest.NewMetrics(promRegistry())
	sh := ingest.NewShipper(root, ingest.OS{}, client.Bucket(names.RawBucket(p.Prefix)), ckpt, ingest.Options{
		Convention: ingest.Rename, UploadTimeout: time.Second, Clock: &fakeClock{now: epoch}, Metrics: m,
	})
	res, err := sh.Pass(t.Context())
	if err != nil || res.Failed != 1 || res.Shipped != 0 {
		t.Fatalf("pass: %+v %v, want 1 failed", res, err)
	}
	if rec, ok, _ := ckpt.File("R001/a.csv"); !ok || rec.Done {
		t.Errorf("checkpoint: %+v %v, want the intent only", rec, ok)
	}
	if got := testutilCounter(m.Errors.WithLabelValues("R001", "gcs")); got != 1 {
		t.Errorf("errors{kind=gcs} = %v, want 1", got)
	}
}
