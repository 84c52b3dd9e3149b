package operators_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labplatform/platform/orchestrate/operators"
)

func TestShellRunsCommandWithTaskEnvironment(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	op := &operators.Shell{
		Command: []string{"sh", "-c", `echo "to stdout $ORCHESTRATE_TASK_ID $ORCHESTRATE_TRY $EXTRA"; echo "to stderr" >&2; pwd`},
		Dir:     t.TempDir(),
		Env:     []string{"EXTRA=extra-value"},
		Output:  &out,
	}
	if err := op.Execute(testCtx(t, 10*time.Second), taskContext(t)); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	for _, want := range []string{"to stdout test_task 1 extra-value", "to stderr", op.Dir} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
}

func TestShellErrorNamesCommandExitCodeAndStderrTail(t *testing.T) {
	t.Parallel()
	// 3000 bytes of 'a', then the last words: only the last 2 KB is quoted.
	op := &operators.Shell{Command: []string{"sh", "-c", `head -c 3000 /dev/zero | tr '\0' a >&2; echo " last words" >&2; exit 3`}}
	err := op.Execute(testCtx(t, 10*time.Second), taskContext(t))
	if err == nil {
		t.Fatal("Execute succeeded, want an exit code error")
	}
	msg := err.Error()
	for _, want := range []string{`"sh"`, "exit code 3", "last words"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if n := strings.Count(msg, "a"); n > 2048 || n < 1500 {
		t.Errorf("error quotes %d bytes of stderr, want the last 2 KB", n)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("error %v does not wrap an exit code 3", err)
	}
}

func TestShellMissingProgram(t *testing.T) {
	t.Parallel()
	err := (&operators.Shell{Command: []string{"/nonexistent/program"}}).Execute(testCtx(t, 10*time.Second), taskContext(t))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Execute = %v, want a not-exist error", err)
	}
	if err := (&operators.Shell{}).Execute(t.Context(), taskContext(t)); err == nil {
		t.Error("empty command: Execute succeeded")
	}
}

// TestShellTimeoutKillsProcessGroup runs a shell whose child starts a
// grandchild, lets the task's deadline pass and checks that none of the three
// survives, and that Execute returned at once rather than after the pipes'
// wait delay.
func TestShellTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := `sh -c 'sleep 100 & echo $! > grandchild; wait' & echo $! > child; sleep 100 & echo $! > sibling; echo $$ > shell; wait`
	op := &operators.Shell{Command: []string{"sh", "-c", script}, Dir: dir}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := op.Execute(ctx, taskContext(t))
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Execute = %v, want a deadline error", err)
	}
	if !strings.Contains(err.Error(), "killed") {
		t.Errorf("error %q does not say the command was killed", err)
	}
	if elapsed > 2200*time.Millisecond { // 500ms + the 2s wait delay without the group kill
		t.Errorf("Execute took %v: the group was not killed when the context ended", elapsed)
	}
	for _, f := range []string{"shell", "child", "sibling", "grandchild"} {
		pid := readPID(t, filepath.Join(dir, f))
		waitGone(t, f, pid)
	}
}

// TestShellKillsWhatTheCommandLeftBehind: a command that exits leaving a
// background process (its output redirected, so nothing holds the pipes)
// succeeds, and the leftover is killed.
func TestShellKillsWhatTheCommandLeftBehind(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	op := &operators.Shell{Command: []string{"sh", "-c", `sleep 100 >/dev/null 2>&1 & echo $! > leftover`}, Dir: dir}
	if err := op.Execute(testCtx(t, 10*time.Second), taskContext(t)); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	waitGone(t, "leftover", readPID(t, filepath.Join(dir, "leftover")))
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %s: %v", path, err)
	}
	return pid
}

// waitGone waits until process pid no longer runs: it does not exist, or is
// a zombie waiting for a parent that does not reap (PID 1 of a container).
func waitGone(t *testing.T, what string, pid int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if !alive(pid) {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("%s (pid %d) survived the task", what, pid)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
