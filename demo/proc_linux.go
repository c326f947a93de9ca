package demo

import "syscall"

// childAttr keeps a child out of the terminal's process group, so Ctrl-C
// reaches only the demo, which then stops the child itself; and has the
// kernel kill the child should the demo die without doing so.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
