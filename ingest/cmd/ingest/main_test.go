package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/storage"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/robotcsv"
	"github.com/labplatform/platform/ingest/internal/rawcheck"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Run(m, &env, testenv.Options{}))
}

func getenvOf(p config.Platform, extra ...string) func(string) string {
	vars := map[string]string{}
	for _, kv := range append(p.Environ(), extra...) {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	return func(k string) string { return vars[k] }
}

// TestOnceAndStatus runs the CLI in-process: once ships, status reports.
func TestOnceAndStatus(t *testing.T) {
	t.Parallel()
	p := env.NewTestPlatform(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "exports")
	if err := os.MkdirAll(filepath.Join(root, "R007"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "R007", "a.csv"), []byte(robotcsv.V2.Header()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	getenv := getenvOf(p, "INGEST_ROOT="+root, "INGEST_CHECKPOINT="+filepath.Join(dir, "ckpt.db"))
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"once", "-convention", "rename", "-listen", ""}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("once: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), `"shipped":1`) {
		t.Errorf("once log lacks the pass summary:\n%s", stderr.String())
	}
	stdout.Reset()
	if err := run(t.Context(), []string{"status", "-json"}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("status: %v", err)
	}
	if !strings.Contains(stdout.String(), `"robot": "R007"`) || !strings.Contains(stdout.String(), `"shipped_files": 1`) {
		t.Errorf("status -json:\n%s", stdout.String())
	}
	if err := run(t.Context(), []string{"bogus"}, getenv, &stdout, &stderr); err == nil {
		t.Error("unknown command: no error")
	}
}

// crashWorld is the source side of the crash test: files and database
// lines written while ingest is killed and restarted.
type crashWorld struct {
	root string
	mu   sync.Mutex
	// files: robot/name -> sha256 of the complete content.
	files map[string]string
	lines []string
	db    string
	seq   int
}

var crashHeader = robotcsv.V2.Header() + "\n"

func (w *crashWorld) writeFile(robot string, rng *rand.Rand) error {
	w.mu.Lock()
	w.seq++
	n := w.seq
	w.mu.Unlock()
	var b strings.Builder
	b.WriteString(crashHeader)
	for i := range 1 + rng.IntN(200) {
		fmt.Fprintf(&b, "F%06d-%d,P%d,2345-7,Glucose,%d.%d,mmol/L,3.9,5.5,2026-11-21T08:00:00+01:00\n", n, i, rng.IntN(1000), rng.IntN(10), rng.IntN(10))
	}
	content := []byte(b.String())
	name := fmt.Sprintf("export-%06d.csv", n)
	dir := filepath.Join(w.root, robot)
	p := filepath.Join(dir, name)
	switch robot {
	case "R001": // rename convention
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, content, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	case "R002": // done marker
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(p+".done", nil, 0o644); err != nil {
			return err
		}
	default: // stability
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return err
		}
	}
	sum := sha256.Sum256(content)
	w.mu.Lock()
	w.files[robot+"/"+name] = hex.EncodeToString(sum[:])
	w.mu.Unlock()
	return nil
}

func (w *crashWorld) appendLines(rng *rand.Rand) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	var add []string
	for range 1 + rng.IntN(8) {
		l := fmt.Sprintf("D%07d,P%d,2345-7,Glucose,5.%d,mmol/L,3.9,5.5,2026-11-21T08:00:00+01:00", len(w.lines)+len(add), rng.IntN(1000), rng.IntN(10))
		add = append(add, l)
		b.WriteString(l + "\n")
	}
	f, err := os.OpenFile(w.db, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	w.lines = append(w.lines, add...)
	return f.Close()
}

func (w *crashWorld) rotate() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := os.Rename(w.db, w.db+".1"); err != nil {
		return err
	}
	return os.WriteFile(w.db, []byte(crashHeader), 0o644)
}

