package testenv

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Process is a program a test started (the built replywatch, Alertmanager)
// with its standard output and error captured together.
type Process struct {
	Cmd *exec.Cmd

	name   string
	out    lockedBuffer
	exited chan struct{}
	err    error
}

// StartProcess starts cmd with its output captured. When the test ends the
// process is killed if it still runs, and its output is logged if the test
// failed; name says whose output it is.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, name: name, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Output())
		}
	})
	return p
}

// Output is what the process wrote so far.
func (p *Process) Output() string { return p.out.String() }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Wait waits up to within for the process to exit and returns how it
// exited; exited is false when it still runs.
func (p *Process) Wait(within time.Duration) (err error, exited bool) {
	select {
	case <-p.exited:
		return p.err, true
	case <-time.After(within):
		return nil, false
	}
}

// Stop sends sig and fails the test unless the process exits within
// within; it returns how the process exited.
func (p *Process) Stop(t testing.TB, sig os.Signal, within time.Duration) error {
	t.Helper()
	if err := p.Signal(sig); err != nil {
		t.Fatalf("%v to %s: %v", sig, p.name, err)
	}
	err, exited := p.Wait(within)
	if !exited {
		t.Fatalf("%s did not exit within %s of %v", p.name, within, sig)
	}
	return err
}

// lockedBuffer is a bytes.Buffer that the process's writer and the test
// may use at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// AwaitHTTP waits until url answers 200.
func AwaitHTTP(t testing.TB, within time.Duration, url string) {
	t.Helper()
	Eventually(t, within, url+" answering 200", func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
}

// Alertmanager starts prometheus-alertmanager with the configuration file
// config on a free loopback port, without clustering and with its data in
// a directory of the test, waits until it is ready and returns its
// host:port. Extra command-line flags are added last. Without
// prometheus-alertmanager on PATH the test is skipped, or fails when the
// CI environment variable is set.
func Alertmanager(t testing.TB, config string, flags ...string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		msg := "prometheus-alertmanager not found: apt-get install prometheus-alertmanager"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	args := append([]string{"--config.file=" + config, "--storage.path=" + filepath.Join(t.TempDir(), "data"),
		"--web.listen-address=" + addr, "--cluster.listen-address="}, flags...)
	StartProcess(t, "alertmanager", exec.Command(bin, args...))
	AwaitHTTP(t, 30*time.Second, "http://"+addr+"/-/ready")
	return addr
}
