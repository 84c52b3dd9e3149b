package stack

import (
	"bytes"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/testenv"
	"github.com/labplatform/platform/testenv/issuer"
)

// commands are the packages of the services a stack runs.
var commands = []string{
	"github.com/labplatform/platform/testenv/cmd/robotsim",
	"github.com/labplatform/platform/ingest/cmd/ingest",
	"github.com/labplatform/platform/process/cmd/process",
	"github.com/labplatform/platform/orchestrate/cmd/orchestrate",
	"github.com/labplatform/platform/mobile-api/cmd/mobile-api",
}

// TestDemo runs a short demo of the whole platform, every service its real
// command in its own process: robots write with malformed rows and
// truncated lines, ingest ships, two process workers clean, the scheduler
// and manual runs load BigQuery, and the report's invariants (package
// audit) must hold, with the API answering for the demo patient.
func TestDemo(t *testing.T) {
	t.Parallel() // TestOutage, which stops the shared emulators, is not parallel: it runs first
	bin, p, iss := setUp(t)
	var out bytes.Buffer
	err := Demo(t.Context(), p, iss, DemoOptions{
		Stack: Options{
			Bin: bin, Dir: logsOnFailure(t), Robots: 4, RobotsFor: 15 * time.Second, FilesPerHour: 900, Rows: 120,
			Patients: 40, APIAddr: freeTestAddr(t), Grace: 10 * time.Second,
		},
		Timeout: 4 * time.Minute,
	}, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	for _, want := range []string{"robots done:", "process workers finished:", "every day is loaded", "GET /v1/me/summary", `"tests"`, "GET /v1/me/score", `"score"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
}

// setUp builds the commands and starts a token issuer and a platform for
// one test of a whole stack.
func setUp(t *testing.T) (bin string, p config.Platform, iss *issuer.Issuer) {
	t.Helper()
	bin = t.TempDir()
	testenv.BuildCommands(t, bin, commands...)
	iss, err := issuer.Start(t.Context(), "127.0.0.1:0", issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = iss.Close() })
	return bin, env.NewTestPlatform(t), iss
}

// logsOnFailure returns a data directory for a stack whose services' logs
// (their last lines) are written to the test log if the test fails.
func logsOnFailure(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(path, ".log") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("last lines of %s:\n%s", path, strings.Join(lines[max(0, len(lines)-25):], "\n"))
			return nil
		})
	})
	return dir
}

func freeTestAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestScale drains the same backlog with one and with two process workers,
// each its own OS process on the one subscription: both must process every
// file and row of it with every invariant holding (summaries exact, nothing
// counted twice across workers). The throughput is measured by `make
// reliability`, not asserted here.
func TestScale(t *testing.T) {
	t.Parallel() // TestOutage, which stops the shared emulators, is not parallel: it runs first
	bin, _, iss := setUp(t)
	var out bytes.Buffer
	steps, err := Scale(t.Context(), env.NewPlatform, iss, ScaleOptions{
		Stack: Options{
			Bin: bin, Dir: logsOnFailure(t), Robots: 4, RobotsFor: 8 * time.Second, FilesPerHour: 1800, Rows: 200,
			Patients: 40, MetricsPort: 0, APIAddr: freeTestAddr(t), Grace: 10 * time.Second,
		},
		Workers: []int{1, 2},
	}, &out)
	t.Logf("scale output:\n%s", out.String())
	if err != nil {
		t.Fatalf("scale: %v", err)
	}
	if len(steps) != 2 {
		t.Fatalf("%d steps, want 2", len(steps))
	}
	for _, s := range steps {
		if s.Violations != 0 || s.Files == 0 || s.Took <= 0 || s.Report == nil || s.Report.Done != s.Files {
			t.Errorf("%d workers: %+v", s.Workers, s)
		}
	}
	if steps[0].Files != steps[1].Files || steps[0].Rows != steps[1].Rows {
		t.Errorf("the backlogs differ: %d files / %d rows with 1 worker, %d / %d with 2", steps[0].Files, steps[0].Rows, steps[1].Files, steps[1].Rows)
	}
}
