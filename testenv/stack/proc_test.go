package stack

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// command returns the path of a system command the supervisor tests run,
// or skips saying which is missing.
func command(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not on PATH (a POSIX system has it): %v", name, err)
	}
	return p
}

func newService(t *testing.T, path string, once bool, args ...string) *service {
	return &service{
		name: filepath.Base(path), path: path, args: func() ([]string, error) { return args, nil },
		logPath: filepath.Join(t.TempDir(), "log"), once: once, log: slog.New(slog.DiscardHandler),
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSupervisorRestartsAfterACrash kills a service with SIGKILL, as a crash
// would, and checks it is started again; Stop then ends it for good.
func TestSupervisorRestartsAfterACrash(t *testing.T) {
	t.Parallel()
	s := newService(t, command(t, "sleep"), false, "60")
	if err := s.supervise(t.Context()); err != nil {
		t.Fatal(err)
	}
	if killed, err := s.kill(); err != nil || !killed {
		t.Fatalf("kill: killed %v, %v", killed, err)
	}
	waitFor(t, "a second start", func() bool { n, _, _ := s.state(); return n == 2 })
	if err := s.stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	default:
		t.Fatal("supervision did not end with stop")
	}
	n, ended, _ := s.state()
	if n != 2 || ended {
		t.Errorf("starts %d, ended %v: want 2 starts and no natural end", n, ended)
	}
}

// TestSupervisorLeavesAFinishedRunEnded checks that a run-once service that
// exits with status 0 is not restarted, and that one that fails is.
func TestSupervisorLeavesAFinishedRunEnded(t *testing.T) {
	t.Parallel()
	ok := newService(t, command(t, "true"), true)
	if err := ok.supervise(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-ok.done
	if n, ended, err := ok.state(); n != 1 || !ended || err != nil {
		t.Errorf("true: starts %d, ended %v, err %v: want one start, ended, no error", n, ended, err)
	}

	failing := newService(t, command(t, "false"), true)
	if err := failing.supervise(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a restart of a failing run", func() bool { n, _, _ := failing.state(); return n >= 2 })
	if err := failing.stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ended, err := failing.state(); ended || err == nil {
		t.Errorf("false: ended %v, err %v: want a failure, not a natural end", ended, err)
	}
}

// TestStopKillsAServiceThatIgnoresSIGTERM checks the grace period: a process
// that ignores SIGTERM is killed and Stop says so.
func TestStopKillsAServiceThatIgnoresSIGTERM(t *testing.T) {
	t.Parallel()
	s := newService(t, command(t, "sh"), false, "-c", "trap '' TERM; echo trapped; sleep 60 & wait")
	if err := s.supervise(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shell's trap", func() bool {
		b, _ := os.ReadFile(s.logPath)
		return strings.Contains(string(b), "trapped")
	})
	start := time.Now()
	err := s.stop(500 * time.Millisecond)
	if err == nil {
		t.Fatal("stop of a process ignoring SIGTERM returned no error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %v with a 500ms grace", d)
	}
}
