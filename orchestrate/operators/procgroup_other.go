//go:build !unix

package operators

import "os/exec"

// inProcessGroup leaves exec's default: the end of the context kills the
// process itself. Process groups are a Unix notion.
func inProcessGroup(*exec.Cmd) {}

// killLeftovers cannot find leftovers without process groups.
func killLeftovers(int) bool { return false }
