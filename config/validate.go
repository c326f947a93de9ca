package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/hours"
)

// ValidationError lists every problem found in a configuration. Each
// message starts with the field path it is about, e.g.
// `reply_sla.thresholds[1]: "5x" is not a duration`.
type ValidationError struct {
	Errors []string
}

func (e *ValidationError) Error() string {
	if len(e.Errors) == 1 {
		return "invalid config: " + e.Errors[0]
	}
	return fmt.Sprintf("invalid config (%d problems): %s", len(e.Errors), strings.Join(e.Errors, "; "))
}

// Platforms in the order messages list them.
var Platforms = []string{"pdd", "taobao", "tmall", "jd", "douyin", "other"}

// PlatformHours are the service windows of platform profiles. A shop that
// names its platform but not its service_hours gets its platform's window;
// platforms missing here use the top-level service_hours.
var PlatformHours = map[string][]TimeRange{
	"pdd":    {{Start: "08:00", End: "23:00"}},
	"taobao": {{Start: "08:00", End: "24:00"}},
	"tmall":  {{Start: "08:00", End: "24:00"}},
	"jd":     {{Start: "09:00", End: "23:00"}},
}

// Kafka's own rule for topic names.
var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// Shop ids are at most this long, as in events.
const maxShopID = 128

// minStateTTL keeps a wait that has been open for a whole day (long_no_reply
// fires at 24 h) in Redis.
const minStateTTL = 25 * time.Hour

// Validate checks the whole configuration and returns a *ValidationError
// listing every problem, or nil.
func (c *Config) Validate() error {
	var p problems
	c.validateKafka(&p)
	c.validateRedis(&p)
	c.validateTransport(&p)
	if c.HTTP.Addr == "" {
		p.add("http.addr", "is required")
	} else if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		p.add("http.addr", "%q is not host:port or :port", c.HTTP.Addr)
	}
	oneOf(&p, "platform", c.Platform, Platforms...)
	c.validateRuntime(&p)
	c.validateNotify(&p)
	c.validateOrders(&p)
	c.validateAPI(&p)
	c.compile(&p)
	c.validateText(&p)
	c.validateEffectiveReply(&p)
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Errors: p}
}

// oneOf reports v when it is not one of the allowed values.
func oneOf(p *problems, path, v string, allowed ...string) bool {
	if slices.Contains(allowed, v) {
		return true
	}
	p.add(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return false
}

// atLeast reports a duration below min.
// maxAllowedLateness bounds clock.allowed_lateness: within a day, as a
// day is what a conversation's figures are about.
const maxAllowedLateness = 24 * time.Hour

func atLeast(p *problems, path string, d, min time.Duration) {
	if d < min {
		if min == 0 {
			p.add(path, "must not be negative")
			return
		}
		p.add(path, "%s is too short, the least is %s", fmtDur(d), fmtDur(min))
	}
}

func fmtDur(d time.Duration) string { return alerting.FormatThreshold(d) }

func (c *Config) validateKafka(p *problems) {
	k := c.Kafka
	if len(k.Brokers) == 0 {
		p.add("kafka.brokers", "at least one broker is required")
	}
	for i, b := range k.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			p.add(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if k.GroupID == "" {
		p.add("kafka.group_id", "is required")
	}
	if k.ClientID == "" {
		p.add("kafka.client_id", "is required")
	}
	oneOf(p, "kafka.start_offset", k.StartOffset, OffsetEarliest, OffsetLatest)
	seen := map[string]string{}
	for _, t := range []struct{ key, name string }{
		{"chat", k.Topics.Chat}, {"orders", k.Topics.Orders}, {"presence", k.Topics.Presence}, {"alerts", k.Topics.Alerts},
	} {
		path := "kafka.topics." + t.key
		switch {
		case !topicName.MatchString(t.name):
			p.add(path, "%q is not a Kafka topic name (letters, digits, '.', '_', '-')", t.name)
		case strings.HasSuffix(t.name, ".DLT"):
			p.add(path, "%q ends in .DLT, which is reserved for dead letters", t.name)
		case seen[t.name] != "":
			p.add(path, "%q is already the %s topic", t.name, seen[t.name])
		default:
			seen[t.name] = t.key
		}
	}
	if k.BatchSize < 1 || k.BatchSize > 10000 {
		p.add("kafka.batch_size", "%d is not between 1 and 10000", k.BatchSize)
	}
	atLeast(p, "kafka.batch_wait", k.BatchWait, time.Millisecond)
	atLeast(p, "kafka.session_timeout", k.SessionTimeout, time.Second)
	atLeast(p, "kafka.rebalance_timeout", k.RebalanceTimeout, time.Second)
}

func (c *Config) validateRedis(p *problems) {
	r := c.Redis
	if r.URL == "" {
		p.add("redis.url", "is required")
	} else if u, err := url.Parse(r.URL); err != nil || !slices.Contains([]string{"redis", "rediss", "unix"}, u.Scheme) {
		// Say the masked URL: it may hold a password.
		p.add("redis.url", "%q is not a redis://, rediss:// or unix:// URL", MaskURL(r.URL))
	}
	if oneOf(p, "redis.mode", r.Mode, RedisStandalone, RedisSentinel, RedisCluster) && r.Mode != RedisStandalone {
		if len(r.Addrs) == 0 {
			p.add("redis.addrs", "at least one address is required in %s mode", r.Mode)
		}
		if r.Mode == RedisSentinel && r.MasterName == "" {
			p.add("redis.master_name", "is required in sentinel mode")
		}
	}
	for i, a := range r.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			p.add(fmt.Sprintf("redis.addrs[%d]", i), "%q is not host:port", a)
		}
	}
	// Braces would break the hash tags that keep a partition's keys in one
	// cluster slot.
	if r.Prefix == "" || strings.ContainsAny(r.Prefix, "{} \t\n") {
		p.add("redis.prefix", "%q must be non-empty, without braces or spaces", r.Prefix)
	}
	if r.CacheEntries < 1 {
		p.add("redis.cache_entries", "%d is not a positive number of entries", r.CacheEntries)
	}
	if r.StateTTL < minStateTTL {
		p.add("redis.state_ttl", "%s is too short: a wait open for a day must outlive it, the least is %s", fmtDur(r.StateTTL), fmtDur(minStateTTL))
	}
}

