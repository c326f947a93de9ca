package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Environment variables that turn this binary into a process of SSE
// subscribers: the stream's URL and the file of its SubscriberSpec.
const (
	envSubscribeURL  = "RWBENCH_SSE_URL"
	envSubscribeSpec = "RWBENCH_SSE_SPEC"
)

// SubscriberSpec says which clients a subscriber process holds open: one
// per token (each a bearer token, as a page sends its cookie), all opened
// with From as their first Last-Event-ID ("" for none: a snapshot of what
// is firing, then what follows).
type SubscriberSpec struct {
	Tokens []string `json:"tokens"`
	From   string   `json:"from,omitempty"`
}

// SubscriberStats is what a subscriber process saw, written as one JSON
// line on its standard output when it is told to stop.
type SubscriberStats struct {
	Clients int `json:"clients"`
	// Records are the alert records (data lines) received by all clients;
	// Fewest the fewest one client received.
	Records int64 `json:"records"`
	Fewest  int64 `json:"fewest"`
	// Reconnects counts streams that ended (the replica dropped a client
	// that fell behind, or a read failed) and were opened again with the
	// last event id, as EventSource does.
	Reconnects int64  `json:"reconnects"`
	Errors     int64  `json:"errors"`
	LastError  string `json:"last_error,omitempty"`
	// Counts are the records each client received, in the spec's order,
	// and LastIDs the last event id each read: where it got to.
	Counts  []int64  `json:"counts"`
	LastIDs []string `json:"last_ids"`
}

// maybeSubscribers holds SSE clients open and exits when the environment
// asks this process to be a subscriber process; otherwise it returns.
// It prints "connected" once every client has its stream open, and its
// SubscriberStats as JSON on SIGTERM.
func maybeSubscribers() {
	url := os.Getenv(envSubscribeURL)
	if url == "" {
		return
	}
	var spec SubscriberSpec
	b, err := os.ReadFile(os.Getenv(envSubscribeSpec))
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	if err == nil && len(spec.Tokens) == 0 {
		err = errors.New("no clients")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "subscribers: %s=%q: %v\n", envSubscribeSpec, os.Getenv(envSubscribeSpec), err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(runSubscribers(ctx, url, spec, os.Stdout))
}

func runSubscribers(ctx context.Context, url string, spec SubscriberSpec, out io.Writer) int {
	n := len(spec.Tokens)
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0, DisableCompression: true}
	client := &http.Client{Transport: tr}
	var (
		opened     sync.WaitGroup
		done       sync.WaitGroup
		reconnects atomic.Int64
		errs       atomic.Int64
		lastErr    atomic.Value
	)
	counts := make([]atomic.Int64, n)
	lastIDs := make([]string, n) // each written by its client's goroutine, read after done.Wait
	opened.Add(n)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			first := true
			lastID := spec.From
			for ctx.Err() == nil {
				err := subscribe(ctx, client, url, spec.Tokens[i], lastID, func() {
					if first {
						first = false
						opened.Done()
					}
				}, func(id string) { lastID = id }, &counts[i])
				lastIDs[i] = lastID
				if ctx.Err() != nil {
					break
				}
				if err != nil {
					errs.Add(1)
					lastErr.Store(err.Error())
					if first {
						time.Sleep(100 * time.Millisecond)
					}
				}
				if !first {
					reconnects.Add(1)
				}
			}
			if first {
				opened.Done()
			}
		}()
	}
	opened.Wait()
	fmt.Fprintln(out, "connected")
	<-ctx.Done()
	done.Wait()
	st := SubscriberStats{Clients: n, Reconnects: reconnects.Load(), Errors: errs.Load(), Fewest: -1, Counts: make([]int64, n), LastIDs: lastIDs}
	if v, ok := lastErr.Load().(string); ok {
		st.LastError = v
	}
	for i := range counts {
		c := counts[i].Load()
		st.Counts[i] = c
		st.Records += c
		if st.Fewest < 0 || c < st.Fewest {
			st.Fewest = c
		}
	}
	b, _ := json.Marshal(st)
	fmt.Fprintln(out, string(b))
	return 0
}

// subscribe reads one stream with token until it ends: opened is called
// once the response header is in, id with every event's id, and count is
// raised for every event with data.
func subscribe(ctx context.Context, c *http.Client, url, token, lastID string, opened func(), id func(string), count *atomic.Int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("stream answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	opened()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	// An event counts, and its id becomes the last, when its blank line
	// ends it, as in EventSource: a stream cut in the middle of an event
	// leaves it to the next connection.
	var data bool
	var pending string
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if data {
				count.Add(1)
			}
			if pending != "" {
				id(pending)
			}
			data, pending = false, ""
		case len(line) > 5 && string(line[:5]) == "data:":
			data = true
		case len(line) > 3 && string(line[:3]) == "id:":
			pending = strings.TrimSpace(string(line[3:]))
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// Subscribers is a child process of this binary holding SSE clients open.
type Subscribers struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
	done  chan struct{}
}

// StartSubscribers runs the clients of spec on url in a child process and
// returns once every one has its stream open. The spec is written beside
// the log.
func StartSubscribers(ctx context.Context, url string, spec SubscriberSpec, logPath string) (*Subscribers, error) {
	n := len(spec.Tokens)
	specPath := strings.TrimSuffix(logPath, ".log") + ".spec.json"
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this binary to run subscribers: %w", err)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envSubscribeURL+"="+url, envSubscribeSpec+"="+specPath)
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the subscriber process: %w", err)
	}
	s := &Subscribers{cmd: cmd, lines: bufio.NewScanner(stdout), done: make(chan struct{})}
	connected := make(chan bool, 1)
	go func() { connected <- s.lines.Scan() && s.lines.Text() == "connected" }()
	select {
	case ok := <-connected:
		if ok {
			return s, nil
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("the subscriber process ended before its %d streams were open (see %s)", n, logPath)
	case <-time.After(2 * time.Minute):
	case <-ctx.Done():
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, fmt.Errorf("the subscriber process did not open its %d streams within 2 minutes (see %s)", n, logPath)
}

// PID is the subscriber process's id.
func (s *Subscribers) PID() string { return strconv.Itoa(s.cmd.Process.Pid) }

// Stop ends the clients and returns what they received.
func (s *Subscribers) Stop() (SubscriberStats, error) {
	var st SubscriberStats
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	got := make(chan error, 1)
	go func() {
		if !s.lines.Scan() {
			got <- errors.New("the subscriber process wrote no figures")
			return
		}
		got <- json.Unmarshal(s.lines.Bytes(), &st)
	}()
	var err error
	select {
	case err = <-got:
	case <-time.After(30 * time.Second):
		err = errors.New("the subscriber process did not stop within 30 s")
		_ = s.cmd.Process.Kill()
	}
	_ = s.cmd.Wait()
	return st, err
}
