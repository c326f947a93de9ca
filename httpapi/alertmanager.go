package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/alerting/notify"
	"github.com/replywatch/replywatch/config"
)

// Intake delivers alerts from outside cs.alerts to replywatch's receivers
// (notify.Notifier).
type Intake interface {
	Accept(ctx context.Context, alerts []alerting.Alert, receiver string) (int, error)
}

// alertmanagerBody is Alertmanager's webhook notification, version 4.
type alertmanagerBody struct {
	Version  string                     `json:"version"`
	Status   string                     `json:"status"`
	Receiver string                     `json:"receiver"`
	Alerts   []notify.AlertmanagerAlert `json:"alerts"`
}

// maxAlertmanagerBody bounds a notification: Alertmanager's max_alerts
// keeps real ones far below it.
const maxAlertmanagerBody = 4 << 20

// alertmanager serves POST /api/v1/alertmanager: Alertmanager's
// webhook_config posts here, and replywatch delivers the alerts to its
// own receivers (DingTalk, Feishu, WeCom... with their signing, budgets
// and digests), through the route tree or to the receiver named by
// ?receiver=. Only an alertmanager token (or loopback, with no tokens
// configured) may post. A 2xx tells Alertmanager the alerts are queued; a
// 5xx makes it retry.
func (a *API) alertmanager(w http.ResponseWriter, r *http.Request) {
	s, code, msg := a.Auth.Identify(r)
	if s == nil {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="replywatch"`)
		}
		http.Error(w, msg, code)
		return
	}
	if !s.All && s.Role != config.RoleAlertmanager {
		http.Error(w, "posting alerts needs an alertmanager token", http.StatusForbidden)
		return
	}
	var body alertmanagerBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAlertmanagerBody))
	if err := dec.Decode(&body); err != nil {
		http.Error(w, "not an Alertmanager webhook notification: "+err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		http.Error(w, "not an Alertmanager webhook notification: data after the JSON object", http.StatusBadRequest)
		return
	}
	if body.Version != "4" {
		http.Error(w, "Alertmanager webhook payload version "+body.Version+": only version 4 is read", http.StatusBadRequest)
		return
	}
	now := a.Now()
	alerts := make([]alerting.Alert, 0, len(body.Alerts))
	var bad []string
	for _, am := range body.Alerts {
		al, err := notify.FromAlertmanager(am, now)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		alerts = append(alerts, al)
	}
	if len(bad) > 0 {
		// Nothing is queued: Alertmanager would not send the good ones
		// again after a 4xx, but neither does it fix the bad ones.
		http.Error(w, "bad alerts: "+strings.Join(bad, "; "), http.StatusBadRequest)
		return
	}
	receiver := r.URL.Query().Get("receiver")
	n, err := a.Intake.Accept(r.Context(), alerts, receiver)
	switch {
	case errors.Is(err, notify.ErrNoReceiver):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		a.Log.Warn("queueing Alertmanager's alerts", zap.String("token", s.Name), zap.Error(err))
		http.Error(w, "queueing the alerts failed; send them again", http.StatusServiceUnavailable)
		return
	}
	a.Log.Debug("alerts from Alertmanager queued", zap.String("token", s.Name), zap.String("group_receiver", body.Receiver),
		zap.Int("alerts", len(alerts)), zap.Int("deliveries", n))
	writeJSON(w, map[string]any{"alerts": len(alerts), "queued": n})
}
