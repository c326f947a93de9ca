package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
)

// Webhook posts the alert records of a message as JSON, signed per the
// Standard Webhooks spec (webhook-id, webhook-timestamp,
// webhook-signature) with the spec's own Go library.
type Webhook struct {
	URL    string
	Signer *standardwebhooks.Webhook
	Budget []config.Limit
	Client *http.Client
}

// NewWebhook builds a webhook receiver from a "whsec_..." secret.
func NewWebhook(u, secret string, limits []config.Limit, c *http.Client) (*Webhook, error) {
	s, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	return &Webhook{URL: u, Signer: s, Budget: limits, Client: c}, nil
}

func (w *Webhook) Limits() []config.Limit { return w.Budget }

// WebhookBody is what a webhook receives.
type WebhookBody struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      struct {
		// Stale says the alerts are a backlog replywatch caught up on.
		Stale  bool             `json:"stale"`
		Alerts []alerting.Alert `json:"alerts"`
	} `json:"data"`
}

// messageID is stable for the same items, so a resend carries the same
// webhook-id and receivers can deduplicate on it, as the spec intends.
func messageID(m *Message) string {
	h := sha256.New()
	for _, it := range m.Items {
		fmt.Fprintf(h, "%s\x1f%s\x1f%s\n", it.Receiver, it.Alert.ID, it.Alert.Status)
	}
	return "msg_" + hex.EncodeToString(h.Sum(nil)[:12])
}

