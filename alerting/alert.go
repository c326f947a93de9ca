// Package alerting owns the alert record of the contract, its stable id, its
// human summary, and the sinks alerts are delivered to. It does not decide
// when an alert fires: that is the detectors' job.
package alerting

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Kinds of alert.
const (
	KindReplyWarning       = "reply_warning"
	KindReplyBreach        = "reply_breach"
	KindLongNoReply        = "long_no_reply"
	KindIdleSeat           = "idle_seat"
	KindSeatAway           = "seat_away"
	KindShopUncovered      = "shop_uncovered"
	KindShippingWarning    = "shipping_warning"
	KindShippingBreach     = "shipping_breach"
	KindDisputeDeadline    = "dispute_deadline"
	KindBadReview          = "bad_review"
	KindAbusiveReply       = "abusive_reply"
	KindComplaintRisk      = "complaint_risk"
	KindOffPlatformTrade   = "off_platform_trade"
	KindEffectiveReplyRisk = "effective_reply_risk"
)

// Kinds lists every kind of alert.
var Kinds = []string{KindReplyWarning, KindReplyBreach, KindLongNoReply, KindIdleSeat, KindSeatAway, KindShopUncovered,
	KindShippingWarning, KindShippingBreach, KindDisputeDeadline, KindBadReview, KindAbusiveReply, KindComplaintRisk,
	KindOffPlatformTrade, KindEffectiveReplyRisk}

// Statuses.
const (
	Firing   = "firing"
	Resolved = "resolved"
)

// Severities.
const (
	Info     = "info"
	Warning  = "warning"
	Critical = "critical"
)

// Reasons a firing alert is resolved.
const (
	ReasonReplied   = "replied"
	ReasonRetracted = "retracted"
	ReasonExcluded  = "excluded"
	ReasonShipped   = "shipped"
	ReasonReturned  = "returned" // an away agent came back
	// ReasonPerfunctory marks a firing abusive_reply that is a
	// perfunctory (敷衍) reply rather than abuse.
	ReasonPerfunctory = "perfunctory"
	// ReasonRecovered ends an effective_reply_risk whose projection is
	// back above the line.
	ReasonRecovered = "recovered"
	ReasonRefunded  = "refunded" // an order awaiting shipment was refunded
	ReasonClosed    = "closed"   // a dispute or complaint was closed
)

// Alert is one alert record as written to the alerts topic and every sink.
// Times are kept as time.Time and encoded by MarshalJSON in the contract's
// format, with the offset of their location (InZone puts them in the
// shop's); zero times and empty strings are omitted.
type Alert struct {
	ID        string    `json:"alert_id"`
	Kind      string    `json:"kind"`
	Status    string    `json:"status"`
	Severity  string    `json:"severity"`
	Threshold string    `json:"threshold,omitempty"`
	Platform  string    `json:"platform,omitempty"`
	ShopID    string    `json:"shop_id"`
	BuyerID   string    `json:"buyer_id,omitempty"`
	AgentID   string    `json:"agent_id,omitempty"`
	OrderID   string    `json:"order_id,omitempty"`
	Since     time.Time `json:"-"`
	Due       time.Time `json:"-"`
	At        time.Time `json:"-"`
	EmittedAt time.Time `json:"-"`
	Reason    string    `json:"reason,omitempty"`
	Summary   string    `json:"summary,omitempty"`
	// Category, Term and Excerpt say what a text rule found in a message:
	// the lexicon category, the term matched, and at most 60 characters of
	// that message around it (never the whole conversation).
	Category string `json:"category,omitempty"`
	Term     string `json:"term,omitempty"`
	Excerpt  string `json:"excerpt,omitempty"`
	// Replay is set on the alerts of a partition rebuilt from Kafka after
	// Redis lost its state: the same ids as before the loss, for the
	// notifier to treat as a replayed backlog rather than news.
	Replay bool `json:"replay,omitempty"`
}

// Stamp finishes an alert for writing: emitted is when the record is
// produced, the times take the shop's offset (loc) and the summary is
// written in lang. Every producer of alert records calls it.
func (a *Alert) Stamp(emitted time.Time, lang string, loc *time.Location) {
	a.EmittedAt = emitted
	a.InZone(loc)
	a.Summary = Summary(a, lang, loc)
}

// InZone puts the alert's times in loc, the shop's zone, so that they are
// written with the shop's UTC offset, as the summary's clock times are.
func (a *Alert) InZone(loc *time.Location) {
	if loc == nil {
		return
	}
	for _, t := range []*time.Time{&a.Since, &a.Due, &a.At, &a.EmittedAt} {
		if !t.IsZero() {
			*t = t.In(loc)
		}
	}
}

// ID derives a stable alert id from the parts that identify the condition
// (kind, threshold, shop, buyer, wait start, ...): the same condition gives
// the same id on any replica, after any restart or replay.
func ID(parts ...string) string {
	var buf [256]byte // the parts of an id usually fit: no allocation
	b := buf[:0]
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0x1f)
		}
		b = append(b, p...)
	}
	h := sha256.Sum256(b)
	var out [32]byte
	hex.Encode(out[:], h[:16])
	return string(out[:])
}

// Key is the identity of one delivery: a firing record and the resolved
// record that ends it share an ID but are two deliveries, and so are a
// "replied" resolution and a later "retracted" one.
func (a *Alert) Key() string {
	if a.Status == Resolved {
		return a.ID + ":" + a.Status + ":" + a.Reason
	}
	return a.ID + ":" + a.Status
}

// FormatThreshold writes a threshold the way the contract does ("3m", "30s", "1h30m").
func FormatThreshold(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
