package ingest_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/ingest"
	"github.com/labplatform/platform/ingest/internal/rawcheck"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Run(m, &env, testenv.Options{}))
}

// epoch is where fake clocks start.
var epoch = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// After fires at once, moving the clock: tests never wait.
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.Advance(d)
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}

// rig is one shipper against its own platform, root and checkpoint.
type rig struct {
	t        testing.TB
	root     string
	ckptPath string
	clock    *fakeClock
	fs       ingest.FS
	opts     ingest.Options
	client   *storage.Client
	bucket   *storage.BucketHandle
	ckpt     *ingest.Checkpoint
	reg      *prometheus.Registry
	metrics  *ingest.Metrics
	sh       *ingest.Shipper
}

func newRig(t testing.TB, fsys ingest.FS, opts ingest.Options) *rig {
	t.Helper()
	p := env.NewTestPlatform(t)
	client, err := gcp.NewStorage(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if fsys == nil {
		fsys = ingest.OS{}
	}
	dir := t.TempDir()
	r := &rig{
		t: t, root: filepath.Join(dir, "exports"), ckptPath: filepath.Join(dir, "checkpoint.db"),
		clock: &fakeClock{now: epoch}, fs: fsys, opts: opts, client: client,
		bucket: client.Bucket(names.RawBucket(p.Prefix)),
	}
	if err := os.MkdirAll(r.root, 0o755); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(func() { r.ckpt.Close() })
	return r
}

// start opens the checkpoint and builds a shipper with fresh memory.
func (r *rig) start() {
	r.t.Helper()
	ckpt, err := ingest.OpenCheckpoint(r.ckptPath, ingest.CheckpointOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	r.ckpt = ckpt
	r.reg = prometheus.NewRegistry()
	r.metrics = ingest.NewMetrics(r.reg)
	opts := r.opts
	opts.Clock, opts.Metrics = r.clock, r.metrics
	if opts.Stability == 0 {
		opts.Stability = 30 * time.Second
	}
	if opts.RetryMin == 0 {
		opts.RetryMin, opts.RetryMax = time.Second, time.Minute
	}
	r.sh = ingest.NewShipper(r.root, r.fs, r.bucket, ckpt, opts)
}

// restart simulates a process restart: same checkpoint file, new memory.
func (r *rig) restart() {
	r.t.Helper()
	if err := r.ckpt.Close(); err != nil {
		r.t.Fatal(err)
	}
	r.start()
}

func (r *rig) pass() ingest.PassResult {
	r.t.Helper()
	res, err := r.sh.Pass(r.t.Context())
	if err != nil {
		r.t.Fatalf("pass: %v", err)
	}
	return res
}

// write creates root/robot/name with content and mtime = the clock's now.
func (r *rig) write(robot, name, content string) string {
	r.t.Helper()
	p := filepath.Join(r.root, robot, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.touch(p)
	return p
}

func (r *rig) appendTo(p, content string) {
	r.t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		r.t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		r.t.Fatal(err)
	}
	r.touch(p)
}

func (r *rig) touch(p string) {
	r.t.Helper()
	if err := os.Chtimes(p, r.clock.Now(), r.clock.Now()); err != nil {
		r.t.Fatal(err)
	}
}

// objects lists the raw bucket.
func (r *rig) objects() map[string]*storage.ObjectAttrs {
	r.t.Helper()
	return rawcheck.Objects(r.t, r.t.Context(), r.bucket)
}

func (r *rig) counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

func promRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func testutilCounter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }
