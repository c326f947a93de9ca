// Package shoprules runs the rules that need a whole shop's figures on the
// one replica that holds the reporter lease: the seat rules idle_seat and
// shop_uncovered (DESIGN.md §2), effective_reply_risk and the perfunctory
// replies of an agent-day (§4). Each evaluation reads the rules' spells,
// judges every shop's summed figures with detectors.EvaluateSeats,
// EvaluateEffectiveRisk and EvaluatePerfunctory, writes the spells and the
// alerts to deliver in one step under the fencing token it claimed with
// the lease, then hands the alerts to the sink. The rules themselves live
// in detectors; the storage in state.
package shoprules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/state"
)

// Store keeps the shop-level rules' spells and outbox (state.Redis,
// state.Memory).
type Store interface {
	ClaimShopRules(ctx context.Context) (int64, error)
	ShopRules(ctx context.Context) (state.ShopRulesState, error)
	WriteShopRules(ctx context.Context, token int64, w *state.ShopRulesWrite) error
}

// Sink durably accepts alert records (the alerts topic).
type Sink interface {
	Deliver(ctx context.Context, ds []state.Delivery) error
}

// Seats is one shop's seats as an evaluation judged them.
type Seats struct {
	View detectors.SeatsView
	// Uncovered is the shop's uncovered time so far today.
	Uncovered time.Duration
}

// spells is what an evaluation keeps of one shop: its seat spells (the
// fields of the record as it was before the other rules joined them), its
// effective-reply risk and the agents alerted for perfunctory replies.
type spells struct {
	detectors.SeatSpells
	Effective   *detectors.EffectiveSpell   `json:"effective,omitempty"`
	Perfunctory *detectors.PerfunctorySpell `json:"perfunctory,omitempty"`
}

// Evaluator evaluates the shop-level rules, on the replica that holds the
// reporter lease. It is safe for concurrent use; evaluations run one at a
// time.
type Evaluator struct {
	Store    Store
	Sink     Sink
	Rules    detectors.RulesFunc
	Language string
	// AlertBelow is a shop's effective_reply.alert_below; nil turns
	// effective_reply_risk off.
	AlertBelow func(shop string) float64
	// PerfunctoryAfter is a shop's text.perfunctory_alert_after; nil or 0
	// leaves perfunctory replies to alert one by one (detectors.TextEngine).
	PerfunctoryAfter func(shop string) int
	// Lag is subtracted from the reporter's clock: the figures show the
	// partitions' clocks, which run the clock grace behind the wall.
	Lag time.Duration
	Log *zap.Logger
	// Alerts counts the alert records produced, by kind and status
	// (replywatch_alerts_total); optional.
	Alerts *prometheus.CounterVec
	// OnAlert sees every alert once the sink accepted it; optional.
	OnAlert func(alerting.Alert)
	// Ready, when set, says whether the figures stand at the present. While
	// the partitions catch up with a backlog their figures are in the past
	// (replies not read yet, waits not ended): the rules wait for them
	// rather than judge them at the wall clock. A backlog therefore raises
	// only the spells still open once it is read, never a flood of past
	// ones (replay reconstructs those).
	Ready func() bool

	mu    sync.Mutex
	token int64
	// clock is the time of the last evaluation (Unix ms); read by scrapes.
	clock atomic.Int64
}

// Drop forgets the fencing token: the lease was lost, and the next holder
// claims a new one. Call it when the lease is given up or lost.
func (e *Evaluator) Drop() {
	e.mu.Lock()
	e.token = 0
	e.mu.Unlock()
}

// Clock is the time of the latest evaluation, in Unix seconds (0 before
// the first).
func (e *Evaluator) Clock() float64 { return float64(e.clock.Load()) / 1000 }

// evaluateDay judges the rules of a shop's day so far at at, the time its
// daily figures were read for (the reporter's clock, as the exported
// projection): effective_reply_risk on the projection of its effective
// reply rate, and the perfunctory replies of each of its agents.
func (e *Evaluator) evaluateDay(sp *spells, f *state.ShopFigures, rules *detectors.Rules, at time.Time, fx *detectors.Effects) {
	if rules.Hours == nil {
		return
	}
	day := rules.Hours.Day(at)
	if e.AlertBelow != nil {
		es := detectors.EffectiveSpell{}
		if sp.Effective != nil {
			es = *sp.Effective
		}
		p := detectors.ProjectEffective(rules.Hours, at, f.Day[detectors.FieldConsulting], f.Day[detectors.FieldEffective])
		detectors.EvaluateEffectiveRisk(f.Shop, rules.Platform, day, p, e.AlertBelow(f.Shop), &es, at, fx)
		sp.Effective = nil
		if es != (detectors.EffectiveSpell{}) {
			sp.Effective = &es
		}
	}
	if e.PerfunctoryAfter != nil {
		ps := detectors.PerfunctorySpell{}
		if sp.Perfunctory != nil {
			ps = *sp.Perfunctory
		}
		detectors.EvaluatePerfunctory(f.Shop, rules.Platform, day, detectors.PerfunctoryCounts(f.Day), e.PerfunctoryAfter(f.Shop), &ps, at, fx)
		sp.Perfunctory = nil
		if len(ps.Alerted) > 0 {
			sp.Perfunctory = &ps
		}
	}
}

