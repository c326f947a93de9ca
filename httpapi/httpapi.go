// Package httpapi owns replywatch's HTTP surface: /metrics, /healthz (the
// process is alive), /readyz (Kafka and Redis answer and the consumer group
// has joined), the JSON and Server-Sent Events API under /api/v1 with its
// token scopes, and the embedded pages /wall and /agent. It reads what the
// processor wrote (Redis, the alerts topic) and decides nothing.
package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness condition; a nil error means ready.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
	// Advisory checks are reported in /readyz's body but leave the replica
	// ready: a receiver the vendor refuses stops no alert from reaching
	// cs.alerts or the other receivers, and taking the replica out of
	// service would not fix its configuration.
	Advisory bool
}

// ProbeTimeout bounds a readiness probe: within it /readyz answers, even
// when a dependency accepts connections but does not reply (a paused or
// overloaded Redis), well inside the chart's 3 s probe timeout.
const ProbeTimeout = 2 * time.Second

// Probe runs the checks at once and returns the failures, each "name:
// error", in the checks' order: those that make the replica unready, and
// those of advisory checks. A check that has not answered when the
// probe's deadline passes fails; it is not waited for (it gets the
// cancelled context and ends on its own).
func Probe(ctx context.Context, checks []Check) (failed, advisories []string) {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(checks))
	for i, c := range checks {
		go func() { results <- result{i, c.Fn(ctx)} }()
	}
	errs := make([]error, len(checks))
	answered := make([]bool, len(checks))
	for range checks {
		select {
		case r := <-results:
			errs[r.i], answered[r.i] = r.err, true
			continue
		case <-ctx.Done():
		}
		break
	}
	for i, c := range checks {
		var f string
		switch {
		case !answered[i]:
			f = fmt.Sprintf("%s: no answer within %s", c.Name, ProbeTimeout)
		case errs[i] != nil:
			f = c.Name + ": " + errs[i].Error()
		default:
			continue
		}
		if c.Advisory {
			advisories = append(advisories, f)
		} else {
			failed = append(failed, f)
		}
	}
	return failed, advisories
}

// Handler serves the endpoints. ready, when not nil, is told the outcome of
// each readiness probe (for the replywatch_ready gauge).
func Handler(g prometheus.Gatherer, checks []Check, ready func(bool)) http.Handler {
	return NewHandler(g, checks, ready, nil)
}

// NewHandler is Handler with the API and the pages when api is not nil.
func NewHandler(g prometheus.Gatherer, checks []Check, ready func(bool), api *API) http.Handler {
	mux := http.NewServeMux()
	if api != nil {
		api.Mount(mux)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		failed, advisories := Probe(r.Context(), checks)
		if ready != nil {
			ready(len(failed) == 0)
		}
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		} else {
			fmt.Fprintln(w, "ready")
		}
		for _, f := range append(failed, advisories...) {
			fmt.Fprintln(w, f)
		}
	})
	return mux
}
