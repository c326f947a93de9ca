package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/state"
)

func TestEndpoints(t *testing.T) {
	var kafkaErr error
	var lastReady *bool
	h := Handler(prometheus.NewRegistry(), []Check{
		{Name: "kafka", Fn: func(context.Context) error { return kafkaErr }},
		{Name: "redis", Fn: func(context.Context) error { return nil }},
	}, func(ok bool) { lastReady = &ok })
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get("/readyz"); code != 200 || lastReady == nil || !*lastReady {
		t.Errorf("/readyz with every check passing = %d", code)
	}
	kafkaErr = errors.New("no brokers")
	code, body := get("/readyz")
	if code != 503 || !strings.Contains(body, "kafka: no brokers") || *lastReady {
		t.Errorf("/readyz with kafka down = %d %q", code, body)
	}
	if code, _ := get("/metrics"); code != 200 {
		t.Errorf("/metrics = %d", code)
	}
}

// An advisory check (a receiver the vendor refuses) is named in /readyz's
// body and leaves the replica ready; beside a real failure it is named too.
func TestReadyzAdvisoryCheck(t *testing.T) {
	var kafkaErr error
	var lastReady *bool
	h := Handler(prometheus.NewRegistry(), []Check{
		{Name: "kafka", Fn: func(context.Context) error { return kafkaErr }},
		{Name: "notify", Fn: func(context.Context) error { return errors.New("receiver ding: sign not match") }, Advisory: true},
	}, func(ok bool) { lastReady = &ok })
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	code, body := get()
	if code != 200 || !*lastReady || body != "ready\nnotify: receiver ding: sign not match\n" {
		t.Errorf("/readyz with an advisory failure = %d %q", code, body)
	}
	kafkaErr = errors.New("no brokers")
	code, body = get()
	if code != 503 || *lastReady || body != "kafka: no brokers\nnotify: receiver ding: sign not match\n" {
		t.Errorf("/readyz with kafka down and an advisory failure = %d %q", code, body)
	}
}

// TestReadyzUnderFrozenRedis: a Redis that accepts connections but answers
// nothing (CLIENT PAUSE) makes /readyz fail within its own deadline, inside
// the chart's 3 s probe timeout, instead of after the client's read timeout
// and retries.
func TestReadyzUnderFrozenRedis(t *testing.T) {
	url := testenv.Redis(t)
	client, err := state.Dial(url, state.ModeStandalone, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	store := state.NewRedis(client, "rw", 72*time.Hour)
	h := Handler(prometheus.NewRegistry(), []Check{
		{Name: "kafka", Fn: func(context.Context) error { return nil }},
		{Name: "redis", Fn: store.Ping},
	}, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	readyz := func() (int, string, time.Duration) {
		start := time.Now()
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(start)
	}
	if code, body, _ := readyz(); code != 200 {
		t.Fatalf("/readyz with Redis answering = %d %q", code, body)
	}

	// Another connection freezes the server for 12 s: longer than the
	// client's read timeout (3 s) and its retries.
	admin, err := state.Dial(url, state.ModeStandalone, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Do(context.Background(), "CLIENT", "PAUSE", "12000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	// The paused server is killed when the test ends: CLIENT UNPAUSE would
	// itself wait out the pause.
	code, body, took := readyz()
	if code != 503 || !strings.Contains(body, "redis: ") || strings.Contains(body, "kafka") {
		t.Errorf("/readyz with Redis frozen = %d %q, want 503 naming redis only", code, body)
	}
	// The deadline, and slack for a loaded machine, well under 3 s.
	if took > ProbeTimeout+700*time.Millisecond {
		t.Errorf("/readyz with Redis frozen took %s, past its %s deadline", took.Round(time.Millisecond), ProbeTimeout)
	}
	t.Logf("/readyz with Redis frozen: %d after %s: %s", code, took.Round(time.Millisecond), strings.TrimSpace(body))
}
