package operators

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/labplatform/platform/orchestrate/dag"
)

// Shell runs a command (no shell interpretation) with the task's context; the
// task Timeout bounds it via ctx. On ctx end it kills the whole process group
// (Setpgid; cmd.Cancel + cmd.WaitDelay), so no orphan survives; processes the
// command leaves behind in its group when it exits are killed too. The error
// names the command, the exit code and the last 2 KB of stderr. Stdout and
// stderr also go to Output if set.
//
// The command inherits the scheduler's environment, then the task's identity
// (ORCHESTRATE_DAG_ID, ORCHESTRATE_RUN_ID, ORCHESTRATE_TASK_ID,
// ORCHESTRATE_TRY, and ORCHESTRATE_LOGICAL_DATE, ORCHESTRATE_INTERVAL_START,
// ORCHESTRATE_INTERVAL_END in RFC 3339 UTC), then Env; a later entry wins.
type Shell struct {
	// Command is the program and its arguments; Command[0] is looked up in
	// PATH when it has no slash.
	Command []string
	// Dir is the working directory; empty means the scheduler's.
	Dir string
	// Env holds extra KEY=value entries.
	Env []string
	// Output, when set, receives the command's stdout and stderr.
	Output io.Writer
}

// stderrTail is how much of the end of stderr an error quotes.
const stderrTail = 2 << 10

// shellWaitDelay is how long Wait waits, after the command exits or is
// killed, for the pipes that processes it left behind still hold open.
const shellWaitDelay = 2 * time.Second

// Execute runs the command and waits for it.
func (s *Shell) Execute(ctx context.Context, tc *dag.TaskContext) error {
	if len(s.Command) == 0 || s.Command[0] == "" {
		return errors.New("shell: empty command")
	}
	name := fmt.Sprintf("%q", s.Command)
	cmd := exec.CommandContext(ctx, s.Command[0], s.Command[1:]...)
	cmd.Dir = s.Dir
	cmd.Env = append(append(os.Environ(), taskEnv(tc)...), s.Env...)
	tail := &tailBuffer{max: stderrTail}
	if s.Output != nil {
		out := &lockedWriter{w: s.Output}
		cmd.Stdout = out
		cmd.Stderr = io.MultiWriter(tail, out)
	} else {
		cmd.Stderr = tail
	}
	inProcessGroup(cmd)
	cmd.WaitDelay = shellWaitDelay

	log := logger(tc)
	now := clock(tc)
	start := now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", name, err)
	}
	err := cmd.Wait()
	leftovers := killLeftovers(cmd.Process.Pid)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("run %s: killed after %s: %w%s", name, now().Sub(start).Round(time.Millisecond), ctxErr, tail.quote())
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return fmt.Errorf("run %s: exit code %d%s: %w", name, exit.ExitCode(), tail.quote(), err)
	case err != nil && !errors.Is(err, exec.ErrWaitDelay):
		// ErrWaitDelay: the command succeeded but what it left behind held
		// its output open; that is killed now.
		return fmt.Errorf("run %s: %w", name, err)
	}
	if leftovers {
		log.Warn("killed processes the command left running", "command", s.Command[0])
	}
	log.Info("command done", "command", s.Command[0], "duration", now().Sub(start).Round(time.Millisecond))
	return nil
}

func taskEnv(tc *dag.TaskContext) []string {
	if tc == nil {
		return nil
	}
	utc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	return []string{
		"ORCHESTRATE_DAG_ID=" + tc.DAGID,
		"ORCHESTRATE_RUN_ID=" + tc.RunID,
		"ORCHESTRATE_TASK_ID=" + tc.TaskID,
		"ORCHESTRATE_TRY=" + strconv.Itoa(tc.Try),
		"ORCHESTRATE_LOGICAL_DATE=" + utc(tc.LogicalDate),
		"ORCHESTRATE_INTERVAL_START=" + utc(tc.Interval.Start),
		"ORCHESTRATE_INTERVAL_END=" + utc(tc.Interval.End),
	}
}

// clock returns the scheduler's clock, or the system's when the task context
// has none (tests of a single operator).
func clock(tc *dag.TaskContext) func() time.Time {
	if tc != nil && tc.Now != nil {
		return tc.Now
	}
	return time.Now
}

func logger(tc *dag.TaskContext) *slog.Logger {
	if tc != nil && tc.Logger != nil {
		return tc.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.cut = true
	}
	return len(p), nil
}

// quote returns "; stderr: ..." with the tail, or "" when stderr was empty.
func (t *tailBuffer) quote() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := bytes.TrimSpace(t.buf)
	if len(b) == 0 {
		return ""
	}
	if t.cut {
		return "; stderr (last 2 KB): ..." + string(b)
	}
	return "; stderr: " + string(b)
}

// lockedWriter serialises the writes of stdout and stderr to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