// TestCrashSafety builds the ingest binary, runs "ingest run" against the
// emulator and kills it with SIGKILL at random points over many rounds
// while files and database lines keep arriving; then it lets one last run
// catch up and proves every complete file is in GCS exactly once with its
// sha256, and every database line is shipped exactly once.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	const rounds = 22
	p := env.NewTestPlatform(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "ingest")
	// The build has its own budget: on a cold build cache, with every other
	// package compiling beside it, it alone can take minutes.
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 80*time.Second)
	defer cancel()
	w := &crashWorld{root: filepath.Join(dir, "exports"), files: map[string]string{}}
	for _, r := range []string{"R001", "R002", "R003"} {
		if err := os.MkdirAll(filepath.Join(w.root, r, "db"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w.db = filepath.Join(w.root, "R001", "db", "results.db.csv")
	if err := os.WriteFile(w.db, []byte(crashHeader), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "-root", w.root, "-checkpoint", filepath.Join(dir, "ckpt.db"),
		"-interval", "20ms", "-stability", "300ms", "-convention", "stability",
		"-robot-conventions", "R001=rename,R002=done", "-chunk-min", "1", "-chunk-max", "2K",
		"-listen", "", "-log-level", "warn", "-concurrency", "4"}
	logs := &lockedBuffer{}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = p.Environ()
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	seed := rand.Uint64()
	if s := os.Getenv("INGEST_CRASH_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (rerun with INGEST_CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan error, 1)
	go func() {
		wrng := rand.New(rand.NewPCG(seed, 2))
		tick := time.NewTicker(15 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				writerDone <- nil
				return
			case <-tick.C:
			}
			var err error
			if wrng.IntN(2) == 0 {
				err = w.writeFile([]string{"R001", "R002", "R003"}[wrng.IntN(3)], wrng)
			} else {
				err = w.appendLines(wrng)
			}
			if err != nil {
				writerDone <- err
				return
			}
		}
	}()

	gcs, err := gcp.NewStorage(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer gcs.Close()
	bucket := gcs.Bucket(names.RawBucket(p.Prefix))
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	rotated := false
	for round := range rounds {
		cmd := start()
		for range 2 + rng.IntN(20) {
			<-tick.C
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait() // killed: the error is the signal
		// Rotate the database once ingest has started a series on it.
		if !rotated && round >= rounds/2 && countChunks(t, ctx, bucket) > 0 {
			if err := w.rotate(); err != nil {
				t.Fatal(err)
			}
			rotated = true
		}
	}
	stopWriter()
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	if !rotated {
		t.Error("the database was never rotated: no chunk landed in the first rounds")
	}

	// A last run catches up; then it stops gracefully.
	cmd := start()
	w.mu.Lock()
	wantFiles, wantLines := len(w.files), len(w.lines)
	w.mu.Unlock()
	catchUp, cancelCatchUp := context.WithTimeout(ctx, 25*time.Second)
	defer cancelCatchUp()
	for {
		objs := rawcheck.Objects(t, ctx, bucket)
		files, chunks := 0, 0
		for name := range objs {
			if names.IsChunkObject(name) {
				chunks++
			} else {
				files++
			}
		}
		if files >= wantFiles && len(rawcheck.ChunkLines(t, ctx, bucket, objs, crashHeader)) >= wantLines {
			break
		}
		select {
		case <-catchUp.Done():
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("final run did not catch up in 25s: %d/%d files, %d chunks; logs:\n%s", files, wantFiles, chunks, logs.String())
		case <-tick.C:
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("graceful stop: %v\n%s", err, logs.String())
	}

	objs := rawcheck.Objects(t, ctx, bucket)
	got := map[string]int{}
	for name, a := range objs {
		if names.IsChunkObject(name) {
			continue
		}
		r, err := names.ParseRawObject(name)
		if err != nil {
			t.Errorf("object name: %v", err)
			continue
		}
		key := r.Robot + "/" + r.File
		got[key]++
		want, ok := w.files[key]
		if !ok {
			t.Errorf("object %s: no such complete source file", name)
			continue
		}
		body := rawcheck.Read(t, ctx, bucket, name)
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != want || a.Metadata["sha256"] != want {
			t.Errorf("object %s: sha256 %x (metadata %s), want %s: a partial or wrong file", name, sum, a.Metadata["sha256"], want)
		}
	}
	for key := range w.files {
		if got[key] != 1 {
			t.Errorf("%s: %d objects, want exactly 1", key, got[key])
		}
	}
	lines := rawcheck.ChunkLines(t, ctx, bucket, objs, crashHeader)
	if !slices.Equal(sortedCopy(lines), sortedCopy(w.lines)) {
		t.Errorf("database: %d lines shipped, %d written; they differ (a line lost or repeated)", len(lines), len(w.lines))
	}
	t.Logf("%d rounds: %d files, %d database lines in %d chunks", rounds, len(w.files), len(w.lines), countChunks(t, ctx, bucket))
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func countChunks(t *testing.T, ctx context.Context, b *storage.BucketHandle) int {
	n := 0
	for name := range rawcheck.Objects(t, ctx, b) {
		if names.IsChunkObject(name) {
			n++
		}
	}
	return n
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
