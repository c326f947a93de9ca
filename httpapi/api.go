package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/state"
)

// AlertSource reads the alerts firing now (state.Redis).
type AlertSource interface {
	Scopes(ctx context.Context) ([]string, error)
	Firing(ctx context.Context, scopes []string) ([][]byte, error)
}

// FigureSource reads the shops' figures, as the reporter does.
type FigureSource interface {
	Scopes(ctx context.Context) ([]string, error)
	Figures(ctx context.Context, scopes []string, dayOf func(shop string) string) (map[string]*state.ShopFigures, error)
}

// API serves /api/v1/... and the pages. Every replica serves it, whichever
// holds the reporter lease: it reads Redis and the alerts topic itself.
type API struct {
	Auth    *Auth
	Alerts  AlertSource
	Figures FigureSource
	// Shops are the configured shops, listed even before they have data.
	Shops     []string
	Info      func(shop string) metrics.ShopInfo
	PerAgent  bool
	MaxAgents int
	Stream    *Hub
	// MaxAge drops firing alerts older than it (redis.state_ttl): their
	// conversation's state, which would have resolved them, is gone.
	MaxAge time.Duration
	// Trends, when set, serves /api/v1/shops/trend (see RecordTrend).
	Trends TrendStore
	// Waiting, when set, serves /api/v1/waiting: an agent's waiting buyers.
	Waiting WaitingSource
	// Intake, when set, serves POST /api/v1/alertmanager: Alertmanager's
	// notifications delivered to replywatch's receivers.
	Intake Intake
	// IntakeOnly serves the intake alone: the notifier without the
	// processor ("replywatch notify") has nothing else to show.
	IntakeOnly bool
	Now        func() time.Time
	Log        *zap.Logger

	mu     sync.Mutex
	cached []metrics.ShopReport
	at     time.Time
}

// record is the part of an alert record (CONTRACT.md §3) the API filters
// and sorts by; the record itself is passed on as written.
type record struct {
	ID      string    `json:"alert_id"`
	Kind    string    `json:"kind"`
	Status  string    `json:"status"`
	ShopID  string    `json:"shop_id"`
	AgentID string    `json:"agent_id"`
	Due     time.Time `json:"due"`
	At      time.Time `json:"at"`
}

