package notify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/replywatch/replywatch/alerting"
)

// AlertmanagerAlert is one alert of Alertmanager's webhook notification
// (payload version 4).
type AlertmanagerAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// FromAlertmanager turns an Alertmanager alert into an alert record for
// replywatch's receivers. Its kind is the alertname (routes match it as
// kind), its shop the shop label if any, its severity the severity label
// (warning when unknown), and its id the same for the firing and the
// resolved notification of one occurrence (fingerprint and start), so
// that each reaches a receiver once however often Alertmanager repeats
// it. At is now: Alertmanager decides when an alert is news, and a
// long-firing alert is not a replayed backlog.
func FromAlertmanager(am AlertmanagerAlert, now time.Time) (alerting.Alert, error) {
	name := am.Labels["alertname"]
	if name == "" {
		return alerting.Alert{}, errors.New("an alert has no alertname label")
	}
	if am.Status != alerting.Firing && am.Status != alerting.Resolved {
		return alerting.Alert{}, fmt.Errorf("alert %s: status %q is neither firing nor resolved", name, am.Status)
	}
	fp := am.Fingerprint
	if fp == "" {
		// Older senders: the labels identify the alert.
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(am.Labels)) {
			b.WriteString(k + "=" + am.Labels[k] + "\x1f")
		}
		fp = b.String()
	}
	a := alerting.Alert{
		ID:       alerting.ID("alertmanager", fp, am.StartsAt.UTC().Format(time.RFC3339Nano)),
		Kind:     name,
		Status:   am.Status,
		Severity: alerting.Warning,
		ShopID:   am.Labels["shop"],
		Since:    am.StartsAt,
		At:       now,
	}
	switch s := am.Labels["severity"]; s {
	case alerting.Info, alerting.Warning, alerting.Critical:
		a.Severity = s
	case "page":
		a.Severity = alerting.Critical
	}
	summary := am.Annotations["summary"]
	if summary == "" {
		summary = name
	}
	if d := am.Annotations["description"]; d != "" {
		summary += ": " + d
	}
	a.Summary = summary
	if am.Status == alerting.Resolved {
		a.Reason = alerting.ReasonRecovered
	}
	return a, nil
}

// ErrNoReceiver is returned by Accept for a receiver name not configured.
var ErrNoReceiver = errors.New("no such receiver")

// Accept queues alerts that come from outside cs.alerts (Alertmanager's
// webhook) for delivery by the same stages as the alert records: routed by
// the route tree (or, when receiver is named, to that receiver alone),
// checked against the delivery marks, grouped, inhibited, held to the
// receivers' budgets and digested, signed and sent. It returns how many
// deliveries it queued; an alert already delivered to a receiver (a
// repeat from Alertmanager) is counted a duplicate there and not queued.
// Queued deliveries live in memory: Alertmanager sends firing alerts again
// at its repeat_interval, and the marks keep the repeat from going out
// twice.
func (n *Notifier) Accept(ctx context.Context, alerts []alerting.Alert, receiver string) (int, error) {
	if receiver != "" {
		if _, ok := n.lanes[receiver]; !ok {
			return 0, fmt.Errorf("%w: %q", ErrNoReceiver, receiver)
		}
	}
	var items []*Item
	for _, a := range alerts {
		if receiver == "" {
			items = append(items, n.route(a, nil)...)
			continue
		}
		items = append(items, &Item{Alert: a, Receiver: receiver, Route: n.o.Route,
			Mentions: n.o.People.Mentions(&a, n.o.Route.Mention)})
	}
	if len(items) == 0 {
		return 0, nil
	}
	seen, err := n.o.Marks.Seen(ctx, items)
	if err != nil {
		return 0, fmt.Errorf("reading delivery marks: %w", err)
	}
	fresh := items[:0]
	for i, it := range items {
		if seen[i] {
			n.o.Metrics.Deliveries.WithLabelValues(it.Receiver, resultDuplicate).Inc()
			continue
		}
		fresh = append(fresh, it)
	}
	// A lane also knows what it queued or sent a moment ago, before its
	// mark is written.
	dups := n.add(fresh)
	return len(fresh) - dups, nil
}
