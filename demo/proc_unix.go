//go:build unix && !linux

package demo

import "syscall"

// childAttr keeps a child out of the terminal's process group, so Ctrl-C
// reaches only the demo, which then stops the child itself.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
