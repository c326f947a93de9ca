package demo

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/replywatch/replywatch/alerting"
)

// ANSI sequences of the terminal view: the alternate screen keeps the
// start-up text in the normal screen, where it is found again on exit.
const (
	altScreenOn  = "\x1b[?1049h\x1b[?25l"
	altScreenOff = "\x1b[?25h\x1b[?1049l"
	home         = "\x1b[H"
	clearEOL     = "\x1b[K"
	clearEOS     = "\x1b[J"
)

const (
	// maxAlerts is how many recent alerts the terminal view lists.
	maxAlerts = 10
	// maxLogs is how many recent warnings from the processor it shows.
	maxLogs = 3
	// pastBefore: alerts about conditions this long before the demo began
	// come from replaying the day's history; they are counted, not listed.
	// It leaves room for the urgent buyers' warnings, due up to a minute
	// before the start.
	pastBefore = 70 * time.Second
)

// view shows the demo to its user: in a terminal, one screen redrawn in
// place; otherwise plain lines, one per alert and one per shop's figures.
type view struct {
	out        io.Writer
	terminal   bool
	size       func() (w, h int)
	loc        *time.Location
	zone       string
	thresholds []string
	started    time.Time
	footer     string
	// alertsTopic is where the processor writes alerts.
	alertsTopic string
	// zoneNote explains a shifted zone on the screen ("" when not shifted).
	zoneNote string

	mu       sync.Mutex
	recent   []shownAlert
	live     int
	past     int
	logs     []string
	status   []string
	snap     *Snapshot
	lastPast int
	// history is the number of records the simulator wrote for the day so
	// far (0 until it has), caughtUp whether the processor has read them.
	history  float64
	caughtUp bool
}

// shownAlert is an alert and when the alerts topic accepted it.
type shownAlert struct {
	at time.Time
	a  alerting.Alert
}

// alert records an alert the processor delivered; in plain mode a live one
// is printed at once.
func (v *view) alert(a alerting.Alert) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if a.At.Before(v.started.Add(-pastBefore)) {
		v.past++
		return
	}
	v.live++
	sa := shownAlert{at: time.Now(), a: a}
	v.recent = append(v.recent, sa)
	if len(v.recent) > maxAlerts {
		v.recent = v.recent[len(v.recent)-maxAlerts:]
	}
	if !v.terminal {
		fmt.Fprintln(v.out, v.alertLine(sa))
	}
}

// say reports progress: a line in plain mode, the status lines of the
// terminal view.
func (v *view) say(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	v.status = append(v.status, msg)
	if len(v.status) > 2 {
		v.status = v.status[len(v.status)-2:]
	}
	if !v.terminal {
		fmt.Fprintf(v.out, "%s %s\n", v.clock(time.Now()), msg)
	}
}

// Write takes the processor's log lines (warnings and errors).
func (v *view) Write(p []byte) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	line := strings.TrimSpace(string(p))
	v.logs = append(v.logs, line)
	if len(v.logs) > maxLogs {
		v.logs = v.logs[len(v.logs)-maxLogs:]
	}
	return len(p), nil
}

// notifyLines shows what the built-in log receiver would send.
type notifyLines struct{ v *view }

func (n notifyLines) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		n.v.say("%s", line)
	}
	return len(p), nil
}

// Sync is for zap.
func (v *view) Sync() error { return nil }

// historyWritten notes that the simulator wrote n records of the day so far.
func (v *view) historyWritten(n int64) {
	v.mu.Lock()
	v.history = float64(n)
	v.mu.Unlock()
}

// update stores the latest figures, and says when the processor has caught
// up with the day so far.
func (v *view) update(s *Snapshot, now time.Time) {
	v.mu.Lock()
	v.snap = s
	done := !v.caughtUp && v.history > 0 && s.Events >= v.history && s.LagKnown && s.Lag == 0
	if done {
		v.caughtUp = true
	}
	v.mu.Unlock()
	if done {
		v.say("processor: caught up with the day so far %s after the start (%s events read)",
			now.Sub(v.started).Round(100*time.Millisecond), count(s.Events))
	}
}

// draw redraws the terminal screen.
func (v *view) draw(now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	w, h := v.size()
	lines := v.frame(now, h)
	var b strings.Builder
	b.WriteString(home)
	for _, l := range lines {
		b.WriteString(fit(l, w))
		b.WriteString(clearEOL)
		b.WriteString("\r\n")
	}
	b.WriteString(clearEOS)
	_, _ = io.WriteString(v.out, b.String())
}

