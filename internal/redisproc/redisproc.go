// Package redisproc runs a redis-server child process on a loopback port,
// without persistence, for the demo, the integration tests and the
// benchmarks. It starts the real server and waits until it answers PING; it
// fakes nothing.
package redisproc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a running redis-server.
type Proc struct {
	Addr string // 127.0.0.1:PORT
	URL  string // redis://127.0.0.1:PORT/0
	PID  int
	Bin  string

	cmd  *exec.Cmd
	done chan struct{}
}

// Options tune Start.
type Options struct {
	// Attr, when set, is the child's SysProcAttr (the demo puts it in its
	// own process group and has the kernel end it with its parent).
	Attr *syscall.SysProcAttr
	// LogName is the log file's name in dir ("redis.log" when empty).
	LogName string
	// Args are added to the command line (e.g. "--maxmemory", "1gb").
	Args []string
}

// Start runs bin on 127.0.0.1:port with dir as its working directory and
// waits up to 10 s for it to answer PING. The server's output goes to a log
// file in dir, quoted in the error when it exits early.
func Start(bin, dir string, port int, o Options) (*Proc, error) {
	name := o.LogName
	if name == "" {
		name = "redis.log"
	}
	logPath := filepath.Join(dir, name)
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the redis-server log: %w", err)
	}
	defer logFile.Close()
	args := append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--protected-mode", "no",
		"--loglevel", "warning",
		"--logfile", ""}, o.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = o.Attr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &Proc{Addr: "127.0.0.1:" + strconv.Itoa(port), Bin: bin, PID: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	p.URL = "redis://" + p.Addr + "/0"
	go func() { _ = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for Ping(p.Addr) != nil {
		select {
		case <-p.done:
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("redis-server on port %d exited: %s", port, bytes.TrimSpace(out))
		default:
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("redis-server on port %d did not answer PING within 10s", port)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p, nil
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Ping sends an inline PING to addr and expects +PONG.
func Ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return errors.New("unexpected PING reply " + strconv.Quote(line))
	}
	return nil
}

// FreePort asks the kernel for a free loopback port. Another process may
// take it before the caller binds it: callers retry with a new one.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