func (w *Webhook) Send(ctx context.Context, m *Message, now time.Time) error {
	var b WebhookBody
	b.Type = "replywatch.alerts"
	b.Timestamp = now.UTC().Format(time.RFC3339Nano)
	b.Data.Stale = m.Stale
	for _, it := range m.Items {
		b.Data.Alerts = append(b.Data.Alerts, it.Alert)
	}
	body, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encoding webhook body: %w", err)
	}
	id := messageID(m)
	sig, err := w.Signer.Sign(id, now, body)
	if err != nil {
		return fmt.Errorf("signing webhook body: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, strings.NewReader(string(body)))
	if err != nil {
		return &ConfigError{Msg: "bad URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(standardwebhooks.HeaderWebhookID, id)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	m.Shown = len(m.Items)
	return doStatus(w.Client, req)
}

// doStatus sends a request to a receiver that answers by status only:
// 2xx accepted, 429 and 5xx try again, other 4xx a configuration error.
func doStatus(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("posting: %w", redactURL(err))
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests:
		return &RateLimitError{Code: resp.StatusCode, Msg: resp.Status, Wait: retryAfter(resp)}
	case resp.StatusCode >= 500:
		return fmt.Errorf("answered %s: %.200s", resp.Status, data)
	default:
		return &ConfigError{Code: resp.StatusCode, Msg: fmt.Sprintf("%s: %.200s", resp.Status, data)}
	}
}

// Alertmanager posts alerts to Alertmanager's API v2 and, as Prometheus
// does, sends firing alerts again every Resend with endsAt four Resends
// ahead, until their resolved record comes: an Alertmanager that stops
// hearing of an alert resolves it by itself.
//
// The firing set lives in a Redis hash (alert_id → record) when Redis is
// given, so that a restarted notifier, or another replica, keeps re-sending
// what fired before it; Alertmanager deduplicates the copies by labels.
type Alertmanager struct {
	URL    string
	Resend time.Duration
	Client *http.Client
	Log    *zap.Logger
	Redis  redis.UniversalClient
	Key    string // the firing hash, <prefix>:{notify.<receiver>}:firing

	mu     sync.Mutex
	firing map[string]alerting.Alert
}

// NewAlertmanager builds an Alertmanager receiver; rdb may be nil (the
// firing set is then kept in memory).
func NewAlertmanager(u string, resend time.Duration, c *http.Client, log *zap.Logger, rdb redis.UniversalClient, prefix, name string) *Alertmanager {
	return &Alertmanager{URL: strings.TrimSuffix(u, "/"), Resend: resend, Client: c, Log: log, firing: map[string]alerting.Alert{},
		Redis: rdb, Key: prefix + ":{notify." + name + "}:firing"}
}

func (a *Alertmanager) Limits() []config.Limit { return nil }

// amAlert is API v2's postable alert.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     string            `json:"startsAt,omitempty"`
	EndsAt       string            `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func (a *Alertmanager) toAM(al alerting.Alert, now time.Time) amAlert {
	labels := map[string]string{"alertname": al.Kind, "alert_id": al.ID, "severity": al.Severity, "shop_id": al.ShopID}
	for k, v := range map[string]string{"buyer_id": al.BuyerID, "agent_id": al.AgentID, "order_id": al.OrderID,
		"platform": al.Platform, "threshold": al.Threshold} {
		if v != "" {
			labels[k] = v
		}
	}
	out := amAlert{Labels: labels, Annotations: map[string]string{"summary": al.Summary}}
	start := al.At
	if start.IsZero() {
		start = al.EmittedAt
	}
	if al.Status == alerting.Resolved {
		end := al.At
		if end.IsZero() {
			end = now
		}
		out.EndsAt = end.UTC().Format(time.RFC3339Nano)
		if al.Reason != "" {
			out.Annotations["reason"] = al.Reason
		}
		return out
	}
	if !start.IsZero() {
		out.StartsAt = start.UTC().Format(time.RFC3339Nano)
	}
	out.EndsAt = now.Add(4 * a.Resend).UTC().Format(time.RFC3339Nano)
	return out
}

func (a *Alertmanager) Send(ctx context.Context, m *Message, now time.Time) error {
	var batch []amAlert
	for _, it := range m.Items {
		batch = append(batch, a.toAM(it.Alert, now))
	}
	if err := a.post(ctx, batch); err != nil {
		return err
	}
	m.Shown = len(m.Items)
	if a.Redis != nil {
		pipe := a.Redis.Pipeline()
		for _, it := range m.Items {
			if it.Alert.Status == alerting.Firing {
				v, _ := it.Alert.MarshalJSON()
				pipe.HSet(ctx, a.Key, it.Alert.ID, v)
			} else {
				pipe.HDel(ctx, a.Key, it.Alert.ID)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			// Accepted by Alertmanager: only the resends are at risk.
			a.Log.Warn("cannot record firing alerts for resending", zap.Error(err))
		}
		return nil
	}
	a.mu.Lock()
	for _, it := range m.Items {
		if it.Alert.Status == alerting.Firing {
			a.firing[it.Alert.ID] = it.Alert
		} else {
			delete(a.firing, it.Alert.ID)
		}
	}
	a.mu.Unlock()
	return nil
}

// firingNow is the set of alerts to re-send.
func (a *Alertmanager) firingNow(ctx context.Context) ([]alerting.Alert, error) {
	if a.Redis == nil {
		a.mu.Lock()
		defer a.mu.Unlock()
		out := make([]alerting.Alert, 0, len(a.firing))
		for _, al := range a.firing {
			out = append(out, al)
		}
		return out, nil
	}
	var out []alerting.Alert
	iter := a.Redis.HScan(ctx, a.Key, 0, "", 1000).Iterator()
	for i := 0; iter.Next(ctx); i++ {
		if i%2 == 0 {
			continue // the field, the alert id
		}
		var al alerting.Alert
		if err := json.Unmarshal([]byte(iter.Val()), &al); err == nil {
			out = append(out, al)
		}
	}
	return out, iter.Err()
}

func (a *Alertmanager) post(ctx context.Context, batch []amAlert) error {
	body, err := json.Marshal(batch)
	if err != nil {
		return fmt.Errorf("encoding alerts: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL+"/api/v2/alerts", strings.NewReader(string(body)))
	if err != nil {
		return &ConfigError{Msg: "bad URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	return doStatus(a.Client, req)
}

// Run re-sends the firing alerts every Resend until ctx ends.
func (a *Alertmanager) Run(ctx context.Context, now func() time.Time) {
	t := time.NewTicker(a.Resend)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		firing, err := a.firingNow(ctx)
		if err != nil && ctx.Err() == nil {
			a.Log.Warn("cannot read the firing alerts to re-send", zap.Error(err))
		}
		batch := make([]amAlert, 0, len(firing))
		for _, al := range firing {
			batch = append(batch, a.toAM(al, now()))
		}
		if len(batch) == 0 {
			continue
		}
		if err := a.post(ctx, batch); err != nil && ctx.Err() == nil {
			a.Log.Warn("re-sending firing alerts to Alertmanager failed; trying again at the next resend",
				zap.Int("alerts", len(batch)), zap.Error(err))
		}
	}
}

// Log writes messages to a writer and the log: the demo's receiver, and
// where messages go when no receiver is configured, so users see what
// their robots would get.
type Log struct {
	Name   string
	Out    io.Writer
	Render Renderer
	Log    *zap.Logger
	mu     sync.Mutex
}

func (l *Log) Limits() []config.Limit { return nil }

func (l *Log) Send(_ context.Context, m *Message, now time.Time) error {
	t := l.Render.Render(m, now)
	var names []string
	for _, p := range t.Mentions {
		names = append(names, "@"+p.Name)
	}
	// As long as a WeCom markdown message may be.
	body, k := Fit(t, WeComMarkdownMax, func(title string, lines []string) []byte {
		text := title + " | " + strings.Join(lines, " | ")
		if len(names) > 0 {
			text += " | " + strings.Join(names, " ")
		}
		return []byte(text)
	})
	m.Shown = shownOf(t, k)
	text := string(body)
	if l.Out != nil {
		l.mu.Lock()
		fmt.Fprintf(l.Out, "→ %s: %s\n", l.Name, text)
		l.mu.Unlock()
	}
	if l.Log != nil {
		l.Log.Info("notification", zap.String("receiver", l.Name), zap.String("text", text))
	}
	return nil
}
