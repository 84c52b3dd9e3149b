//go:build unix

package operators

import (
	"os/exec"
	"syscall"
)

// inProcessGroup makes the command the leader of a new process group and
// makes the end of its context kill that whole group, so that no process the
// command started survives it.
func inProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

// killLeftovers kills what is left of the process group led by pid, once its
// leader has exited, and reports whether anything was left. The kernel keeps
// a group's ID from being reused while any member lives, so this reaches only
// the command's own leftovers; an empty group answers ESRCH.
func killLeftovers(pid int) bool {
	return syscall.Kill(-pid, syscall.SIGKILL) == nil
}
