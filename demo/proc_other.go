//go:build !unix

package demo

import "syscall"

// childAttr: no process groups here; the demo still stops its child.
func childAttr() *syscall.SysProcAttr { return nil }
