package app

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/metrics"
	"github.com/replywatch/replywatch/pipeline"
	"github.com/replywatch/replywatch/state"
)

// riskWatcher raises effective_reply_risk (DESIGN.md §4) from the shops'
// reports, which only the replica holding the reporter lease computes. It
// remembers in memory which shop-day it raised: a replica that takes the
// lease over raises a shop still at risk again, with the same alert_id,
// which the notifier delivers once per receiver.
type riskWatcher struct {
	sink       pipeline.AlertSink
	alertBelow func(shop string) float64
	language   string
	location   func(shop string) *time.Location
	metrics    *metrics.Process
	log        *zap.Logger
	wall       func() time.Time

	mu     sync.Mutex
	firing map[string]string // shop → the day its alert is firing for
}

func (w *riskWatcher) observe(ctx context.Context, now time.Time, reps []metrics.ShopReport) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.firing == nil {
		w.firing = map[string]string{}
	}
	var out []alerting.Alert
	next := map[string]string{}
	for shop, day := range w.firing {
		next[shop] = day
	}
	for _, r := range reps {
		risk := r.EffectiveReplyRateProjected != nil &&
			detectors.EffectiveRisk(*r.ConsultingProjected, *r.EffectiveReplyRateProjected, w.alertBelow(r.Shop))
		day, was := w.firing[r.Shop]
		if was && (!risk || day != r.Day) {
			out = append(out, detectors.EffectiveRiskAlert(r.Shop, r.Platform, day, now, false))
			delete(next, r.Shop)
		}
		if risk && (!was || day != r.Day) {
			out = append(out, detectors.EffectiveRiskAlert(r.Shop, r.Platform, r.Day, now, true))
			next[r.Shop] = r.Day
		}
	}
	if len(out) == 0 {
		return
	}
	ds := make([]state.Delivery, 0, len(out))
	for i := range out {
		a := &out[i]
		a.Stamp(w.wall(), w.language, w.location(a.ShopID))
		payload, err := json.Marshal(a)
		if err != nil {
			w.log.Error("encoding an effective_reply_risk alert", zap.String("shop_id", a.ShopID), zap.Error(err))
			return
		}
		ds = append(ds, state.Delivery{Key: a.Key(), Payload: payload})
	}
	if err := w.sink.Deliver(ctx, ds); err != nil {
		// Nothing is remembered: the next report tries again.
		w.log.Warn("delivering effective_reply_risk alerts", zap.Int("alerts", len(ds)), zap.Error(err))
		return
	}
	w.firing = next
	for _, a := range out {
		w.metrics.Alerts.WithLabelValues(a.Kind, a.Status).Inc()
	}
}
