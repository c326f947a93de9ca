// Package config owns replywatch's configuration file: its keys and their
// defaults, strict YAML decoding (an unknown key is an error), environment
// overrides, validation that reports every problem at once with its field
// path, and the per-shop reply rules derived from it. It does not connect to
// anything: Kafka, Redis and HTTP settings are only read and checked here.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	// Shop time zones must resolve on hosts and images without a zoneinfo
	// database, so the database is compiled in.
	_ "time/tzdata"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file. Durations are written as "3m",
// "60s", "100ms".
type Config struct {
	Kafka    Kafka  `yaml:"kafka"`
	Redis    Redis  `yaml:"redis"`
	HTTP     HTTP   `yaml:"http"`
	Timezone string `yaml:"timezone"`
	// Platform is the platform of shops that do not name their own.
	Platform     string      `yaml:"platform"`
	ServiceHours []TimeRange `yaml:"service_hours"`
	// ServiceExceptions replace the service hours on given dates (holidays);
	// they apply to every shop.
	ServiceExceptions []Exception `yaml:"service_exceptions"`
	ReplySLA          ReplySLA    `yaml:"reply_sla"`
	Clock             Clock       `yaml:"clock"`
	Alerts            Alerts      `yaml:"alerts"`
	Metrics           Metrics     `yaml:"metrics"`
	Seats             Seats       `yaml:"seats"`
	// Text configures the text rules (config/text.go).
	Text Text `yaml:"text"`
	// EffectiveReply configures the effective reply rate (config/effective.go).
	EffectiveReply EffectiveReply `yaml:"effective_reply"`
	Orders         Orders         `yaml:"orders"`
	Log            Log            `yaml:"log"`
	Notify         Notify         `yaml:"notify"`
	// Agents is the directory of people alerts mention, by agent id or
	// "shop_id/agent_id".
	Agents map[string]Agent `yaml:"agents"`
	API    API              `yaml:"api"`
	// Shops holds per-shop overrides, by shop_id.
	Shops map[string]ShopOverride `yaml:"shops"`
}

// Kafka says where events are read from and alerts written to.
type Kafka struct {
	Brokers  []string `yaml:"brokers"`
	GroupID  string   `yaml:"group_id"`
	ClientID string   `yaml:"client_id"`
	// StartOffset is where a new consumer group starts: OffsetEarliest keeps
	// today's figures whole.
	StartOffset string `yaml:"start_offset"`
	Topics      Topics `yaml:"topics"`
	// BatchSize is the most records processed as one batch (one Redis round
	// trip and one commit).
	BatchSize int `yaml:"batch_size"`
	// BatchWait bounds how long a batch waits for more records: while a
	// partition is behind, to fill it; once caught up, for the next
	// records to arrive, so that one Redis step writes this batch and
	// reads what the next one needs (it delays the batch's alerts by at
	// most this much).
	BatchWait        time.Duration `yaml:"batch_wait"`
	SessionTimeout   time.Duration `yaml:"session_timeout"`
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// TLS and SASL secure the connections to the brokers (config/transport.go).
	TLS  TLS  `yaml:"tls"`
	SASL SASL `yaml:"sasl"`
}

// Topics names the Kafka topics.
type Topics struct {
	Chat     string `yaml:"chat"`
	Orders   string `yaml:"orders"`
	Presence string `yaml:"presence"`
	Alerts   string `yaml:"alerts"`
}

