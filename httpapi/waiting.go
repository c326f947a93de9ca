package httpapi

import (
	"context"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/state"
)

// WaitingSource lists the buyers waiting on an agent (state.Redis).
type WaitingSource interface {
	Scopes(ctx context.Context) ([]string, error)
	AgentWaiting(ctx context.Context, scopes []string, agent string, limit int) ([]state.WaitingBuyer, error)
}

// waitingLimit is the most buyers listed per agent: an agent with more
// waiting has a problem no list solves.
const waitingLimit = 200

// waitingBuyer is one entry of /api/v1/waiting. Times are in the shop's
// time zone, with its offset.
type waitingBuyer struct {
	Shop      string `json:"shop_id"`
	Agent     string `json:"agent_id"`
	Buyer     string `json:"buyer_id"`
	WaitStart string `json:"wait_start"`
	// Deadline is when the wait breaches the first reply threshold.
	Deadline  string            `json:"deadline"`
	Deadlines []waitingDeadline `json:"deadlines"`
}

// waitingDeadline is when a wait passes one reply threshold.
type waitingDeadline struct {
	Threshold string `json:"threshold"`
	At        string `json:"at"`
}

// waiting serves GET /api/v1/waiting: the buyers waiting on an agent now,
// from the moment their wait starts (before any warning), earliest first,
// each with its deadlines. An agent token sees its own; a supervisor names
// the agent (agent=) and sees those of its shops.
func (a *API) waiting(w http.ResponseWriter, r *http.Request) {
	s, f, ok := a.guardFiltered(w, r)
	if !ok {
		return
	}
	agents := f.agents
	if s.Role == config.RoleAgent {
		agents = []string{s.Agent}
	}
	if len(agents) == 0 {
		http.Error(w, "agent is required: waiting buyers are listed per agent (agent=ID)", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	scopes, err := a.Waiting.Scopes(ctx)
	if err == nil {
		out := []waitingBuyer{}
		now := a.Now()
		for _, agent := range agents {
			var list []state.WaitingBuyer
			if list, err = a.Waiting.AgentWaiting(ctx, scopes, agent, waitingLimit); err != nil {
				break
			}
			for _, b := range list {
				if !s.Alert(b.Shop, b.Agent) || len(f.shops) > 0 && !slices.Contains(f.shops, b.Shop) {
					continue
				}
				out = append(out, a.waitingEntry(b))
			}
		}
		if err == nil {
			writeJSON(w, map[string]any{"at": now.UTC().Format(time.RFC3339Nano), "buyers": out})
			return
		}
	}
	a.Log.Warn("reading waiting buyers", zap.Error(err))
	http.Error(w, "reading waiting buyers failed", http.StatusServiceUnavailable)
}

// waitingEntry gives a waiting buyer its deadlines from the shop's reply
// thresholds; Deadline is the first, when the wait breaches.
func (a *API) waitingEntry(b state.WaitingBuyer) waitingBuyer {
	loc := time.Local
	var thresholds []time.Duration
	if a.Info != nil {
		if rules := a.Info(b.Shop).Rules; rules != nil {
			thresholds = rules.Thresholds
			if rules.Hours != nil && rules.Hours.Loc != nil {
				loc = rules.Hours.Loc
			}
		}
	}
	start := time.UnixMilli(b.Start).In(loc)
	e := waitingBuyer{Shop: b.Shop, Agent: b.Agent, Buyer: b.Buyer, WaitStart: start.Format(time.RFC3339Nano),
		Deadlines: []waitingDeadline{}}
	for _, d := range thresholds {
		at := start.Add(d)
		e.Deadlines = append(e.Deadlines, waitingDeadline{Threshold: alerting.FormatThreshold(d), At: at.Format(time.RFC3339Nano)})
	}
	if len(e.Deadlines) > 0 {
		e.Deadline = e.Deadlines[0].At
	}
	return e
}