func (c *Config) validateRuntime(p *problems) {
	atLeast(p, "clock.grace", c.Clock.Grace, 0)
	atLeast(p, "clock.allowance", c.Clock.Allowance, 0)
	atLeast(p, "clock.tick", c.Clock.Tick, time.Millisecond)
	atLeast(p, "clock.allowed_lateness", c.Clock.AllowedLateness, time.Second)
	if c.Clock.AllowedLateness > maxAllowedLateness {
		p.add("clock.allowed_lateness", "%s is too long, the most is %s: a conversation keeps its events that long", fmtDur(c.Clock.AllowedLateness), fmtDur(maxAllowedLateness))
	}
	// Younger than a day would dead-letter a day's own backlog replayed
	// the next morning.
	atLeast(p, "clock.max_event_age", c.Clock.MaxEventAge, 24*time.Hour)
	oneOf(p, "alerts.language", c.Alerts.Language, "zh", "en")
	atLeast(p, "alerts.lease", c.Alerts.Lease, time.Second)
	if c.Metrics.MaxAgents < 0 {
		p.add("metrics.max_agents", "must not be negative")
	} else if c.Metrics.PerAgent && c.Metrics.MaxAgents == 0 {
		p.add("metrics.max_agents", "must be at least 1 when per_agent is on")
	}
	atLeast(p, "metrics.report_interval", c.Metrics.ReportInterval, 100*time.Millisecond)
	checkSeats(p, "seats", c.Seats, seatKeys{true, true, true, true, true})
	if c.Metrics.ReporterLease <= c.Metrics.ReportInterval {
		p.add("metrics.reporter_lease", "%s must be longer than report_interval %s", fmtDur(c.Metrics.ReporterLease), fmtDur(c.Metrics.ReportInterval))
	}
	oneOf(p, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(p, "log.format", c.Log.Format, LogAuto, LogJSON, LogConsole)
}

// compiled is the rules of every configured shop and of all others.
type compiled struct {
	shops    map[string]*detectors.Rules
	fallback *detectors.Rules
}

// compile builds the shops' rules, reporting every problem with service
// hours, time zones, platforms and reply SLAs to p. Rules are nil where
// something they depend on is invalid.
func (c *Config) compile(p *problems) compiled {
	top := c.topRules(p)
	out := compiled{shops: make(map[string]*detectors.Rules, len(c.Shops)), fallback: top}
	ids := make([]string, 0, len(c.Shops))
	for id := range c.Shops {
		ids = append(ids, id)
	}
	sort.Strings(ids) // stable message order
	for _, id := range ids {
		out.shops[id] = c.shopRules(p, id, c.Shops[id], top)
	}
	return out
}

func (c *Config) topRules(p *problems) *detectors.Rules {
	loc := location(p, "timezone", c.Timezone)
	ranges := parseRanges(p, "service_hours", c.ServiceHours, true)
	exc, excOK := parseExceptions(p, "service_exceptions", c.ServiceExceptions)
	sla, slaOK := checkSLA(p, "reply_sla", c.ReplySLA, slaKeys{true, true, true, true})
	if loc == nil || ranges == nil || !excOK || !slaOK {
		return nil
	}
	sched, err := hours.New(loc, ranges, exc)
	if err != nil {
		p.add("service_hours", "%v", err)
		return nil
	}
	r := rulesOf(c.Platform, sched, sla)
	r.Seats = seatRules(c.Seats)
	return r
}

// seatKeys says which seats keys to check: a shop checks only those it sets.
type seatKeys struct{ idle, away, uncovered, inferred, offline bool }

func checkSeats(p *problems, prefix string, s Seats, k seatKeys) bool {
	n := len(*p)
	check := func(on bool, key string, d time.Duration) {
		if on {
			atLeast(p, prefix+"."+key, d, time.Second)
		}
	}
	check(k.idle, "idle_after", s.IdleAfter)
	check(k.away, "away_after", s.AwayAfter)
	check(k.uncovered, "uncovered_after", s.UncoveredAfter)
	check(k.inferred, "uncovered_after_inferred", s.UncoveredAfterInferred)
	check(k.offline, "inferred_offline_after", s.InferredOfflineAfter)
	// An inferred seat must stay working long enough to be found idle.
	if (k.idle || k.offline) && s.IdleAfter >= time.Second && s.InferredOfflineAfter >= time.Second &&
		s.InferredOfflineAfter <= s.IdleAfter {
		p.add(prefix+".inferred_offline_after", "%s is not longer than idle_after %s",
			fmtDur(s.InferredOfflineAfter), fmtDur(s.IdleAfter))
	}
	return len(*p) == n
}

// mergeSeats applies a shop's seats keys over the inherited ones.
func mergeSeats(s Seats, o ShopSeats) (Seats, seatKeys) {
	set := func(dst *time.Duration, v *time.Duration) bool {
		if v != nil {
			*dst = *v
		}
		return v != nil
	}
	var k seatKeys
	k.idle = set(&s.IdleAfter, o.IdleAfter)
	k.away = set(&s.AwayAfter, o.AwayAfter)
	k.uncovered = set(&s.UncoveredAfter, o.UncoveredAfter)
	k.inferred = set(&s.UncoveredAfterInferred, o.UncoveredAfterInferred)
	k.offline = set(&s.InferredOfflineAfter, o.InferredOfflineAfter)
	return s, k
}

func seatRules(s Seats) detectors.SeatRules {
	return detectors.SeatRules{IdleAfter: s.IdleAfter, AwayAfter: s.AwayAfter, UncoveredAfter: s.UncoveredAfter,
		UncoveredAfterInferred: s.UncoveredAfterInferred, InferredOfflineAfter: s.InferredOfflineAfter}
}

func (c *Config) shopRules(p *problems, id string, o ShopOverride, top *detectors.Rules) *detectors.Rules {
	prefix := "shops." + id
	ok := true
	if id == "" || len(id) > maxShopID {
		p.add(prefix, "a shop id must have 1 to %d characters", maxShopID)
		ok = false
	}

	platform := c.Platform
	if o.Platform != "" {
		platform = o.Platform
		ok = oneOf(p, prefix+".platform", o.Platform, Platforms...) && ok
	}

	var loc *time.Location
	switch {
	case o.Timezone != "":
		loc = location(p, prefix+".timezone", o.Timezone)
	case top != nil:
		loc = top.Hours.Loc
	}

	var ranges []hours.Range
	switch {
	case o.ServiceHours != nil:
		ranges = parseRanges(p, prefix+".service_hours", o.ServiceHours, true)
	case PlatformHours[o.Platform] != nil:
		ranges = parseRanges(p, prefix+".service_hours", PlatformHours[o.Platform], true)
	default:
		ranges = parseRanges(nil, "", c.ServiceHours, true)
	}

	// Shop exceptions add to the top-level ones, winning on the same date.
	exc, excOK := parseExceptions(nil, "", c.ServiceExceptions)
	own, ownOK := parseExceptions(p, prefix+".service_exceptions", o.ServiceExceptions)
	for d, rs := range own {
		if exc == nil {
			exc = map[string][]hours.Range{}
		}
		exc[d] = rs
	}

	sla := c.ReplySLA
	if o.ReplySLA.Thresholds != nil {
		sla.Thresholds = o.ReplySLA.Thresholds
	}
	if o.ReplySLA.WarnBefore != nil {
		sla.WarnBefore = *o.ReplySLA.WarnBefore
	}
	if o.ReplySLA.OutsideHours != "" {
		sla.OutsideHours = o.ReplySLA.OutsideHours
	}
	if o.ReplySLA.Target != nil {
		sla.Target = *o.ReplySLA.Target
	}
	// Inherited keys were checked at the top level; check what the shop sets
	// and how it combines with what it inherits.
	mergedSLA, slaOK := checkSLA(p, prefix+".reply_sla", sla, slaKeys{
		thresholds: o.ReplySLA.Thresholds != nil,
		warnBefore: o.ReplySLA.WarnBefore != nil || o.ReplySLA.Thresholds != nil,
		outside:    o.ReplySLA.OutsideHours != "",
		target:     o.ReplySLA.Target != nil,
	})

	seats, keys := mergeSeats(c.Seats, o.Seats)
	seatsOK := checkSeats(p, prefix+".seats", seats, keys)

	if !ok || loc == nil || ranges == nil || !excOK || !ownOK || !slaOK || !seatsOK || top == nil {
		return nil
	}
	sched, err := hours.New(loc, ranges, exc)
	if err != nil {
		p.add(prefix+".service_hours", "%v", err)
		return nil
	}
	r := rulesOf(platform, sched, mergedSLA)
	r.Seats = seatRules(seats)
	return r
}

func rulesOf(platform string, sched *hours.Schedule, sla ReplySLA) *detectors.Rules {
	return &detectors.Rules{
		Platform:    platform,
		Hours:       sched,
		Thresholds:  slices.Clone(sla.Thresholds),
		WarnBefore:  sla.WarnBefore,
		StartAtOpen: sla.OutsideHours == OutsideStartAtOpen,
		Target:      sla.Target,
	}
}

// slaKeys says which reply_sla keys to check: a shop checks only the keys
// it sets, and warn_before whenever it may no longer fit the thresholds.
type slaKeys struct{ thresholds, warnBefore, outside, target bool }

// checkSLA checks reply rules; ok is false when they cannot be used.
func checkSLA(p *problems, prefix string, sla ReplySLA, keys slaKeys) (ReplySLA, bool) {
	ok := true
	if keys.thresholds {
		if len(sla.Thresholds) == 0 {
			p.add(prefix+".thresholds", "at least one threshold is required")
			ok = false
		}
		for i, t := range sla.Thresholds {
			if t <= 0 {
				p.add(fmt.Sprintf("%s.thresholds[%d]", prefix, i), "%s is not positive", fmtDur(t))
				ok = false
			}
		}
		for i := 1; i < len(sla.Thresholds) && ok; i++ {
			if sla.Thresholds[i] <= sla.Thresholds[i-1] {
				p.add(prefix+".thresholds", "must be ascending (%s follows %s)", fmtDur(sla.Thresholds[i]), fmtDur(sla.Thresholds[i-1]))
				ok = false
			}
		}
	}
	thresholdsOK := ok
	if keys.target && (sla.Target < 0 || sla.Target > 1) {
		p.add(prefix+".target", "%v is not between 0 and 1", sla.Target)
		ok = false
	}
	if keys.outside && !oneOf(p, prefix+".outside_hours", sla.OutsideHours, OutsideIgnore, OutsideStartAtOpen) {
		ok = false
	}
	switch {
	case !keys.warnBefore:
	case sla.WarnBefore < 0:
		p.add(prefix+".warn_before", "must not be negative")
		ok = false
	case thresholdsOK && len(sla.Thresholds) > 0 && sla.WarnBefore >= sla.Thresholds[0]:
		p.add(prefix+".warn_before", "%s is not shorter than the first threshold %s", fmtDur(sla.WarnBefore), fmtDur(sla.Thresholds[0]))
		ok = false
	}
	return sla, ok
}

// parseRanges parses service hours; nil p parses silently (values already
// reported elsewhere). It returns nil when any range is bad.
func parseRanges(p *problems, path string, trs []TimeRange, required bool) []hours.Range {
	if p == nil {
		p = &problems{}
	}
	before := len(*p)
	if required && len(trs) == 0 {
		p.add(path, "at least one range is required (close single days with service_exceptions)")
		return nil
	}
	out := make([]hours.Range, 0, len(trs))
	for i, tr := range trs {
		r, err := hours.ParseRange(tr.Start, tr.End)
		if err != nil {
			at := fmt.Sprintf("%s[%d]", path, i)
			msg := err.Error()
			if rest, found := strings.CutPrefix(msg, "start: "); found {
				at, msg = at+".start", rest
			} else if rest, found := strings.CutPrefix(msg, "end: "); found {
				at, msg = at+".end", rest
			} else if overnight(tr) {
				msg += fmt.Sprintf(`; a window past midnight is two ranges: {start: "%s", end: "24:00"}, {start: "00:00", end: "%s"}`, tr.Start, tr.End)
			}
			p.add(at, "%s", msg)
			continue
		}
		out = append(out, r)
	}
	if len(*p) > before {
		return nil
	}
	// hours.New also rejects overlaps, but checking here names the list.
	if _, err := hours.New(time.UTC, out, nil); err != nil {
		p.add(path, "%v", err)
		return nil
	}
	return out
}

// overnight reports whether a range that ends before it starts reads as a
// night shift (from the afternoon or evening into the morning) rather than
// a slip of the keyboard.
func overnight(tr TimeRange) bool {
	return tr.Start >= "12:00" && tr.End <= "12:00" && tr.End != "00:00"
}

// parseExceptions parses dated exceptions; ok is false when any is bad.
func parseExceptions(p *problems, path string, excs []Exception) (map[string][]hours.Range, bool) {
	if p == nil {
		p = &problems{}
	}
	before := len(*p)
	out := make(map[string][]hours.Range, len(excs))
	seen := map[string]int{}
	for i, e := range excs {
		at := fmt.Sprintf("%s[%d]", path, i)
		if _, err := time.Parse(time.DateOnly, e.Date); err != nil {
			p.add(at+".date", "%q is not a date YYYY-MM-DD", e.Date)
			continue
		}
		if j, dup := seen[e.Date]; dup {
			p.add(at+".date", "%s is already listed at %s[%d]", e.Date, path, j)
			continue
		}
		seen[e.Date] = i
		rs := parseRanges(p, at+".hours", e.Hours, false)
		if rs == nil {
			continue
		}
		out[e.Date] = rs
	}
	return out, len(*p) == before
}

// locations caches loaded time zones: loading one reads the zone database.
var locations sync.Map // string -> *time.Location

// location loads a time zone, reporting a bad one to p.
func location(p *problems, path, name string) *time.Location {
	if name == "" {
		p.add(path, "is required (an IANA name such as Asia/Shanghai)")
		return nil
	}
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		p.add(path, "unknown time zone %q", name)
		return nil
	}
	locations.Store(name, l)
	return l
}