// Redis says where state is kept.
type Redis struct {
	// URL is redis://[user:password@]host:port/db (rediss:// for TLS). In
	// sentinel and cluster mode its host is not used, but its credentials,
	// database and scheme still are.
	URL  string `yaml:"url"`
	Mode string `yaml:"mode"`
	// Addrs are the sentinel or cluster seed addresses.
	Addrs      []string `yaml:"addrs"`
	MasterName string   `yaml:"master_name"`
	// Prefix starts every key replywatch writes.
	Prefix string `yaml:"prefix"`
	// StateTTL is how long an entity's state lives after its last event.
	StateTTL time.Duration `yaml:"state_ttl"`
	// CacheEntries bounds the conversations and seats each owned partition
	// keeps decoded in memory. Beyond it they are read from Redis again:
	// memory stays flat however many conversations there are.
	CacheEntries int `yaml:"cache_entries"`
	// Username and Password (or PasswordFile) are an ACL user's, when not
	// in the URL; TLS is the URL's rediss:// with settings
	// (config/transport.go).
	Username     string `yaml:"username,omitempty"`
	Password     Secret `yaml:"password,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
	TLS          TLS    `yaml:"tls"`
}

// HTTP is the metrics and health endpoint.
type HTTP struct {
	Addr string `yaml:"addr"`
}

// TimeRange is a daily service range, "HH:MM" to "HH:MM"; "24:00" is a
// valid end.
type TimeRange struct {
	Start string `yaml:"start"`
	End   string `yaml:"end"`
}

// Exception replaces the service hours on one date ("2006-01-02"); no hours
// closes the day.
type Exception struct {
	Date  string      `yaml:"date"`
	Hours []TimeRange `yaml:"hours"`
}

// ReplySLA are the reply-time rules.
type ReplySLA struct {
	// Thresholds are the reply SLAs, ascending.
	Thresholds []time.Duration `yaml:"thresholds"`
	// WarnBefore is how long before each threshold a warning goes out.
	WarnBefore time.Duration `yaml:"warn_before"`
	// OutsideHours is what a buyer message outside service hours does:
	// OutsideIgnore or OutsideStartAtOpen.
	OutsideHours string `yaml:"outside_hours"`
	// Target is the reply rate the shop aims for (0 to 1), shown beside the
	// live rate on dashboards and used by the business alert rules.
	Target float64 `yaml:"target"`
}

// Clock tunes the partition clocks that fire timers.
type Clock struct {
	// Grace is how far behind the wall clock a caught-up partition's clock runs.
	Grace time.Duration `yaml:"grace"`
	// Allowance is how far behind the newest event time a lagging partition's clock runs.
	Allowance time.Duration `yaml:"allowance"`
	// Tick is how often idle partitions advance their clock.
	Tick time.Duration `yaml:"tick"`
	// MaxEventAge is how far before its record's time an event's ts may be:
	// older events are dead-lettered as stale_ts.
	MaxEventAge time.Duration `yaml:"max_event_age"`
	// AllowedLateness is how late, after the latest event time of its
	// conversation, an event is still applied in its ts place: the
	// conversation keeps its events that long and derives itself again from
	// them when a late one arrives (DESIGN.md §5).
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
}

// Alerts configures alert records.
type Alerts struct {
	// Language of alert summaries: "zh" or "en".
	Language string `yaml:"language"`
	// Lease is how long an alert may stay undelivered before it is re-sent.
	Lease time.Duration `yaml:"lease"`
}

// Metrics configures the exported figures.
type Metrics struct {
	PerAgent bool `yaml:"per_agent"`
	// MaxAgents caps the per-agent series of one shop.
	MaxAgents int `yaml:"max_agents"`
	// ReportInterval is how often the reporter recomputes the shop figures.
	ReportInterval time.Duration `yaml:"report_interval"`
	// ReporterLease is how long a replica holds the right to export figures
	// without renewing it.
	ReporterLease time.Duration `yaml:"reporter_lease"`
}

// Log configures logging.
// Seats is how agents' seats are watched (DESIGN.md §2).
type Seats struct {
	// IdleAfter is how long a working agent with buyers waiting on them may
	// go without a human message before idle_seat fires.
	IdleAfter time.Duration `yaml:"idle_after"`
	// AwayAfter is how long an agent may be away before seat_away fires.
	AwayAfter time.Duration `yaml:"away_after"`
	// UncoveredAfter is how long a shop may have no working seat in service
	// hours before shop_uncovered fires.
	UncoveredAfter time.Duration `yaml:"uncovered_after"`
	// UncoveredAfterInferred is the same for shops that send no presence:
	// buyers waiting and no human message from anyone for this long.
	UncoveredAfterInferred time.Duration `yaml:"uncovered_after_inferred"`
	// InferredOfflineAfter is when an agent of such a shop stops counting
	// as working after their last human message.
	InferredOfflineAfter time.Duration `yaml:"inferred_offline_after"`
}

// ShopSeats is a shop's partial seats block.
type ShopSeats struct {
	IdleAfter              *time.Duration `yaml:"idle_after,omitempty"`
	AwayAfter              *time.Duration `yaml:"away_after,omitempty"`
	UncoveredAfter         *time.Duration `yaml:"uncovered_after,omitempty"`
	UncoveredAfterInferred *time.Duration `yaml:"uncovered_after_inferred,omitempty"`
	InferredOfflineAfter   *time.Duration `yaml:"inferred_offline_after,omitempty"`
}

type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// ShopOverride changes the rules of one shop. Unset keys inherit the
// top-level ones.
type ShopOverride struct {
	// Platform also selects the platform's service window when
	// ServiceHours is not set (see PlatformHours).
	Platform     string      `yaml:"platform,omitempty"`
	Timezone     string      `yaml:"timezone,omitempty"`
	ServiceHours []TimeRange `yaml:"service_hours,omitempty"`
	// ServiceExceptions add to the top-level ones; on the same date the
	// shop's entry wins.
	ServiceExceptions []Exception `yaml:"service_exceptions,omitempty"`
	// ReplySLA replaces only the keys it sets.
	ReplySLA ShopReplySLA `yaml:"reply_sla,omitempty"`
	// Seats replaces only the keys it sets.
	Seats ShopSeats `yaml:"seats,omitempty"`
	// Text adds lexicons and allow-listed phrases to the top-level ones.
	Text ShopText `yaml:"text,omitempty"`
	// EffectiveReply replaces only the keys it sets.
	EffectiveReply ShopEffectiveReply `yaml:"effective_reply,omitempty"`
	// Orders replaces only the keys it sets.
	Orders ShopOrders `yaml:"orders,omitempty"`
}

// ShopReplySLA is a shop's partial reply_sla.
type ShopReplySLA struct {
	Thresholds   []time.Duration `yaml:"thresholds,omitempty"`
	WarnBefore   *time.Duration  `yaml:"warn_before,omitempty"`
	OutsideHours string          `yaml:"outside_hours,omitempty"`
	Target       *float64        `yaml:"target,omitempty"`
}

// Values of the enumerated keys.
const (
	OffsetEarliest = "earliest"
	OffsetLatest   = "latest"

	RedisStandalone = "standalone"
	RedisSentinel   = "sentinel"
	RedisCluster    = "cluster"

	OutsideIgnore      = "ignore"
	OutsideStartAtOpen = "start_at_open"

	LogAuto    = "auto"
	LogJSON    = "json"
	LogConsole = "console"
)

// Environment variables that override the file.
const (
	EnvKafkaBrokers = "REPLYWATCH_KAFKA_BROKERS"
	EnvRedisURL     = "REPLYWATCH_REDIS_URL"
	EnvHTTPAddr     = "REPLYWATCH_HTTP_ADDR"
)

// Default returns the configuration an empty file gives.
func Default() *Config {
	return &Config{
		Kafka: Kafka{
			Brokers:          []string{"127.0.0.1:9092"},
			GroupID:          "replywatch",
			ClientID:         "replywatch",
			StartOffset:      OffsetEarliest,
			Topics:           Topics{Chat: "cs.chat", Orders: "cs.orders", Presence: "cs.presence", Alerts: "cs.alerts"},
			BatchSize:        500,
			BatchWait:        20 * time.Millisecond,
			SessionTimeout:   10 * time.Second,
			RebalanceTimeout: 10 * time.Second,
		},
		Redis: Redis{
			URL:          "redis://127.0.0.1:6379/0",
			Mode:         RedisStandalone,
			Addrs:        []string{},
			Prefix:       "rw",
			StateTTL:     72 * time.Hour,
			CacheEntries: 1024,
		},
		HTTP:              HTTP{Addr: ":8080"},
		Timezone:          "Asia/Shanghai",
		Platform:          "pdd",
		ServiceHours:      []TimeRange{{Start: "08:00", End: "23:00"}},
		ServiceExceptions: []Exception{},
		ReplySLA: ReplySLA{
			Thresholds:   []time.Duration{3 * time.Minute, 5 * time.Minute},
			WarnBefore:   60 * time.Second,
			OutsideHours: OutsideIgnore,
			Target:       0.9,
		},
		Clock: Clock{Grace: 2 * time.Second, Allowance: 2 * time.Second, Tick: 100 * time.Millisecond, AllowedLateness: time.Hour,
			MaxEventAge: 7 * 24 * time.Hour},
		Alerts:  Alerts{Language: "zh", Lease: 30 * time.Second},
		Metrics: Metrics{MaxAgents: 500, ReportInterval: 5 * time.Second, ReporterLease: 15 * time.Second},
		Seats: Seats{IdleAfter: 3 * time.Minute, AwayAfter: 10 * time.Minute, UncoveredAfter: 60 * time.Second,
			UncoveredAfterInferred: 5 * time.Minute, InferredOfflineAfter: 30 * time.Minute},
		Orders: Orders{ShipWithin: 48 * time.Hour, WarnBefore: 4 * time.Hour, RespondWarnBefore: 2 * time.Hour,
			ConversionWindow: 24 * time.Hour, BadReviewAt: 2},
		Log:    Log{Level: "info", Format: LogAuto},
		Notify: defaultNotify(),
		Agents: map[string]Agent{},
		API:    API{Tokens: []Token{}},
		Shops:  map[string]ShopOverride{},
		Text:   defaultText(),

		EffectiveReply: defaultEffectiveReply(),
	}
}

// Load reads the file at path, applies the environment overrides and
// validates the result. Problems in the file come back as a
// *ValidationError (wrapped) listing all of them, each with its line.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := parse(data, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("loading config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a configuration over the defaults and validates it. It
// reads no environment.
func Parse(data []byte) (*Config, error) {
	return parse(data, nil)
}

// parse decodes and validates data, pointing every problem at its line.
func parse(data []byte, getenv func(string) string) (*Config, error) {
	c, doc, err := decode(data, getenv)
	if err == nil {
		err = c.Validate()
	}
	if err == nil {
		return c, nil
	}
	var verr *ValidationError
	if errors.As(err, &verr) && doc != nil {
		verr.Errors = withLines(verr.Errors, doc, envKeys(getenv))
	}
	return nil, err
}

// envKeys maps the keys the environment sets to the variables that set them.
func envKeys(getenv func(string) string) map[string]string {
	out := map[string]string{}
	if getenv == nil {
		return out
	}
	for key, v := range map[string]string{"kafka.brokers": EnvKafkaBrokers, "redis.url": EnvRedisURL, "http.addr": EnvHTTPAddr} {
		if strings.TrimSpace(getenv(v)) != "" {
			out[key] = v
		}
	}
	return out
}

// decode reads data over the defaults and applies the environment when
// getenv is not nil; doc is the file's node tree (nil when it is not YAML).
// Key and value-shape problems come back as a *ValidationError together
// with whatever Validate finds in the rest of the file, so one run shows
// every problem.
func decode(data []byte, getenv func(string) string) (c *Config, doc *yaml.Node, err error) {
	c = Default()
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	doc = &yaml.Node{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(doc); err != nil {
		if errors.Is(err, io.EOF) {
			c.ApplyEnv(getenv)
			return c, doc, nil // empty file or only comments
		}
		return nil, nil, &ValidationError{Errors: []string{err.Error()}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, nil, &ValidationError{Errors: []string{err.Error()}}
		}
		return nil, nil, &ValidationError{Errors: []string{fmt.Sprintf("line %d: a config file holds one YAML document, found another", extra.Line)}}
	}

	var shape problems
	checkShape(doc, configType, "", &shape)

	// The shape check mirrors yaml.v3's rules, so its errors are yaml.v3's
	// with paths; the strict decode still runs so that nothing it would
	// reject can slip through.
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	err = strict.Decode(c)
	var typeErr *yaml.TypeError
	switch {
	case err == nil:
	case errors.As(err, &typeErr):
		if len(shape) == 0 {
			shape = append(shape, typeErr.Errors...)
		}
	default:
		return nil, nil, &ValidationError{Errors: []string{err.Error()}}
	}
	c.fillNotify()
	c.ApplyEnv(getenv)
	if len(shape) == 0 {
		return c, doc, nil
	}
	// Report what else is wrong, leaving out findings about the values the
	// shape check already rejected (they hold defaults or zeros now).
	all := append(problems(nil), shape...)
	if verr := (*ValidationError)(nil); errors.As(c.Validate(), &verr) {
		for _, m := range verr.Errors {
			if !shape.covers(m) {
				all = append(all, m)
			}
		}
	}
	return nil, doc, &ValidationError{Errors: all}
}

// ApplyEnv applies the environment overrides; an empty variable changes
// nothing.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if v := strings.TrimSpace(getenv(EnvKafkaBrokers)); v != "" {
		c.Kafka.Brokers = splitList(v)
	}
	if v := strings.TrimSpace(getenv(EnvRedisURL)); v != "" {
		c.Redis.URL = v
	}
	if v := strings.TrimSpace(getenv(EnvHTTPAddr)); v != "" {
		c.HTTP.Addr = v
	}
}

// splitList splits a comma list, dropping blanks.
func splitList(v string) []string {
	out := []string{}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// YAML is the effective configuration as YAML, with secrets masked: what
// "replywatch validate" prints. Parse accepts it back.
func (c *Config) YAML() ([]byte, error) {
	masked := *c
	masked.Redis.URL = MaskURL(c.Redis.URL)
	masked.Notify = maskedNotify(c.Notify)
	masked.maskTransport()
	n, err := toNode(&masked)
	if err != nil {
		return nil, fmt.Errorf("writing config as YAML: %w", err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("writing config as YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("writing config as YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// MaskURL replaces the password of a URL, and any query parameter that
// looks like one, with "xxxxx", so the URL can be printed or logged.
func MaskURL(raw string) string {
	const mask = "xxxxx"
	u, err := url.Parse(raw)
	if err != nil {
		// Unparseable: hide everything between the scheme and the host.
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			start := strings.Index(raw, "://")
			if start < 0 || start > i {
				return mask + raw[i:]
			}
			return raw[:start+3] + mask + raw[i:]
		}
		return raw
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), mask)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Set(k, mask)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}
