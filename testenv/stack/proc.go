package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// A service is one of the platform's commands run as a child process. Its
// supervisor restarts it when it exits unexpectedly, with a backoff, as a
// process manager (systemd, Cloud Run) would; a command that ends by itself
// with status 0 and once set (the robot simulator run for a duration) is
// left ended.
type service struct {
	name string
	path string
	// args gives the command line of each start: the robot simulator's
	// changes with every start (its sample base).
	args    func() ([]string, error)
	env     []string
	logPath string
	once    bool
	log     *slog.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd
	running  bool // cmd has started and not yet been waited for
	stopping bool
	starts   int
	ended    bool  // ended by itself with status 0 (once)
	lastErr  error // how the last process ended
	done     chan struct{}
}

// Backoff of restarts: it doubles from restartMin up to restartMax, and
// starts over once a process ran for restartReset.
const (
	restartMin   = 500 * time.Millisecond
	restartMax   = 15 * time.Second
	restartReset = time.Minute
)

// supervise starts the service and keeps it running until stop. It returns
// at once; the service's done channel closes when supervision ends.
func (s *service) supervise(ctx context.Context) error {
	s.done = make(chan struct{})
	first, err := s.start()
	if err != nil {
		close(s.done)
		return err
	}
	go func() {
		defer close(s.done)
		backoff := restartMin
		exited := first
		for {
			startedAt := time.Now()
			err := <-exited
			s.mu.Lock()
			s.lastErr = err
			stopping := s.stopping
			if err == nil && s.once {
				s.ended = true
			}
			ended := s.ended
			s.mu.Unlock()
			if stopping || ended {
				return
			}
			if time.Since(startedAt) > restartReset {
				backoff = restartMin
			}
			s.log.Warn("service exited; restarting", "service", s.name, "err", errText(err), "in", backoff, "log", s.logPath)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, restartMax)
			s.mu.Lock()
			if s.stopping {
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			if exited, err = s.start(); err != nil {
				s.log.Error("service could not be restarted", "service", s.name, "err", err)
				return
			}
		}
	}()
	return nil
}

func errText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// start launches one process of the service and returns the channel its
// exit is sent on.
func (s *service) start() (<-chan error, error) {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	args, err := s.args()
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	cmd := exec.Command(s.path, args...)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: Ctrl-C in the terminal reaches labstack only,
	// which stops the services in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", s.name, s.path, err)
	}
	s.mu.Lock()
	s.cmd, s.running = cmd, true
	s.starts++
	s.mu.Unlock()
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		logFile.Close()
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
		exited <- err
	}()
	return exited, nil
}

// signal sends sig to the running process's group (the process and any
// child it started), if it is running, and reports whether it was.
func (s *service) signal(sig syscall.Signal) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return false, nil
	}
	err := syscall.Kill(-s.cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("signal %s: %w", s.name, err)
	}
	return true, nil
}

// kill ends the running process with SIGKILL, as a crash would, and
// reports whether one was running: the supervisor restarts it.
func (s *service) kill() (bool, error) { return s.signal(syscall.SIGKILL) }

// stop asks the process to end (SIGTERM), waits up to grace for it, then
// kills it. Supervision ends.
func (s *service) stop(grace time.Duration) error {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	if _, err := s.signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-s.done:
		return nil
	case <-time.After(grace):
	}
	s.log.Warn("service did not stop in time; killing it", "service", s.name, "grace", grace)
	if _, err := s.signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-s.done
	return fmt.Errorf("%s did not stop within %v of SIGTERM", s.name, grace)
}

// state reports how many times the service was started and whether it
// ended by itself.
func (s *service) state() (starts int, ended bool, lastErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts, s.ended, s.lastErr
}