// frame is the terminal screen, at most height lines.
func (v *view) frame(now time.Time, height int) []string {
	up := now.Sub(v.started).Truncate(time.Second)
	top := []string{
		fmt.Sprintf("replywatch demo   %s %s   up %s   Ctrl-C stops", now.In(v.loc).Format("15:04:05"), v.zone, up),
	}
	if v.zoneNote != "" {
		top = append(top, "time: "+v.zoneNote)
	}
	if s := v.snap; s != nil {
		lag := "catching up"
		if s.LagKnown {
			lag = "lag " + count(s.Lag)
		}
		top = append(top, fmt.Sprintf("processor: %s events read (%s), %s alerts written to %s",
			count(s.Events), lag, count(s.Alerts), v.alertsTopic))
	}
	top = append(top, v.status...)
	top = append(top, "")
	top = append(top, v.table()...)
	top = append(top, "")

	heading := "LAST ALERTS"
	if v.past > 0 {
		heading += fmt.Sprintf("   (%s more from earlier today, replayed from the day's history)", count(float64(v.past)))
	}
	alerts := []string{heading}
	if len(v.recent) == 0 {
		alerts = append(alerts, "  none yet: the first warnings and breaches are due within 15 s of the start")
	}
	var rows [][]string
	for i := len(v.recent) - 1; i >= 0; i-- {
		rows = append(rows, v.alertRow(v.recent[i]))
	}
	for _, r := range padLeft(rows) {
		alerts = append(alerts, "  "+r)
	}
	bottom := []string{"", v.footer}
	for _, l := range v.logs {
		bottom = append(bottom, "log: "+l)
	}
	// Drop the oldest alerts first when the screen is short.
	if room := height - 1 - len(top) - len(bottom); room < len(alerts) {
		alerts = alerts[:max(0, room)]
	}
	return append(append(top, alerts...), bottom...)
}

// table is the shops' figures as aligned rows.
func (v *view) table() []string {
	if v.snap == nil || len(v.snap.Shops) == 0 {
		return []string{"waiting for the first figures…"}
	}
	head := []string{"SHOP", "PLATFORM", "WAITING", "OLDEST", "CONSULTED"}
	for _, t := range v.thresholds {
		head = append(head, "REPLY "+t)
	}
	head = append(head, "TARGET", "BREACHED "+strings.Join(v.thresholds, "/"), "30s RATE", "AVG RESP", "SEATS on/busy/away/off")
	rows := [][]string{head}
	for _, f := range v.snap.Shops {
		r := []string{f.Shop, f.Platform, count(f.Waiting), seconds(f.Oldest), count(f.Consulting)}
		var br []string
		for _, t := range v.thresholds {
			r = append(r, v.against(rate(f.Rate, t), f.Rate, t, f.Target))
			br = append(br, count(f.Breached[t]))
		}
		target := noData
		if f.Target > 0 {
			target = percent(f.Target)
		}
		r = append(r, target)
		seats := "-"
		if f.Seats != nil {
			seats = fmt.Sprintf("%s/%s/%s/%s", count(f.Seats["online"]), count(f.Seats["busy"]),
				count(f.Seats["away"]), count(f.Seats["offline"]))
		}
		r = append(r, strings.Join(br, " / "), percentOf(f.Rate30), secondsOf(f.AvgResp), seats)
		rows = append(rows, r)
	}
	return align(rows)
}

// ANSI colours of the terminal view.
const (
	green = "\x1b[32m"
	red   = "\x1b[31m"
	reset = "\x1b[0m"
)

// against colours a reply-rate cell in the terminal: green at or above the
// shop's target, red below it; plain without a target, a rate or a
// terminal.
func (v *view) against(cell string, rates map[string]float64, t string, target float64) string {
	r, ok := rates[t]
	if !v.terminal || !ok || target <= 0 {
		return cell
	}
	if r >= target {
		return green + cell + reset
	}
	return red + cell + reset
}

// align pads columns: text columns (the first two and the last) to the left,
// figures to the right.
func align(rows [][]string) []string {
	return columns(rows, func(i, n int) bool { return i >= 2 && i < n-1 })
}

// printf writes to the output; every write after the start goes through
// the view's lock, as alerts arrive from the processor's goroutines.
func (v *view) printf(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	fmt.Fprintf(v.out, format, args...)
}

// printFigures writes the plain-mode lines of the figures, one per shop.
func (v *view) printFigures(now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, l := range v.figureLines(now) {
		fmt.Fprintln(v.out, l)
	}
}

// figureLines are the plain-mode lines of the figures. v.mu is held.
func (v *view) figureLines(now time.Time) []string {
	var out []string
	if v.past != v.lastPast {
		out = append(out, fmt.Sprintf("%s history: %s alerts from earlier today replayed onto cs.alerts (not listed)",
			v.clock(now), count(float64(v.past))))
		v.lastPast = v.past
	}
	if v.snap == nil {
		return out
	}
	for _, f := range v.snap.Shops {
		var b strings.Builder
		fmt.Fprintf(&b, "%s figures shop=%s platform=%s waiting=%s oldest_wait=%s consulting=%s",
			v.clock(now), f.Shop, f.Platform, count(f.Waiting), seconds(f.Oldest), count(f.Consulting))
		for _, t := range v.thresholds {
			fmt.Fprintf(&b, " reply_rate_%s=%s breached_%s=%s", t, rate(f.Rate, t), t, count(f.Breached[t]))
		}
		fmt.Fprintf(&b, " rate_30s=%s avg_response=%s", percentOf(f.Rate30), secondsOf(f.AvgResp))
		if f.Seats != nil {
			fmt.Fprintf(&b, " seats=online:%s,busy:%s,away:%s,offline:%s", count(f.Seats["online"]),
				count(f.Seats["busy"]), count(f.Seats["away"]), count(f.Seats["offline"]))
		}
		out = append(out, b.String())
	}
	return out
}