// filter is what a request asks for beyond its scope.
type filter struct {
	shops, agents, kinds []string
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseFilter reads shop, agent and kind (each may be a comma list) and
// checks them against the scope: asking for a shop or an agent outside it
// is refused.
func parseFilter(r *http.Request, s *Scope) (filter, int, string) {
	q := r.URL.Query()
	f := filter{shops: list(q.Get("shop")), agents: list(q.Get("agent")), kinds: list(q.Get("kind"))}
	for _, shop := range f.shops {
		if s.Role == config.RoleAgent || !s.Shop(shop) {
			return f, http.StatusForbidden, "shop " + shop + " is outside this token's scope"
		}
	}
	for _, a := range f.agents {
		if s.Role == config.RoleAgent && a != s.Agent {
			return f, http.StatusForbidden, "agent " + a + " is outside this token's scope"
		}
	}
	return f, 0, ""
}

// match reports whether the scope and the filter let an alert through.
func (f *filter) match(s *Scope, r *record) bool {
	if !s.Alert(r.ShopID, r.AgentID) {
		return false
	}
	return (len(f.shops) == 0 || slices.Contains(f.shops, r.ShopID)) &&
		(len(f.agents) == 0 || slices.Contains(f.agents, r.AgentID)) &&
		(len(f.kinds) == 0 || slices.Contains(f.kinds, r.Kind))
}

// guard identifies the caller or answers the refusal.
func (a *API) guard(w http.ResponseWriter, r *http.Request) *Scope {
	s, code, msg := a.Auth.Identify(r)
	if s == nil {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="replywatch"`)
		}
		http.Error(w, msg, code)
		return nil
	}
	if s.Role == config.RoleAlertmanager {
		http.Error(w, "an alertmanager token only posts to /api/v1/alertmanager", http.StatusForbidden)
		return nil
	}
	return s
}

// guardFiltered identifies the caller and reads the filter its request
// names within its scope, or answers the refusal.
func (a *API) guardFiltered(w http.ResponseWriter, r *http.Request) (*Scope, filter, bool) {
	s := a.guard(w, r)
	if s == nil {
		return nil, filter{}, false
	}
	f, code, msg := parseFilter(r, s)
	if code != 0 {
		http.Error(w, msg, code)
		return nil, filter{}, false
	}
	return s, f, true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// Mount adds the API and the pages to mux.
func (a *API) Mount(mux *http.ServeMux) {
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.Log == nil {
		a.Log = zap.NewNop()
	}
	if a.Intake != nil {
		mux.HandleFunc("POST /api/v1/alertmanager", a.alertmanager)
	}
	if a.IntakeOnly {
		return
	}
	mux.HandleFunc("GET /api/v1/alerts", a.alerts)
	mux.HandleFunc("GET /api/v1/shops", a.shops)
	if a.Stream != nil {
		mux.HandleFunc("GET /api/v1/alerts/stream", a.stream)
	}
	if a.Trends != nil {
		mux.HandleFunc("GET /api/v1/shops/trend", a.trend)
	}
	if a.Waiting != nil {
		mux.HandleFunc("GET /api/v1/waiting", a.waiting)
	}
	a.mountPages(mux)
}

// firing reads the alerts firing now that the scope and filter let
// through, the most urgent (earliest due, then earliest) first.
func (a *API) firing(ctx context.Context, s *Scope, f *filter) ([]json.RawMessage, error) {
	scopes, err := a.Alerts.Scopes(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := a.Alerts.Firing(ctx, scopes)
	if err != nil {
		return nil, err
	}
	type item struct {
		rec record
		raw json.RawMessage
	}
	var items []item
	for _, b := range raw {
		var rec record
		if err := json.Unmarshal(b, &rec); err != nil {
			a.Log.Warn("an alert firing now is not a record", zap.Error(err))
			continue
		}
		if a.MaxAge > 0 && !rec.At.IsZero() && a.Now().Sub(rec.At) > a.MaxAge {
			continue
		}
		if f.match(s, &rec) {
			items = append(items, item{rec, b})
		}
	}
	sort.Slice(items, func(i, j int) bool {
		x, y := &items[i].rec, &items[j].rec
		// Alerts without a deadline come after those with one.
		if x.Due.IsZero() != y.Due.IsZero() {
			return y.Due.IsZero()
		}
		if !x.Due.Equal(y.Due) {
			return x.Due.Before(y.Due)
		}
		if !x.At.Equal(y.At) {
			return x.At.Before(y.At)
		}
		return x.ID < y.ID
	})
	out := make([]json.RawMessage, len(items))
	for i, it := range items {
		out[i] = it.raw
	}
	return out, nil
}

func (a *API) alerts(w http.ResponseWriter, r *http.Request) {
	s, f, ok := a.guardFiltered(w, r)
	if !ok {
		return
	}
	out, err := a.firing(r.Context(), s, &f)
	if err != nil {
		a.Log.Warn("reading the alerts firing now", zap.Error(err))
		http.Error(w, "reading the alerts firing now failed", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, map[string]any{"alerts": out})
}

// reportsFresh is how long one reading of every shop's figures serves
// the requests that follow (a wall of many screens asks often).
const reportsFresh = time.Second

// reports computes every shop's figures from the counters, as the reporter
// does, reusing a reading younger than reportsFresh.
func (a *API) reports(ctx context.Context) ([]metrics.ShopReport, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.Now()
	if a.cached != nil && now.Sub(a.at) < reportsFresh && !now.Before(a.at) {
		return a.cached, nil
	}
	scopes, err := a.Figures.Scopes(ctx)
	if err != nil {
		return nil, err
	}
	figs, err := a.Figures.Figures(ctx, scopes, func(shop string) string { return a.Info(shop).Rules.Hours.Day(now) })
	if err != nil {
		return nil, err
	}
	for _, s := range a.Shops {
		if figs[s] == nil {
			figs[s] = &state.ShopFigures{Shop: s}
		}
	}
	out := make([]metrics.ShopReport, 0, len(figs))
	for _, f := range figs {
		rep, _ := metrics.Report(f, a.Info(f.Shop), now, a.PerAgent, a.MaxAgents)
		out = append(out, rep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Shop < out[j].Shop })
	a.cached, a.at = out, now
	return out, nil
}

func (a *API) shops(w http.ResponseWriter, r *http.Request) {
	out, ok := a.scopedReports(w, r)
	if !ok {
		return
	}
	writeJSON(w, map[string]any{"at": a.Now().UTC().Format(time.RFC3339Nano), "shops": out})
}

// scopedReports answers the shop-figure requests' common part: the token's
// scope (agents see no shop figures), the shop filter, and the reports of
// the shops both allow. It has written the error when ok is false.
func (a *API) scopedReports(w http.ResponseWriter, r *http.Request) (out []metrics.ShopReport, ok bool) {
	s := a.guard(w, r)
	if s == nil {
		return nil, false
	}
	if s.Role == config.RoleAgent {
		http.Error(w, "shop figures are outside an agent token's scope", http.StatusForbidden)
		return nil, false
	}
	f, code, msg := parseFilter(r, s)
	if code != 0 {
		http.Error(w, msg, code)
		return nil, false
	}
	all, err := a.reports(r.Context())
	if err != nil {
		a.Log.Warn("reading shop figures", zap.Error(err))
		http.Error(w, "reading shop figures failed", http.StatusServiceUnavailable)
		return nil, false
	}
	out = []metrics.ShopReport{}
	for _, rep := range all {
		if s.Shop(rep.Shop) && (len(f.shops) == 0 || slices.Contains(f.shops, rep.Shop)) {
			out = append(out, rep)
		}
	}
	return out, true
}
