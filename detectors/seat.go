package detectors

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
)

// Seat is one agent's seat (key shop_id/agent_id): its presence status and
// since when. Seat states feed replywatch_seats and the seat_away alert
// (DESIGN.md §2: an agent away longer than away_after must be covered).
type Seat struct {
	Shop, Agent string

	status    string // "" until the first status event
	since     int64  // when status began (Unix ms)
	workSince int64  // when the agent last started or stopped working (online/busy)
	lastTS    int64  // latest applied event time
	fired     bool   // seat_away fired for the current away spell
	seen      recentIDs
}

// SeatEngine applies presence events to seats.
type SeatEngine struct {
	Rules RulesFunc
	// AwayAfter is how long an agent may be away before seat_away fires,
	// for shops whose rules set none.
	AwayAfter time.Duration
}

// awayAfter is the shop's away_after.
func (e *SeatEngine) awayAfter(shop string) time.Duration {
	if d := e.Rules(shop).Seats.AwayAfter; d > 0 {
		return d
	}
	return e.AwayAfter
}

// Working reports whether a presence status counts as a working seat.
func Working(status string) bool { return status == "online" || status == "busy" }

const seatSeenIDs = 8

// Presence applies one agent_status event. Events older than the seat's
// latest are counted but change nothing: a status is only replaced by a
// newer one.
func (e *SeatEngine) Presence(s *Seat, ev *event.Event, fx *Effects) Result {
	if s.seen.seen(xxhash.Sum64String(ev.EventID), seatSeenIDs) {
		return Duplicate
	}
	ts := ev.Ms()
	if ts < s.lastTS {
		return Applied
	}
	e.Advance(s, ev.TS.Time, fx)
	// The seat's own figures carry its latest presence time and when it
	// last started or stopped working, as differences (see FieldSeatSince).
	fx.Figures = append(fx.Figures, FigureDelta{Shop: s.Shop, Field: AgentField(s.Agent, FieldSeatAt), Delta: ts - s.lastTS})
	s.lastTS = ts
	if ev.Status == s.status {
		return Applied
	}
	if s.status == "" || Working(s.status) != Working(ev.Status) {
		fx.Figures = append(fx.Figures, FigureDelta{Shop: s.Shop, Field: AgentField(s.Agent, FieldSeatSince), Delta: ts - s.workSince})
		s.workSince = ts
	}
	if s.status != "" {
		fx.Figures = append(fx.Figures,
			FigureDelta{Shop: s.Shop, Field: SeatField(s.status), Delta: -1},
			FigureDelta{Shop: s.Shop, Field: AgentField(s.Agent, SeatField(s.status)), Delta: -1})
	}
	fx.Figures = append(fx.Figures,
		FigureDelta{Shop: s.Shop, Field: SeatField(ev.Status), Delta: 1},
		FigureDelta{Shop: s.Shop, Field: AgentField(s.Agent, SeatField(ev.Status)), Delta: 1})
	if s.status == "away" && s.fired {
		a := e.awayAlert(s, alerting.Resolved)
		a.At, a.Reason = ev.TS.Time, alerting.ReasonReturned
		fx.Alerts = append(fx.Alerts, a)
	}
	s.status, s.since, s.fired = ev.Status, ts, false
	return Applied
}

// Advance fires seat_away when the agent has been away longer than
// AwayAfter before now.
func (e *SeatEngine) Advance(s *Seat, now time.Time, fx *Effects) {
	if due, ok := e.NextDue(s); ok && !now.Before(due) {
		s.fired = true
		a := e.awayAlert(s, alerting.Firing)
		a.At = a.Due
		fx.Alerts = append(fx.Alerts, a)
	}
}

// NextDue is when Advance next has something to do (1 ms after the limit:
// the limit itself is still allowed).
func (e *SeatEngine) NextDue(s *Seat) (time.Time, bool) {
	away := e.awayAfter(s.Shop)
	if s.status != "away" || s.fired || away <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(s.since + away.Milliseconds() + 1), true
}

func (e *SeatEngine) awayAlert(s *Seat, status string) alerting.Alert {
	r := e.Rules(s.Shop)
	loc := time.UTC
	if r.Hours != nil {
		loc = r.Hours.Loc
	}
	since := time.UnixMilli(s.since).In(loc)
	away := e.awayAfter(s.Shop)
	return alerting.Alert{
		ID:   alerting.ID(alerting.KindSeatAway, s.Shop, s.Agent, strconv.FormatInt(s.since, 10)),
		Kind: alerting.KindSeatAway, Status: status, Severity: alerting.Warning,
		Threshold: alerting.FormatThreshold(away), Platform: r.Platform,
		ShopID: s.Shop, AgentID: s.Agent, Since: since, Due: since.Add(away),
	}
}

var seatStatuses = []string{"", "online", "busy", "away", "offline"}

// seatVersion 2 adds since-workSince after lastTS-since; version 1 seats
// decode with workSince = since.
const seatVersion = 2

// MarshalBinary encodes the seat: version, status code, fired, since,
// lastTS-since, since-workSince, seen ids.
func (s *Seat) MarshalBinary() ([]byte, error) {
	code := -1
	for i, st := range seatStatuses {
		if st == s.status {
			code = i
		}
	}
	if code < 0 {
		return nil, fmt.Errorf("seat %s/%s: unknown status %q", s.Shop, s.Agent, s.status)
	}
	b := make([]byte, 0, 24+8*len(s.seen))
	fired := byte(0)
	if s.fired {
		fired = 1
	}
	b = append(b, seatVersion, byte(code), fired)
	b = binary.AppendUvarint(b, uint64(s.since))
	b = binary.AppendVarint(b, s.lastTS-s.since)
	b = binary.AppendVarint(b, s.since-s.workSince)
	b = append(b, byte(len(s.seen)))
	for _, h := range s.seen {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	return b, nil
}

// UnmarshalBinary decodes a seat; on error the seat is unchanged.
func (s *Seat) UnmarshalBinary(b []byte) error {
	bad := func(what string) error { return fmt.Errorf("%w: seat: %s", ErrCorrupt, what) }
	if len(b) < 4 || b[0] < 1 || b[0] > seatVersion {
		return bad("not a version 1 or 2 seat")
	}
	if int(b[1]) >= len(seatStatuses) || b[2] > 1 {
		return bad("bad status or flag")
	}
	n := Seat{Shop: s.Shop, Agent: s.Agent, status: seatStatuses[b[1]], fired: b[2] == 1}
	off := 3
	since, k := binary.Uvarint(b[off:])
	if k <= 0 {
		return bad("bad since")
	}
	off += k
	d, k := binary.Varint(b[off:])
	if k <= 0 {
		return bad("bad last event time")
	}
	off += k
	n.since, n.lastTS, n.workSince = int64(since), int64(since)+d, int64(since)
	if b[0] >= 2 {
		w, k := binary.Varint(b[off:])
		if k <= 0 {
			return bad("bad working since")
		}
		off += k
		n.workSince = n.since - w
	}
	if off >= len(b) || int(b[off]) > seatSeenIDs || len(b) != off+1+8*int(b[off]) {
		return bad("bad seen ids")
	}
	for i := 0; i < int(b[off]); i++ {
		n.seen = append(n.seen, binary.LittleEndian.Uint64(b[off+1+8*i:]))
	}
	*s = n
	return nil
}
