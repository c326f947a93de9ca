package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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