// Evaluate judges every shop of figs at now minus Lag, writes what changed
// and delivers new and undelivered alerts. It returns each shop's seats.
func (e *Evaluator) Evaluate(ctx context.Context, figs map[string]*state.ShopFigures, now time.Time) (map[string]Seats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	at := now.Add(-e.Lag)
	if e.Ready != nil && !e.Ready() {
		return nil, nil
	}
	if e.token == 0 {
		t, err := e.Store.ClaimShopRules(ctx)
		if err != nil {
			return nil, err
		}
		e.token = t
	}
	st, err := e.Store.ShopRules(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Seats, len(figs))
	w := &state.ShopRulesWrite{Spells: map[string][]byte{}}
	var alerts []alerting.Alert
	for _, shop := range slices.Sorted(maps.Keys(figs)) {
		f := figs[shop]
		rules := e.Rules(shop)
		var sp spells
		old := st.Spells[shop]
		if old != nil {
			if err := json.Unmarshal(old, &sp); err != nil {
				// A spell lost is at worst an alert fired again with its
				// own id: carry on from nothing rather than stall the shop.
				e.Log.Warn("shop-level rules: unreadable spells, starting afresh", zap.String("shop_id", shop), zap.Error(err))
				sp = spells{}
			}
		}
		sh := detectors.SeatsFromCounters(shop, f.Now, f.Waiting, f.OldestStart, f.AgentOldest)
		var fx detectors.Effects
		u := rules.EvaluateSeats(&sh, &sp.SeatSpells, at, &fx)
		out[shop] = Seats{View: rules.View(&sh, at), Uncovered: u}
		e.evaluateDay(&sp, f, rules, now, &fx)
		blob, err := json.Marshal(&sp)
		if err != nil {
			return nil, fmt.Errorf("encoding spells of %s: %w", shop, err)
		}
		if bytes.Equal(blob, []byte("{}")) {
			blob = nil
		}
		if !bytes.Equal(blob, old) {
			w.Spells[shop] = blob
		}
		alerts = append(alerts, fx.Alerts...)
	}
	for i := range alerts {
		a := &alerts[i]
		a.Stamp(now, e.Language, e.Rules(a.ShopID).Hours.Loc)
		payload, err := a.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encoding alert %s: %w", a.Key(), err)
		}
		w.Outbox = append(w.Outbox, state.Delivery{Key: a.Key(), Payload: payload})
	}
	if len(w.Spells)+len(w.Outbox) > 0 {
		if err := e.Store.WriteShopRules(ctx, e.token, w); err != nil {
			if errors.Is(err, state.ErrFenced) {
				e.token = 0
			}
			return nil, err
		}
	}
	e.clock.Store(at.UnixMilli())
	if e.Alerts != nil {
		for _, a := range alerts {
			e.Alerts.WithLabelValues(a.Kind, a.Status).Inc()
		}
	}
	// Deliver what this evaluation wrote and what an earlier holder left.
	pending := append(st.Outbox, w.Outbox...)
	if len(pending) == 0 {
		return out, nil
	}
	if err := e.Sink.Deliver(ctx, pending); err != nil {
		e.Log.Warn("shop-level alerts not delivered; they stay in the outbox and are sent again", zap.Error(err), zap.Int("alerts", len(pending)))
		return out, nil
	}
	if e.OnAlert != nil {
		for _, d := range pending {
			var a alerting.Alert
			if a.UnmarshalJSON(d.Payload) == nil {
				e.OnAlert(a)
			}
		}
	}
	acks := make([]string, len(pending))
	for i, d := range pending {
		acks[i] = d.Key
	}
	if err := e.Store.WriteShopRules(ctx, e.token, &state.ShopRulesWrite{Acks: acks}); err != nil {
		if errors.Is(err, state.ErrFenced) {
			e.token = 0
		}
		return out, err
	}
	return out, nil
}
