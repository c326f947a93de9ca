package demo

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/hours"
)

// The demo's urgent buyers wrote up to three minutes before it started, and
// a demo should have a while before closing time: the window must have been
// open since lookBack ago and stay open lookAhead more.
const (
	lookBack  = 4 * time.Minute
	lookAhead = 30 * time.Minute
	// shiftTo is the shop-local hour a shifted zone shows: mid-afternoon,
	// inside every platform's window.
	shiftTo = 14
)

// Zone is the time zone the demo shops run in.
type Zone struct {
	// Name is the IANA name the configuration carries.
	Name string
	Loc  *time.Location
	// Shifted says the requested zone was outside service hours and Name
	// is a stand-in where they are open.
	Shifted bool
	// Label is how the screen names the zone: the IANA name, or "UTC−7"
	// for a stand-in (Etc/GMT+7 reads as the opposite of what it is).
	Label string
	// Note tells the user which zone runs and why.
	Note string
}

// offsetLabel writes a zone's offset at t as "UTC+8", "UTC−7", "UTC+5:30"
// or "UTC", with a true minus sign.
func offsetLabel(loc *time.Location, t time.Time) string {
	_, off := t.In(loc).Zone()
	if off == 0 {
		return "UTC"
	}
	sign := "+"
	if off < 0 {
		sign, off = "−", -off
	}
	h, m := off/3600, off%3600/60
	if m != 0 {
		return fmt.Sprintf("UTC%s%d:%02d", sign, h, m)
	}
	return fmt.Sprintf("UTC%s%d", sign, h)
}

// chooseZone keeps the requested zone when every shop's service window is
// open there from lookBack ago to lookAhead from now; otherwise it picks the
// whole-hour Etc/GMT zone where it is now about 14:00. cfg gives the shops'
// windows; its Timezone is the requested zone.
func chooseZone(cfg *config.Config, now time.Time) (Zone, error) {
	base := cfg.Timezone
	loc, err := time.LoadLocation(base)
	if err != nil {
		return Zone{}, fmt.Errorf("loading time zone %q: %w", base, err)
	}
	hrs := windowText(cfg.ServiceHours)
	openAll := func(zone string, t time.Time) bool {
		c := *cfg
		c.Timezone = zone
		rules := c.Rules()
		for shop := range cfg.Shops {
			if !rules(shop).Hours.Open(t) {
				return false
			}
		}
		return rules("").Hours.Open(t)
	}
	local := now.In(loc).Format("15:04")
	if openAll(base, now.Add(-lookBack)) && openAll(base, now) && openAll(base, now.Add(lookAhead)) {
		return Zone{Name: base, Loc: loc, Label: base,
			Note: fmt.Sprintf("it is %s in %s, inside service hours (%s)", local, base, hrs)}, nil
	}
	why := "outside service hours"
	if openAll(base, now) {
		why = "too close to the edge of service hours"
	}
	offset := shiftTo - now.UTC().Hour() // -9 … +14: every one has an Etc/GMT zone
	name := etcZone(offset)
	shifted, err := time.LoadLocation(name)
	if err != nil {
		return Zone{}, fmt.Errorf("loading time zone %q: %w", name, err)
	}
	label := offsetLabel(shifted, now)
	return Zone{Name: name, Loc: shifted, Shifted: true, Label: label,
		Note: fmt.Sprintf("it is %s in %s, %s (%s); the demo shops run at %s (%s in the config), where it is %s",
			local, base, why, hrs, label, name, now.In(shifted).Format("15:04"))}, nil
}

// etcZone names the IANA zone of a whole-hour UTC offset. Etc/GMT signs are
// inverted: Etc/GMT-6 is six hours ahead of UTC.
func etcZone(offsetHours int) string {
	switch {
	case offsetHours > 0:
		return "Etc/GMT-" + strconv.Itoa(offsetHours)
	case offsetHours < 0:
		return "Etc/GMT+" + strconv.Itoa(-offsetHours)
	}
	return "Etc/GMT"
}

// windowText writes service hours as "08:00–23:00".
func windowText(rs []config.TimeRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.Start + "–" + r.End
	}
	return strings.Join(parts, ", ")
}

// opening is the first opening of the day of now in loc: where the
// simulated history starts.
func opening(cfg *config.Config, now time.Time, loc *time.Location) (time.Time, error) {
	l := now.In(loc)
	day := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
	first := -1
	for _, tr := range cfg.ServiceHours {
		r, err := hours.ParseRange(tr.Start, tr.End)
		if err != nil {
			return time.Time{}, fmt.Errorf("reading service_hours: %w", err)
		}
		if first < 0 || r.Start < first {
			first = r.Start
		}
	}
	if first < 0 {
		return day, nil
	}
	return time.Date(day.Year(), day.Month(), day.Day(), first/60, first%60, 0, 0, loc), nil
}
