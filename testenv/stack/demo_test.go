package stack

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

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
	bin := t.TempDir()
	testenv.BuildCommands(t, bin, commands...)
	p := env.NewTestPlatform(t)
	iss, err := issuer.Start(t.Context(), "127.0.0.1:0", issuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	var out bytes.Buffer
	err = Demo(t.Context(), p, iss, DemoOptions{
		Stack: Options{
			Bin: bin, Dir: t.TempDir(), Robots: 4, RobotsFor: 15 * time.Second, FilesPerHour: 900, Rows: 120,
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

func freeTestAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
