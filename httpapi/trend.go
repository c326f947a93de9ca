package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/replywatch/replywatch/metrics"
)

// TrendStore keeps the day's samples of each shop's figures (state.Redis).
type TrendStore interface {
	AddTrend(ctx context.Context, minute int, days map[string]string, samples map[string][]byte) error
	Trend(ctx context.Context, shop, day string) (map[int][]byte, error)
	Lease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
}

// TrendLease is the lease under which one replica records the trend.
const TrendLease = "trend"

// sampleFields are the figures of a shop report (its JSON names) that a
// trend point keeps: the wall draws them.
var sampleFields = []string{"waiting_buyers", "reply_rate", "reply_breached_buyers"}

// sampleOf is the trend point of rep at now, at the minute of the shop's
// day, as JSON: {"minute": m, <sampleFields>}. A rate is left out while
// no buyer consulted (no data is not a perfect score).
func sampleOf(rep *metrics.ShopReport, now time.Time) (int, []byte, error) {
	loc, err := time.LoadLocation(rep.Timezone)
	if err != nil {
		loc = time.UTC
	}
	l := now.In(loc)
	minute := l.Hour()*60 + l.Minute()
	b, err := json.Marshal(rep)
	if err != nil {
		return 0, nil, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return 0, nil, err
	}
	out := map[string]any{"minute": minute}
	for _, f := range sampleFields {
		if v, ok := all[f]; ok {
			out[f] = v
		}
	}
	if rep.Consulting == 0 {
		delete(out, "reply_rate")
	}
	b, err = json.Marshal(out)
	return minute, b, err
}

// RecordTrend samples every shop's figures each interval while this replica
// holds the trend lease, until ctx ends.
func (a *API) RecordTrend(ctx context.Context, holder string, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := a.recordTrend(ctx, holder, every); err != nil && ctx.Err() == nil {
			a.Log.Warn("recording the day's trend", zap.Error(err))
		}
	}
}

func (a *API) recordTrend(ctx context.Context, holder string, every time.Duration) error {
	held, err := a.Trends.Lease(ctx, TrendLease, holder, 3*every)
	if err != nil || !held {
		return err
	}
	reps, err := a.reports(ctx)
	if err != nil {
		return err
	}
	now := a.Now()
	// Shops in different time zones are at different minutes of their day.
	days := map[string]string{}
	byMinute := map[int]map[string][]byte{}
	for i := range reps {
		minute, b, err := sampleOf(&reps[i], now)
		if err != nil {
			return err
		}
		days[reps[i].Shop] = reps[i].Day
		if byMinute[minute] == nil {
			byMinute[minute] = map[string][]byte{}
		}
		byMinute[minute][reps[i].Shop] = b
	}
	for m, samples := range byMinute {
		if err := a.Trends.AddTrend(ctx, m, days, samples); err != nil {
			return err
		}
	}
	return nil
}

// trend serves GET /api/v1/shops/trend: each shop's samples of its day.
func (a *API) trend(w http.ResponseWriter, r *http.Request) {
	reps, ok := a.scopedReports(w, r)
	if !ok {
		return
	}
	type shopTrend struct {
		Shop   string            `json:"shop"`
		Day    string            `json:"day"`
		Points []json.RawMessage `json:"points"`
	}
	out := []shopTrend{}
	for _, rep := range reps {
		m, err := a.Trends.Trend(r.Context(), rep.Shop, rep.Day)
		if err != nil {
			http.Error(w, "reading the trend failed", http.StatusServiceUnavailable)
			return
		}
		minutes := make([]int, 0, len(m))
		for k := range m {
			minutes = append(minutes, k)
		}
		sort.Ints(minutes)
		st := shopTrend{Shop: rep.Shop, Day: rep.Day, Points: []json.RawMessage{}}
		for _, k := range minutes {
			st.Points = append(st.Points, m[k])
		}
		out = append(out, st)
	}
	writeJSON(w, map[string]any{"shops": out})
}
