package demo

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
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Redis is where the demo keeps its state: a redis-server child process, or
// an embedded miniredis when no redis-server can run.
type Redis struct {
	// URL is redis://127.0.0.1:PORT/0.
	URL string
	// Desc says which Redis runs and why, for the user.
	Desc string
	// PID is the redis-server child's process id, 0 when embedded.
	PID int

	close func()
}

// Close stops the server: the child is killed and reaped, miniredis shut
// down. Closing twice does nothing.
func (r *Redis) Close() {
	if r.close != nil {
		r.close()
		r.close = nil
	}
}

// StartRedis starts Redis for the demo. With redis-server on PATH (and
// embedded false) it runs one as a child in dir, on a free loopback port,
// without persistence; otherwise, or when that child fails to start, it runs
// miniredis in this process and Desc says why.
func StartRedis(dir string, embedded bool) (*Redis, error) {
	why := "--embedded-redis given"
	if !embedded {
		bin, err := exec.LookPath("redis-server")
		if err == nil {
			r, err := startRedisServer(bin, dir)
			if err == nil {
				return r, nil
			}
			why = fmt.Sprintf("redis-server did not start: %v", err)
		} else {
			why = "redis-server not found on PATH; install it for the real thing"
		}
	}
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("starting embedded miniredis: %w", err)
	}
	return &Redis{
		URL:   "redis://" + m.Addr() + "/0",
		Desc:  "embedded miniredis (" + why + ")",
		close: m.Close,
	}, nil
}

// startRedisServer runs redis-server on a free port, retrying with another
// port when one is taken between the probe and the server's bind.
func startRedisServer(bin, dir string) (*Redis, error) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			continue
		}
		var r *Redis
		if r, err = runRedisServer(bin, dir, port, attempt); err == nil {
			return r, nil
		}
	}
	return nil, err
}

func runRedisServer(bin, dir string, port, attempt int) (*Redis, error) {
	logPath := filepath.Join(dir, fmt.Sprintf("redis-%d.log", attempt+1))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the redis-server log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--protected-mode", "no",
		"--loglevel", "warning",
		"--logfile", "")
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-done
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for ping(addr) != nil {
		select {
		case <-done:
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("redis-server on port %d exited: %s", port, bytes.TrimSpace(out))
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("redis-server on port %d did not answer PING within 10s", port)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &Redis{
		URL:   "redis://" + addr + "/0",
		Desc:  fmt.Sprintf("redis-server child process (%s, pid %d, no persistence)", bin, cmd.Process.Pid),
		PID:   cmd.Process.Pid,
		close: stop,
	}, nil
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
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

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