// Rules returns the function the detectors use to find a shop's rules. The
// rules are built once, here; the function only looks them up, is safe for
// concurrent use, and gives shops without overrides the top-level rules.
// The returned Rules are shared and must not be modified. Rules panics on a
// configuration that does not pass Validate (Load and Parse never return
// one).
func (c *Config) Rules() detectors.RulesFunc {
	var p problems
	comp := c.compile(&p)
	if len(p) > 0 {
		panic(fmt.Sprintf("config: Rules on an invalid configuration: %v", &ValidationError{Errors: p}))
	}
	shops, fallback := comp.shops, comp.fallback
	return func(shop string) *detectors.Rules {
		if r, ok := shops[shop]; ok {
			return r
		}
		return fallback
	}
}

// Location is the time zone of a shop: its own, else the top-level one.
// An invalid zone gives UTC (Validate reports it).
func (c *Config) Location(shop string) *time.Location {
	name := c.Timezone
	if o, ok := c.Shops[shop]; ok && o.Timezone != "" {
		name = o.Timezone
	}
	var p problems
	if l := location(&p, "", name); l != nil {
		return l
	}
	return time.UTC
}

// PlatformOf is the platform of a shop: its own, else the top-level one.
func (c *Config) PlatformOf(shop string) string {
	if o, ok := c.Shops[shop]; ok && o.Platform != "" {
		return o.Platform
	}
	return c.Platform
}
