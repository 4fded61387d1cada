//go:build linux

package harness

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill the child if the test binary dies first
// (for example on a `go test -timeout` panic, when no t.Cleanup runs).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