// alertLine is an alert as one plain line.
func (v *view) alertLine(sa shownAlert) string {
	a := sa.a
	var b strings.Builder
	fmt.Fprintf(&b, "%s alert %s %s shop=%s", v.clock(sa.at), a.Kind, a.Status, a.ShopID)
	for _, kv := range [][2]string{{"buyer", a.BuyerID}, {"agent", a.AgentID}, {"order", a.OrderID}, {"threshold", a.Threshold}, {"reason", a.Reason}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	if a.Summary != "" {
		b.WriteString(": " + a.Summary)
	}
	return b.String()
}

// alertRow is an alert as the cells of a row of the terminal view: time,
// kind, status, shop, buyer, agent and summary.
func (v *view) alertRow(sa shownAlert) []string {
	a := sa.a
	status := a.Status
	if a.Reason != "" {
		status += " (" + a.Reason + ")"
	}
	row := []string{v.clock(sa.at), a.Kind, status, a.ShopID, a.BuyerID, a.AgentID, a.Summary}
	for i, c := range row {
		if c == "" {
			row[i] = "-"
		}
	}
	return row
}

// padLeft joins rows of cells into lines, each column as wide as its widest
// cell but the last, all left-aligned.
func padLeft(rows [][]string) []string {
	return columns(rows, func(int, int) bool { return false })
}

// columns joins rows of cells into lines two spaces apart, each column as
// wide as its widest cell; a column right is true for is padded on the
// left, the others on the right (the last one not at all).
func columns(rows [][]string, right func(i, n int) bool) []string {
	if len(rows) == 0 {
		return nil
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], width(c))
		}
	}
	out := make([]string, len(rows))
	for j, r := range rows {
		var b strings.Builder
		for i, c := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-width(c))
			switch {
			case right(i, len(r)):
				b.WriteString(pad + c)
			case i < len(r)-1:
				b.WriteString(c + pad)
			default:
				b.WriteString(c)
			}
		}
		out[j] = b.String()
	}
	return out
}

func (v *view) clock(t time.Time) string { return t.In(v.loc).Format("15:04:05") }

// count writes a whole number with thousands separators.
func count(f float64) string {
	s := strconv.FormatInt(int64(f), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func percent(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" }

// noData stands for a ratio or mean whose denominator is 0.
const noData = "—"

// rate is the reply rate at threshold t, or noData.
func rate(rates map[string]float64, t string) string {
	if v, ok := rates[t]; ok {
		return percent(v)
	}
	return noData
}

func percentOf(f *float64) string {
	if f == nil {
		return noData
	}
	return percent(*f)
}

func secondsOf(f *float64) string {
	if f == nil {
		return noData
	}
	return seconds(*f)
}

// seconds writes a span as 41s, 2m41s or 1h02m.
func seconds(f float64) string {
	d := time.Duration(f * float64(time.Second)).Round(time.Second)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// width is how many terminal columns s takes: East Asian wide characters
// (the Chinese alert summaries) take two.
func width(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if l := escapeLen(s[i:]); l > 0 {
			i += l
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		n += runeWidth(r)
		i += size
	}
	return n
}

// escapeLen is the length of the ANSI escape sequence ("\x1b[…m") s
// starts with, 0 if none: it takes no columns.
func escapeLen(s string) int {
	if !strings.HasPrefix(s, "\x1b[") {
		return 0
	}
	for i := 2; i < len(s); i++ {
		if c := s[i]; c >= 0x40 && c <= 0x7e {
			return i + 1
		}
	}
	return len(s)
}

func runeWidth(r rune) int {
	switch {
	case r == utf8.RuneError, r < 0x20:
		return 0
	case r >= 0x1100 && r <= 0x115f, r >= 0x2e80 && r <= 0xa4cf && r != 0x303f,
		r >= 0xac00 && r <= 0xd7a3, r >= 0xf900 && r <= 0xfaff, r >= 0xfe30 && r <= 0xfe4f,
		r >= 0xff00 && r <= 0xff60, r >= 0xffe0 && r <= 0xffe6, r >= 0x20000 && r <= 0x3fffd:
		return 2
	}
	return 1
}

// fit cuts s to at most w columns, so no line wraps and the screen keeps
// its shape.
func fit(s string, w int) string {
	if w <= 0 || width(s) <= w {
		return s
	}
	n := 0
	coloured := false
	for i := 0; i < len(s); {
		if l := escapeLen(s[i:]); l > 0 {
			coloured = true
			i += l
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		rw := runeWidth(r)
		if n+rw > w-1 {
			if coloured {
				return s[:i] + reset + "…"
			}
			return s[:i] + "…"
		}
		n += rw
		i += size
	}
	return s
}
