package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/detectors"
	"github.com/replywatch/replywatch/event"
	"go.yaml.in/yaml/v3"
)

// badCases maps every testdata/*.bad.yml to the exact errors it must give,
// in order.
var badCases = []struct {
	file string
	errs []string
}{
	{"text.bad.yml", []string{
		`text.lexicons[0]: lexicon testdata/lexicons/bad_category.yml:2: unknown category "rude" (want one of abuse, threat, sarcasm, perfunctory, off_platform, complaint_intent, allow) (line 2)`,
		`text.lexicons[0]: lexicon testdata/lexicons/bad_category.yml:3: term "。。" has no letters or digits, it would match nothing (line 2)`,
		`text.lexicons[1]: reading lexicon: open testdata/lexicons/missing.yml: no such file or directory (line 2)`,
		`text.allow[0]: "。。" has no letters or digits, it would match nothing (line 3)`,
		`text.perfunctory_alert_after: must not be negative (line 4)`,
		`shops.s1.text.lexicons[0]: lexicon testdata/lexicons/not_a_list.yml:1: abuse must be a list of terms (line 8)`,
		`shops.s1.text.perfunctory_alert_after: must not be negative (line 9)`,
	}},
	{"effective_reply.bad.yml", []string{
		`effective_reply.within: 0s is too short, the least is 1s (line 2)`,
		`effective_reply.alert_below: 1.2 is not between 0 and 1 (line 3)`,
		`shops.s1.effective_reply.alert_below: -0.5 is not between 0 and 1 (line 6)`,
	}},
	{"api_tokens.bad.yml", []string{
		`api.tokens[0].sha256: is not 64 lowercase hex digits (the SHA-256 of the token, not the token) (line 3)`,
		`api.tokens[0].shops: a supervisor token needs at least one shop (line 3)`,
		`api.tokens[1].name: "wall" is already the name of api.tokens[0] (line 4)`,
		`api.tokens[1].sha256: is required (the lowercase hex SHA-256 of the token) (line 4)`,
		`api.tokens[1].agent: an agent token needs its agent id (line 4)`,
		`api.tokens[2].name: is required (line 5)`,
		`api.tokens[2].role: "admin" is not one of supervisor, agent, alertmanager (line 5)`,
		`api.tokens[4].sha256: is the same as token "b"'s (line 7)`,
		`api.tokens[4].shops: only supervisor tokens list shops (line 7)`,
		`api.tokens[5].shops[1]: "" is not a shop id (1 to 128 characters) (line 8)`,
		`api.tokens[5].agent: only agent tokens name an agent (line 8)`,
	}},
	{"seats.bad.yml", []string{
		`seats.away_after: 0s is too short, the least is 1s (line 2)`,
		`seats.uncovered_after: -1s is too short, the least is 1s (line 3)`,
		`seats.inferred_offline_after: 5m is not longer than idle_after 10m (line 5)`,
		`shops.s1.seats.uncovered_after_inferred: 500ms is too short, the least is 1s (line 8)`,
		`shops.s1.seats.inferred_offline_after: 10m is not longer than idle_after 10m (line 8)`,
	}},
	{"orders.bad.yml", []string{
		`orders.ship_within: 30s is too short, the least is 1m (line 2)`,
		`orders.respond_warn_before: 20m is not longer than the critical lead 30m (line 4)`,
		`orders.conversion_window: 0s is too short, the least is 1m (line 5)`,
		`orders.bad_review_at: 7 is not between 0 (off) and 5 (line 6)`,
		`shops.s1.orders.warn_before: 12h is not shorter than the shipping limit 12h (line 11)`,
		`shops.s2.orders.ship_within: is not used with pdd_flash: true (24h); set one of them (line 15)`,
		`shops.s3.orders.warn_before: 30h is not shorter than the shipping limit 24h (line 19)`,
		`shops.s3.orders.bad_review_at: -1 is not between 0 (off) and 5 (line 20)`,
		// s4's warn_before is not checked against the inherited limit, which
		// is wrong and reported once, at the top.
	}},
	{"target.bad.yml", []string{
		`reply_sla.target: 1.5 is not between 0 and 1 (line 2)`,
		`shops.s1.reply_sla.target: -0.1 is not between 0 and 1 (line 5)`,
	}},
	{"unknown_key.bad.yml", []string{
		`kafka.group: unknown key, did you mean group_id? (line 3)`,
	}},
	{"bad_duration.bad.yml", []string{
		`reply_sla.thresholds[1]: "5x" is not a duration (line 2)`,
	}},
	{"unknown_timezone.bad.yml", []string{
		`timezone: unknown time zone "Mars/Base" (line 1)`,
	}},
	{"descending_thresholds.bad.yml", []string{
		`reply_sla.thresholds: must be ascending (3m follows 5m) (line 2)`,
	}},
	{"warn_before_too_long.bad.yml", []string{
		`reply_sla.warn_before: 4m is not shorter than the first threshold 3m (line 3)`,
		`reply_sla.priority_warn_before: must not be negative (line 4)`,
	}},
	{"bad_range.bad.yml", []string{
		`service_hours[0].end: "25:00" is not a time of day between 00:00 and 24:00 (line 2)`,
	}},
	{"lateness.bad.yml", []string{
		`clock.allowed_lateness: 500ms is too short, the least is 1s (line 2)`,
	}},
	{"overlapping_ranges.bad.yml", []string{
		`service_hours: ranges 08:00-13:30 and 13:00-23:00 overlap (line 1)`,
	}},
	{"start_at_2400.bad.yml", []string{
		`service_hours[0].start: "24:00": 24:00 is only valid as an end (line 2)`,
	}},
	{"bad_start_offset.bad.yml", []string{
		`kafka.start_offset: "newest" is not one of earliest, latest (line 2)`,
	}},
	{"bad_language.bad.yml", []string{
		`alerts.language: "fr" is not one of zh, en (line 2)`,
	}},
	{"bad_platform.bad.yml", []string{
		`platform: "amazon" is not one of pdd, taobao, tmall, jd, douyin, other (line 1)`,
	}},
	{"bad_shop_override.bad.yml", []string{
		`shops.s3.colour: unknown key (line 13)`,
		`shops.s1.platform: "jingdong" is not one of pdd, taobao, tmall, jd, douyin, other (line 3)`,
		`shops.s1.timezone: unknown time zone "Mars/Base" (line 4)`,
		`shops.s1.service_hours[0]: end 08:00 is not after start 09:00 (line 5)`,
		`shops.s1.reply_sla.outside_hours: "later" is not one of ignore, start_at_open (line 8)`,
		// The shop's 30s threshold no longer fits the inherited warn_before.
		`shops.s1.reply_sla.warn_before: 1m is not shorter than the first threshold 30s (line 6)`,
		`shops.s2.service_exceptions[0].date: "tomorrow" is not a date YYYY-MM-DD (line 10)`,
		`shops.s2.reply_sla.warn_before: 5m is not shorter than the first threshold 3m (line 11)`,
	}},
	{"several.bad.yml", []string{
		// Key and value-shape errors come first, then the rest of the file.
		`reply_sla.thresholds[1]: "5x" is not a duration (line 8)`,
		`log.colour: unknown key (line 12)`,
		`kafka.brokers: at least one broker is required (line 2)`,
		`kafka.batch_size: 0 is not between 1 and 10000 (line 3)`,
		`redis.addrs: at least one address is required in sentinel mode (line 4)`,
		`redis.master_name: is required in sentinel mode (line 4)`,
		`log.level: "verbose" is not one of debug, info, warn, error (line 11)`,
		`timezone: unknown time zone "Mars/Base" (line 6)`,
		`reply_sla.warn_before: 4m is not shorter than the first threshold 3m (line 9)`,
	}},
	{"syntax.bad.yml", []string{
		`yaml: line 1: did not find expected ',' or ']'`,
	}},
	{"wrong_shape.bad.yml", []string{
		`kafka.brokers: expected a list, got "127.0.0.1:9092" (line 2)`,
		`kafka.topics: expected a mapping, got a list (line 3)`,
		`http: expected a mapping, got ":8080" (line 4)`,
		`service_hours: expected a list, got a mapping (line 5)`,
	}},
	{"duplicate_key.bad.yml", []string{
		`timezone: set twice (lines 1 and 4)`,
	}},
	{"bad_numbers.bad.yml", []string{
		`kafka.batch_size: "lots" is not a whole number (line 2)`,
		`kafka.batch_wait: "20" is not a duration (give a unit: 20s, 20m) (line 3)`,
		`metrics.per_agent: "maybe" is not true or false (line 5)`,
		`metrics.max_agents: must not be negative (line 6)`,
	}},
	{"transport.bad.yml", []string{
		`kafka.tls: settings given but enabled is false (line 2)`,
		`kafka.sasl.mechanism: "gssapi" is not one of plain, scram-sha-256, scram-sha-512 (line 4)`,
		`kafka.sasl.username: is required with a mechanism (line 3)`,
		`kafka.sasl: set password or password_file, not both (line 3)`,
		`redis.tls: cert_file and key_file go together (line 9)`,
		`redis: set password or password_file, not both (line 7)`,
	}},
	{"redis_modes.bad.yml", []string{
		// The password is masked even in errors.
		`redis.url: "http://admin:xxxxx@redis:6379" is not a redis://, rediss:// or unix:// URL (line 2)`,
		`redis.master_name: is required in sentinel mode (line 1)`,
		`redis.addrs[0]: "sentinel-1" is not host:port (line 4)`,
		`redis.prefix: "rw{x}" must be non-empty, without braces or spaces (line 5)`,
		`redis.state_ttl: 1h is too short: a wait open for a day must outlive it, the least is 25h (line 6)`,
	}},
	{"bad_exceptions.bad.yml", []string{
		`service_exceptions[0].date: "2026-13-01" is not a date YYYY-MM-DD (line 2)`,
		`service_exceptions[2].date: 2026-10-01 is already listed at service_exceptions[1] (line 4)`,
		`service_exceptions[3].hours: ranges 10:00-16:00 and 15:00-18:00 overlap (line 5)`,
	}},
	{"empty_lists.bad.yml", []string{
		`service_hours: at least one range is required (close single days with service_exceptions) (line 1)`,
		`reply_sla.thresholds: at least one threshold is required (line 3)`,
		`shops.s1.service_hours: at least one range is required (close single days with service_exceptions) (line 5)`,
	}},
	{"topics.bad.yml", []string{
		`kafka.topics.orders: "cs.chat" is already the chat topic (line 2)`,
		`kafka.topics.presence: "cs presence" is not a Kafka topic name (letters, digits, '.', '_', '-') (line 2)`,
		`kafka.topics.alerts: "cs.chat.DLT" ends in .DLT, which is reserved for dead letters (line 2)`,
		`kafka.buyers_partitions: 0 is not between 1 and 10000 (line 3)`,
	}},
	{"timings.bad.yml", []string{
		`kafka.session_timeout: 100ms is too short, the least is 1s (line 2)`,
		`clock.grace: must not be negative (line 4)`,
		`clock.tick: 0s is too short, the least is 1ms (line 5)`,
		`clock.allowed_lateness: 25h is too long, the most is 24h: a conversation keeps its events that long (line 6)`,
		`clock.max_event_age: 2h is too short, the least is 24h (line 7)`,
		`metrics.reporter_lease: 10s must be longer than report_interval 10s (line 10)`,
	}},
	{"overnight.bad.yml", []string{
		`service_hours[0]: end 08:00 is not after start 23:00; a window past midnight is two ranges: {start: "23:00", end: "24:00"}, {start: "00:00", end: "08:00"} (line 2)`,
		`shops.night-shop.service_hours[0]: end 02:00 is not after start 18:30; a window past midnight is two ranges: {start: "18:30", end: "24:00"}, {start: "00:00", end: "02:00"} (line 5)`,
	}},
	{"near_miss.bad.yml", []string{
		// A near miss names the key meant; a shop id may hold dots.
		`kafka.topic: unknown key, did you mean topics? (line 3)`,
		`reply_sla.warn_befor: unknown key, did you mean warn_before? (line 6)`,
		`shops.jd.store-1.platfrom: unknown key, did you mean platform? (line 9)`,
		`shops.jd.store-1.reply_sla.warn_before: "90" is not a duration (give a unit: 90s, 90m) (line 10)`,
		`metric: unknown key, did you mean metrics? (line 12)`,
	}},
	{"notify.bad.yml", []string{
		`notify.group_id: "rw" is already kafka.group_id; the notifier needs a group of its own (line 4)`,
		`notify.max_age: 0s is too short, the least is 1s (line 5)`,
		`notify.receivers[0].dingtalk: secret or secret_file is required (line 7)`,
		`notify.receivers[1].name: "ding" is already the name of notify.receivers[0] (line 8)`,
		`notify.receivers[1].wecom.url: "ftp://x" is not an http:// or https:// URL (line 8)`,
		`notify.receivers[1].wecom: set key or key_file, not both (line 8)`,
		`notify.receivers[1].wecom.format: "html" is not one of markdown, text (line 8)`,
		`notify.receivers[2].name: "bad name" is not a receiver name (letters, digits, '.', '_', '-') (line 9)`,
		`notify.receivers[2].webhook.url: is required (line 9)`,
		`notify.receivers[3]: needs exactly one of wecom, dingtalk, feishu, webhook, alertmanager, log (has 2) (line 10)`,
		`notify.receivers[4].feishu.limits[0].messages: 0 is not at least 1 (line 11)`,
		`notify.route.receiver: "nowhere" is not the name of a receiver (line 13)`,
		`notify.route.match.colour: is not a field alerts are routed by (kind, severity, status, shop_id, platform, agent_id, buyer_id, threshold, audience) (line 14)`,
		`notify.route.match.kind: lists no values (line 14)`,
		`notify.route.mention: "everyone" is not one of auto, agent, supervisor, both, none (line 15)`,
		`notify.route.group_by[0]: "shop" is not one of kind, severity, status, shop_id, platform, agent_id, buyer_id, threshold, audience (line 16)`,
		`notify.route.routes[0].group_interval: 0s is too short, the least is 1ms (line 18)`,
		`agents.a1.supervisor: "lead" is not in agents (line 20)`,
		`agents.a1.mobile: "call me" is not a mobile number (digits, optionally with a leading +) (line 20)`,
		`agents.a2.name: is required (line 21)`,
	}},
	{"two_documents.bad.yml", []string{
		`line 2: a config file holds one YAML document, found another`,
	}},
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yml")
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, c := range badCases {
		covered[c.file] = true
		t.Run(c.file, func(t *testing.T) {
			cfg, err := Parse(readTestdata(t, c.file))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", cfg)
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
			}
			if !slices.Equal(verr.Errors, c.errs) {
				t.Errorf("errors:\n  %s\nwant:\n  %s", strings.Join(verr.Errors, "\n  "), strings.Join(c.errs, "\n  "))
			}
		})
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s has no entry in badCases", f)
		}
	}
}

// fullConfig is what testdata/full.good.yml says.
var fullConfig = &Config{
	Kafka: Kafka{
		Brokers:          []string{"kafka-1:9092", "kafka-2:9092"},
		GroupID:          "rw-prod",
		ClientID:         "rw-prod-1",
		StartOffset:      OffsetLatest,
		Topics:           Topics{Chat: "prod.chat", Orders: "prod.orders", Presence: "prod.presence", Alerts: "prod.alerts", Buyers: "prod.buyers"},
		BuyersPartitions: 24,
		BatchSize:        1000,
		BatchWait:        50 * time.Millisecond,
		SessionTimeout:   30 * time.Second,
		RebalanceTimeout: 45 * time.Second,
		TLS: TLS{Enabled: true, CAFile: "/etc/rw/kafka-ca.pem", CertFile: "/etc/rw/kafka.pem", KeyFile: "/etc/rw/kafka-key.pem",
			ServerName: "kafka.internal", InsecureSkipVerify: true},
		SASL: SASL{Mechanism: SASLScramSHA512, Username: "rw-prod", Password: "kafka-s3cret"},
	},
	Redis: Redis{
		URL:          "rediss://rw:s3cret@redis.internal:6380/2",
		Mode:         RedisSentinel,
		Addrs:        []string{"sentinel-1:26379", "sentinel-2:26379"},
		MasterName:   "rw-master",
		Prefix:       "rwp",
		StateTTL:     96 * time.Hour,
		CacheEntries: 2048,
		Username:     "rw-acl",
		PasswordFile: "/run/secrets/redis-password",
		TLS: TLS{Enabled: true, CAFile: "/etc/rw/redis-ca.pem", CertFile: "/etc/rw/redis.pem", KeyFile: "/etc/rw/redis-key.pem",
			ServerName: "redis.internal", InsecureSkipVerify: true},
	},
	HTTP: HTTP{Addr: "127.0.0.1:9100"},
	API: API{Tokens: []Token{
		{Name: "wall", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Role: RoleSupervisor, Shops: []string{"s1", "s2"}},
		{Name: "xiaowang", SHA256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752", Role: RoleAgent, Agent: "s1-a1", Shops: []string{}},
	}},
	Timezone:     "Asia/Hong_Kong",
	Platform:     "taobao",
	ServiceHours: []TimeRange{{"09:00", "12:00"}, {"13:00", "22:00"}},
	ServiceExceptions: []Exception{
		{Date: "2026-10-01", Hours: []TimeRange{}},
		{Date: "2026-10-02", Hours: []TimeRange{{"10:00", "16:00"}}},
	},
	ReplySLA: ReplySLA{
		Thresholds:         []time.Duration{2 * time.Minute, 4 * time.Minute, 10 * time.Minute},
		WarnBefore:         30 * time.Second,
		PriorityWarnBefore: 100 * time.Second,
		OutsideHours:       OutsideStartAtOpen,
		Target:             0.85,
	},
	Clock: Clock{Grace: time.Second, Allowance: 500 * time.Millisecond, Tick: 50 * time.Millisecond, AllowedLateness: 30 * time.Minute,
		MaxEventAge: 72 * time.Hour},
	Alerts:  Alerts{Language: "en", Lease: time.Minute},
	Metrics: Metrics{PerAgent: true, MaxAgents: 50, ReportInterval: 10 * time.Second, ReporterLease: 30 * time.Second},
	Seats: Seats{AwayAfter: 15 * time.Minute, IdleAfter: 2 * time.Minute, UncoveredAfter: 90 * time.Second,
		UncoveredAfterInferred: 4 * time.Minute, InferredOfflineAfter: 20 * time.Minute},
	Text: Text{Lexicons: []string{"testdata/lexicons/shop.yml"}, Allow: []string{"微信公众号"}, PerfunctoryAlertAfter: 3},

	EffectiveReply: EffectiveReply{Within: 30 * time.Minute, AlertBelow: 0.7},
	Orders: Orders{ShipWithin: 72 * time.Hour, PDDFlash: true, WarnBefore: 6 * time.Hour, RespondWarnBefore: 3 * time.Hour,
		ConversionWindow: 12 * time.Hour, BadReviewAt: 3},
	Log: Log{Level: "debug", Format: LogJSON},
	Notify: Notify{
		GroupID: "rw-prod-notify",
		MaxAge:  15 * time.Minute,
		MarkTTL: 48 * time.Hour,
		Receivers: []Receiver{
			{Name: "shop-wecom", WeCom: &WeCom{URL: "https://wecom.proxy.internal/cgi-bin/webhook/send", Timeout: 3 * time.Second,
				Key: "${WECOM_KEY}", Format: "text", Limits: []Limit{{10, time.Minute}}}},
			{Name: "shop-wecom-2", WeCom: &WeCom{URL: WeComURL, Timeout: 5 * time.Second, KeyFile: "/run/secrets/wecom-key",
				Format: "markdown", Limits: []Limit{{20, time.Minute}}}},
			{Name: "cs-ding", DingTalk: &DingTalk{URL: DingTalkURL, Timeout: 4 * time.Second, AccessToken: "ding-t0ken",
				Secret: "SECding", Limits: []Limit{{20, time.Minute}}}},
			{Name: "cs-ding-2", DingTalk: &DingTalk{URL: DingTalkURL, Timeout: 5 * time.Second, AccessTokenFile: "/run/secrets/ding-token",
				SecretFile: "/run/secrets/ding-secret", Limits: []Limit{{20, time.Minute}}}},
			{Name: "cs-feishu", Feishu: &Feishu{URL: FeishuURL, Timeout: 5 * time.Second, Hook: "${FEISHU_HOOK}",
				Secret: "${FEISHU_SECRET}", Limits: []Limit{{5, time.Second}, {100, time.Minute}}}},
			{Name: "cs-feishu-2", Feishu: &Feishu{URL: FeishuURL, Timeout: 5 * time.Second, HookFile: "/run/secrets/feishu-hook",
				SecretFile: "/run/secrets/feishu-secret", Limits: []Limit{{5, time.Second}, {100, time.Minute}}}},
			{Name: "workbench", Webhook: &Webhook{URL: "https://wb.example/hooks/replywatch", Timeout: 2 * time.Second,
				Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Limits: []Limit{}}},
			{Name: "workbench-2", Webhook: &Webhook{URL: "https://wb2.example/hooks/replywatch", Timeout: 5 * time.Second,
				SecretFile: "/run/secrets/wb", Limits: []Limit{{600, time.Minute}}}},
			{Name: "am", Alertmanager: &Alertmanager{URL: "http://alertmanager:9093", Timeout: 5 * time.Second, Resend: 30 * time.Second}},
			{Name: "console", Log: &LogReceiver{}},
		},
		Route: Route{
			Receiver: "cs-ding", Match: map[string][]string{"shop_id": {"s1", "s2"}}, Mention: MentionNone,
			GroupBy: []string{"shop_id", "kind"}, GroupWait: ptr(10 * time.Second), GroupInterval: ptr(2 * time.Minute),
			Routes: []Route{
				{Match: map[string][]string{"kind": {"reply_warning"}}, Receiver: "shop-wecom", Mention: MentionAgent,
					GroupBy: []string{"shop_id", "agent_id"}, GroupWait: ptr(time.Second), GroupInterval: ptr(30 * time.Second)},
				{Match: map[string][]string{"audience": {"supervisor"}}, Receiver: "cs-feishu", Mention: MentionSupervisor, Continue: true},
			},
		},
	},
	Agents: map[string]Agent{
		"s1-a1":   {Name: "小王", Mobile: "13800000001", WeCom: "wangxiao", DingTalk: "ding_wx", Feishu: "ou_wx", Supervisor: "s1-lead"},
		"s1-lead": {Name: "老李", Mobile: "13800000009"},
	},
	Shops: map[string]ShopOverride{
		"s1": {
			Platform:     "jd",
			Timezone:     "Asia/Shanghai",
			ServiceHours: []TimeRange{{"00:00", "24:00"}},
			ServiceExceptions: []Exception{
				{Date: "2026-12-25", Hours: []TimeRange{}},
				{Date: "2026-12-26", Hours: []TimeRange{{"12:00", "18:00"}}},
			},
			ReplySLA: ShopReplySLA{
				Thresholds:         []time.Duration{time.Minute},
				WarnBefore:         ptr(20 * time.Second),
				PriorityWarnBefore: ptr(45 * time.Second),
				OutsideHours:       OutsideIgnore,
				Target:             ptr(0.97),
			},
			Seats: ShopSeats{IdleAfter: ptr(time.Minute), AwayAfter: ptr(5 * time.Minute), UncoveredAfter: ptr(30 * time.Second),
				UncoveredAfterInferred: ptr(3 * time.Minute), InferredOfflineAfter: ptr(15 * time.Minute)},
			Text:           ShopText{Lexicons: []string{"testdata/lexicons/shop.yml"}, Allow: []string{"加微信群"}, PerfunctoryAlertAfter: ptr(1)},
			EffectiveReply: ShopEffectiveReply{Within: ptr(45 * time.Minute), AlertBelow: ptr(0.5)},
			Orders: ShopOrders{ShipWithin: ptr(36 * time.Hour), PDDFlash: ptr(false), WarnBefore: ptr(2 * time.Hour),
				RespondWarnBefore: ptr(time.Hour), ConversionWindow: ptr(48 * time.Hour), BadReviewAt: ptr(1)},
		},
	},
}

func ptr[T any](v T) *T { return &v }

var goodCases = []struct {
	file string
	want *Config // nil: only that it parses
}{
	{"empty.good.yml", Default()},
	{"full.good.yml", fullConfig},
	{"shops.good.yml", nil},
}

func TestGoodFiles(t *testing.T) {
	for _, c := range goodCases {
		t.Run(c.file, func(t *testing.T) {
			got, err := Parse(readTestdata(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if c.want != nil && !reflect.DeepEqual(got, c.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, c.want)
			}
		})
	}
}

// TestFullFileSetsEveryKey keeps full.good.yml complete as keys are added,
// so that the decoding of every key is tested.
func TestFullFileSetsEveryKey(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(readTestdata(t, "full.good.yml"), &doc); err != nil {
		t.Fatal(err)
	}
	var missing, empty []string
	filled := map[string]bool{} // lists and maps with an entry somewhere
	// A key of list elements (receivers, routes) is set when one element
	// sets it; a recursive type (the route tree) is walked one level deep.
	absent, present := map[string]bool{}, map[string]bool{}
	walking := map[reflect.Type]bool{}
	var walk func(n *yaml.Node, typ reflect.Type, path string)
	walk = func(n *yaml.Node, typ reflect.Type, path string) {
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		switch {
		case typ == durationType:
		case typ.Kind() == reflect.Struct:
			if walking[typ] {
				return
			}
			walking[typ] = true
			defer delete(walking, typ)
			for _, f := range yamlFields(typ) {
				var val *yaml.Node
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == f.name {
						val = n.Content[i+1]
					}
				}
				if val == nil {
					absent[join(path, f.name)] = true
					continue
				}
				present[join(path, f.name)] = true
				walk(val, typ.Field(f.index).Type, join(path, f.name))
			}
		case typ.Kind() == reflect.Map, typ.Kind() == reflect.Slice:
			if len(n.Content) > 0 {
				filled[path] = true
			} else if !filled[path] {
				empty = append(empty, path)
			}
			step := 1
			if typ.Kind() == reflect.Map {
				step = 2
			}
			for i := step - 1; i < len(n.Content); i += step {
				walk(n.Content[i], typ.Elem(), path+"[]")
			}
		}
	}
	walk(doc.Content[0], configType, "")
	// Keys that exclude each other: one of each pair is set, the other is
	// decoded in transport.bad.yml.
	either := map[string]string{"kafka.sasl.password_file": "kafka.sasl.password", "redis.password": "redis.password_file"}
	for path := range absent {
		if !present[path] && !present[either[path]] {
			missing = append(missing, path)
		}
	}
	slices.Sort(missing)
	for _, path := range empty {
		if !filled[path] {
			missing = append(missing, path+" (only empty)")
		}
	}
	if len(missing) > 0 {
		t.Errorf("full.good.yml does not set: %s", strings.Join(missing, ", "))
	}
}

func TestExample(t *testing.T) {
	data, err := os.ReadFile("example.yml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("example.yml does not show the defaults:\n%+v\nwant\n%+v", got, Default())
	}

	// The commented-out examples must work when uncommented.
	text := strings.NewReplacer("service_exceptions: []\n", "service_exceptions:\n", "shops: {}\n", "shops:\n",
		"  receivers: []\n", "  receivers:\n", "agents: {}\n", "agents:\n").Replace(string(data))
	var lines []string
	inExample := false
	for _, l := range strings.Split(text, "\n") {
		switch {
		case l == "service_exceptions:" || l == "shops:" || l == "  receivers:" || l == "agents:" || l == "    group_interval: 1m":
			inExample = true
		case inExample && strings.HasPrefix(l, "#  "):
			l = strings.TrimPrefix(l, "#")
		default:
			inExample = false
		}
		lines = append(lines, l)
	}
	got, err = Parse([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("example.yml with its examples uncommented: %v", err)
	}
	if len(got.Shops) != 3 || len(got.ServiceExceptions) != 2 {
		t.Errorf("uncommented examples give %d shops and %d exceptions, want 3 and 2", len(got.Shops), len(got.ServiceExceptions))
	}
	if len(got.Notify.Receivers) != 5 || len(got.Notify.Route.Routes) != 2 || len(got.Agents) != 2 {
		t.Errorf("uncommented examples give %d receivers, %d routes, %d agents, want 5, 2, 2",
			len(got.Notify.Receivers), len(got.Notify.Route.Routes), len(got.Agents))
	}
}

var envCases = []struct {
	name string
	env  map[string]string
	want func(*Config) // edits Default() into the expected result
}{
	{"nothing set", nil, func(*Config) {}},
	{"blank values change nothing", map[string]string{EnvKafkaBrokers: " ", EnvRedisURL: "", EnvHTTPAddr: ""}, func(*Config) {}},
	{"brokers comma list", map[string]string{EnvKafkaBrokers: "k1:9092, k2:9092,,"}, func(c *Config) {
		c.Kafka.Brokers = []string{"k1:9092", "k2:9092"}
	}},
	{"redis and http", map[string]string{EnvRedisURL: "redis://:pw@r:6379/3", EnvHTTPAddr: "127.0.0.1:9999"}, func(c *Config) {
		c.Redis.URL = "redis://:pw@r:6379/3"
		c.HTTP.Addr = "127.0.0.1:9999"
	}},
}

func TestApplyEnv(t *testing.T) {
	for _, c := range envCases {
		t.Run(c.name, func(t *testing.T) {
			got := Default()
			got.ApplyEnv(func(k string) string { return c.env[k] })
			want := Default()
			c.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestLoadAppliesEnvAfterFile(t *testing.T) {
	t.Setenv(EnvKafkaBrokers, "env-1:9092,env-2:9092")
	t.Setenv(EnvRedisURL, "redis://env:6379/1")
	t.Setenv(EnvHTTPAddr, "")
	got, err := Load("testdata/full.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"env-1:9092", "env-2:9092"}; !slices.Equal(got.Kafka.Brokers, want) {
		t.Errorf("brokers %v, want %v from the environment", got.Kafka.Brokers, want)
	}
	if got.Redis.URL != "redis://env:6379/1" {
		t.Errorf("redis url %q, want the environment's", got.Redis.URL)
	}
	if got.HTTP.Addr != "127.0.0.1:9100" {
		t.Errorf("http addr %q, want the file's (the variable is empty)", got.HTTP.Addr)
	}

	// The environment is validated like the file, and its errors name the
	// variable rather than the file's line.
	t.Setenv(EnvHTTPAddr, "nonsense")
	_, err = Load("testdata/full.good.yml")
	var verr *ValidationError
	if !errors.As(err, &verr) || !slices.Equal(verr.Errors, []string{`http.addr: "nonsense" is not host:port or :port (from REPLYWATCH_HTTP_ADDR)`}) {
		t.Errorf("Load with a bad REPLYWATCH_HTTP_ADDR: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load("testdata/missing.yml"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want a not-exist error", err)
	}
	_, err := Load("testdata/unknown_key.bad.yml")
	var verr *ValidationError
	if !errors.As(err, &verr) || !strings.Contains(err.Error(), "testdata/unknown_key.bad.yml") {
		t.Errorf("bad file: %v, want a *ValidationError naming the file", err)
	}
}

// shanghai and berlin are time zones used by the rules tests.
var (
	shanghai = mustLoc("Asia/Shanghai")
	berlin   = mustLoc("Europe/Berlin")
)

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// rulesCases run against testdata/shops.good.yml. open and closed are
// shop-local "2006-01-02 15:04" times.
var rulesCases = []struct {
	shop        string
	platform    string
	loc         *time.Location
	thresholds  []time.Duration
	warn        time.Duration
	startAtOpen bool
	open        []string
	closed      []string
}{
	{"unknown-shop", "pdd", shanghai, []time.Duration{3 * time.Minute, 5 * time.Minute}, time.Minute, false,
		[]string{"2026-11-24 08:30", "2026-11-24 21:59"},
		[]string{"2026-11-24 08:29", "2026-11-24 22:00", "2026-10-01 12:00"}},
	{"split", "pdd", shanghai, []time.Duration{3 * time.Minute, 5 * time.Minute}, time.Minute, false,
		[]string{"2026-11-24 08:00", "2026-11-24 11:59", "2026-11-24 13:30", "2026-11-24 23:59"},
		[]string{"2026-11-24 07:59", "2026-11-24 12:00", "2026-11-24 13:29", "2026-10-01 12:00"}},
	{"tb", "taobao", shanghai, []time.Duration{3 * time.Minute, 5 * time.Minute}, time.Minute, false,
		[]string{"2026-11-24 08:00", "2026-11-24 23:59"},
		[]string{"2026-11-24 07:59"}},
	{"jd1", "jd", shanghai, []time.Duration{3 * time.Minute, 5 * time.Minute}, 30 * time.Second, false,
		[]string{"2026-11-24 09:00", "2026-11-24 22:59"},
		[]string{"2026-11-24 08:59", "2026-11-24 23:00"}},
	{"dy", "douyin", shanghai, []time.Duration{3 * time.Minute, 5 * time.Minute}, time.Minute, false,
		[]string{"2026-11-24 08:30"},
		[]string{"2026-11-24 08:29", "2026-11-24 22:00"}},
	{"pdd2", "pdd", shanghai, []time.Duration{3 * time.Minute, 5 * time.Minute}, time.Minute, false,
		[]string{"2026-11-24 08:00", "2026-11-24 22:59"},
		[]string{"2026-11-24 07:59", "2026-11-24 23:00"}},
	{"jd2", "jd", shanghai, []time.Duration{3 * time.Minute, 5 * time.Minute}, time.Minute, false,
		[]string{"2026-11-24 07:00", "2026-11-24 20:59"},
		[]string{"2026-11-24 06:59", "2026-11-24 21:00"}},
	{"fast", "pdd", shanghai, []time.Duration{2 * time.Minute}, time.Minute, false,
		[]string{"2026-11-24 08:30"},
		[]string{"2026-11-24 08:29"}},
	{"eu", "pdd", berlin, []time.Duration{3 * time.Minute, 5 * time.Minute}, time.Minute, true,
		[]string{"2026-11-24 08:30", "2026-10-01 10:00"},
		[]string{"2026-11-24 08:29", "2026-10-01 09:59", "2026-10-01 14:00", "2026-12-24 12:00"}},
}

func TestRules(t *testing.T) {
	cfg, err := Parse(readTestdata(t, "shops.good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rules := cfg.Rules()
	for _, c := range rulesCases {
		t.Run(c.shop, func(t *testing.T) {
			r := rules(c.shop)
			if r.Platform != c.platform || !slices.Equal(r.Thresholds, c.thresholds) || r.WarnBefore != c.warn || r.StartAtOpen != c.startAtOpen {
				t.Errorf("rules %+v, want platform %s thresholds %v warn_before %v start_at_open %v",
					r, c.platform, c.thresholds, c.warn, c.startAtOpen)
			}
			if r.Hours.Loc.String() != c.loc.String() {
				t.Errorf("time zone %s, want %s", r.Hours.Loc, c.loc)
			}
			if got := cfg.Location(c.shop); got.String() != c.loc.String() {
				t.Errorf("Location = %s, want %s", got, c.loc)
			}
			if got := cfg.PlatformOf(c.shop); got != c.platform {
				t.Errorf("PlatformOf = %s, want %s", got, c.platform)
			}
			for _, s := range c.open {
				if !r.Hours.Open(localTime(t, s, c.loc)) {
					t.Errorf("closed at %s, want open", s)
				}
			}
			for _, s := range c.closed {
				if r.Hours.Open(localTime(t, s, c.loc)) {
					t.Errorf("open at %s, want closed", s)
				}
			}
			if rules(c.shop) != r {
				t.Error("a second lookup built new rules; they must be computed once")
			}
		})
	}
}

func localTime(t *testing.T, s string, loc *time.Location) time.Time {
	t.Helper()
	tm, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestRulesConcurrentLookups(t *testing.T) {
	cfg, err := Parse(readTestdata(t, "shops.good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rules := cfg.Rules()
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 1000 {
				if rules([]string{"tb", "eu", "nobody"}[i%3]) == nil {
					t.Error("nil rules")
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}

func TestRulesPanicsOnInvalidConfig(t *testing.T) {
	cfg := Default()
	cfg.Timezone = "Mars/Base"
	defer func() {
		if recover() == nil {
			t.Error("Rules on an invalid configuration did not panic")
		}
	}()
	cfg.Rules()
}

var setCases = []struct {
	path, value string
	check       func(*Config) bool // nil when an error is expected
	err         string
}{
	{"reply_sla.thresholds", "3m,5m,10m", func(c *Config) bool {
		return slices.Equal(c.ReplySLA.Thresholds, []time.Duration{3 * time.Minute, 5 * time.Minute, 10 * time.Minute})
	}, ""},
	{"reply_sla.warn_before", "30s", func(c *Config) bool { return c.ReplySLA.WarnBefore == 30*time.Second }, ""},
	{"reply_sla.outside_hours", "start_at_open", func(c *Config) bool { return c.ReplySLA.OutsideHours == OutsideStartAtOpen }, ""},
	{"timezone", "UTC", func(c *Config) bool { return c.Timezone == "UTC" }, ""},
	{"platform", "jd", func(c *Config) bool { return c.Platform == "jd" }, ""},
	{"kafka.brokers", "a:1,b:2", func(c *Config) bool { return slices.Equal(c.Kafka.Brokers, []string{"a:1", "b:2"}) }, ""},
	{"kafka.topics.chat", "other.chat", func(c *Config) bool { return c.Kafka.Topics.Chat == "other.chat" }, ""},
	{"kafka.batch_size", "100", func(c *Config) bool { return c.Kafka.BatchSize == 100 }, ""},
	{"redis.addrs", "", func(c *Config) bool { return len(c.Redis.Addrs) == 0 }, ""},
	{"clock.grace", "5s", func(c *Config) bool { return c.Clock.Grace == 5*time.Second }, ""},
	{"clock.max_event_age", "336h", func(c *Config) bool { return c.Clock.MaxEventAge == 14*24*time.Hour }, ""},
	{"alerts.language", "en", func(c *Config) bool { return c.Alerts.Language == "en" }, ""},
	{"metrics.per_agent", "true", func(c *Config) bool { return c.Metrics.PerAgent }, ""},
	{"metrics.max_agents", "20", func(c *Config) bool { return c.Metrics.MaxAgents == 20 }, ""},
	{"group_id", "x", nil, `setting group_id: unknown config key "group_id"`},
	{"service_hours", "08:00-12:00, 13:00-24:00", func(c *Config) bool {
		return slices.Equal(c.ServiceHours, []TimeRange{{"08:00", "12:00"}, {"13:00", "24:00"}})
	}, ""},
	{"shops.new.platform", "jd", func(c *Config) bool { return c.Shops["new"].Platform == "jd" && c.Shops["s1"].Platform == "taobao" }, ""},
	{"shops.s1.reply_sla.warn_before", "10s", func(c *Config) bool {
		o := c.Shops["s1"]
		return o.ReplySLA.WarnBefore != nil && *o.ReplySLA.WarnBefore == 10*time.Second && o.Platform == "taobao"
	}, ""},
	{"reply_sla.threshold", "3m", nil, `setting reply_sla.threshold: unknown config key "reply_sla.threshold"`},
	{"nosuch.key", "1", nil, `setting nosuch.key: unknown config key "nosuch"`},
	{"timezone.name", "UTC", nil, `setting timezone.name: "timezone" has no keys under it`},
	{"reply_sla", "3m", nil, `setting reply_sla: this key cannot be set from the command line; set it in the file`},
	{"service_exceptions", "2026-10-01", nil, `setting service_exceptions: this key cannot be set from the command line; set it in the file`},
	{"reply_sla.thresholds", "3m,5x", nil, `setting reply_sla.thresholds: invalid config: reply_sla.thresholds[1]: "5x" is not a duration`},
	{"kafka.batch_size", "many", nil, `setting kafka.batch_size: invalid config: kafka.batch_size: "many" is not a whole number`},
	{"metrics.per_agent", "perhaps", nil, `setting metrics.per_agent: invalid config: metrics.per_agent: "perhaps" is not true or false`},
	{"service_hours", "08:00", nil, `setting service_hours: "08:00" is not a range HH:MM-HH:MM`},
}

func TestSet(t *testing.T) {
	base := Default()
	base.Kafka.Brokers = []string{"from-env:9092"}
	base.Shops["s1"] = ShopOverride{Platform: "taobao"}
	for _, c := range setCases {
		t.Run(c.path+"="+c.value, func(t *testing.T) {
			// Start from a deep copy so that cases do not leak into each other.
			cfg := Default()
			if err := cfg.Set("kafka.brokers", "from-env:9092"); err != nil {
				t.Fatal(err)
			}
			if err := cfg.Set("shops.s1.platform", "taobao"); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg, base) {
				t.Fatalf("setup: %+v, want %+v", cfg, base)
			}
			err := cfg.Set(c.path, c.value)
			if c.check == nil {
				if err == nil || err.Error() != c.err {
					t.Errorf("error %v, want %s", err, c.err)
				}
				if !reflect.DeepEqual(cfg, base) {
					t.Errorf("a failed Set changed the configuration: %+v", cfg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(cfg) {
				t.Errorf("after Set: %+v", cfg)
			}
			if c.path != "kafka.brokers" && !slices.Equal(cfg.Kafka.Brokers, []string{"from-env:9092"}) {
				t.Errorf("Set %s lost another key: brokers %v", c.path, cfg.Kafka.Brokers)
			}
		})
	}
}

func TestSetThenValidate(t *testing.T) {
	cfg := Default()
	if err := cfg.Set("reply_sla.thresholds", "30s"); err != nil {
		t.Fatal(err)
	}
	// 30s does not leave room for the default 60s warning...
	var verr *ValidationError
	if err := cfg.Validate(); !errors.As(err, &verr) || !slices.Equal(verr.Errors, []string{"reply_sla.warn_before: 1m is not shorter than the first threshold 30s"}) {
		t.Fatalf("Validate: %v", err)
	}
	// ...until that is set too.
	if err := cfg.Set("reply_sla.warn_before", "10s"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if r := cfg.Rules()("any"); !slices.Equal(r.Thresholds, []time.Duration{30 * time.Second}) || r.WarnBefore != 10*time.Second {
		t.Errorf("rules after Set: %+v", r)
	}
}

var maskCases = []struct{ in, want string }{
	{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
	{"redis://:s3cret@r:6379/0", "redis://:xxxxx@r:6379/0"},
	{"rediss://user:s3cret@r:6380/2", "rediss://user:xxxxx@r:6380/2"},
	{"redis://user@r:6379", "redis://user@r:6379"},
	{"redis://r:6379/0?password=s3cret&dial_timeout=1s", "redis://r:6379/0?dial_timeout=1s&password=xxxxx"},
	{"redis://u:s3cret@r:6379/%zz", "redis://xxxxx@r:6379/%zz"},
}

func TestMaskURL(t *testing.T) {
	for _, c := range maskCases {
		if got := MaskURL(c.in); got != c.want {
			t.Errorf("MaskURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	for _, file := range []string{"empty.good.yml", "full.good.yml", "shops.good.yml"} {
		t.Run(file, func(t *testing.T) {
			cfg, err := Parse(readTestdata(t, file))
			if err != nil {
				t.Fatal(err)
			}
			out, err := cfg.YAML()
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{"s3cret", "kafka-s3cret", "ding-t0ken", "SECding", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
				if strings.Contains(string(out), secret) {
					t.Errorf("YAML prints the secret %q:\n%s", secret, out)
				}
			}
			back, err := Parse(out)
			if err != nil {
				t.Fatalf("Parse(YAML()): %v\n%s", err, out)
			}
			want := *cfg
			want.Redis.URL = MaskURL(cfg.Redis.URL)
			want.Notify = maskedNotify(cfg.Notify)
			want.maskTransport()
			if !reflect.DeepEqual(back, &want) {
				t.Errorf("round trip changed the configuration:\n%s\ngot  %+v\nwant %+v", out, back, &want)
			}
		})
	}
}

func TestYAMLWritesDurationsAsWritten(t *testing.T) {
	out, err := Default().YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"thresholds: [3m, 5m]", "state_ttl: 72h", "batch_wait: 20ms", "warn_before: 1m"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("YAML lacks %q:\n%s", want, out)
		}
	}
}

func TestPlatformsMatchEvents(t *testing.T) {
	// A platform the config accepts must be one events may carry, and back.
	if len(Platforms) != len(event.Platforms) {
		t.Errorf("config platforms %v, event platforms %v", Platforms, event.Platforms)
	}
	for _, p := range Platforms {
		if !event.Platforms[p] {
			t.Errorf("platform %s is not accepted in events", p)
		}
	}
}

// defaultsCases are documents that set nothing and must give the defaults.
var defaultsCases = []string{
	"",
	"# only a comment\n",
	"~\n",
	"kafka:\nreply_sla:\n", // empty sections keep their defaults
}

func TestNothingSetGivesDefaults(t *testing.T) {
	for _, doc := range defaultsCases {
		got, err := Parse([]byte(doc))
		if err != nil {
			t.Errorf("Parse(%q): %v", doc, err)
			continue
		}
		if !reflect.DeepEqual(got, Default()) {
			t.Errorf("Parse(%q) = %+v, want the defaults", doc, got)
		}
	}
}

func TestLoadEnvFixesFileValue(t *testing.T) {
	// An error the environment overrides is not reported, even alongside
	// another error in the file.
	path := filepath.Join(t.TempDir(), "rw.yml")
	if err := os.WriteFile(path, []byte("kafka:\n  brokers: []\n  colour: red\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvKafkaBrokers, "k:9092")
	_, err := Load(path)
	var verr *ValidationError
	if !errors.As(err, &verr) || !slices.Equal(verr.Errors, []string{"kafka.colour: unknown key (line 3)"}) {
		t.Errorf("Load: %v", err)
	}
}

func TestLocationOfInvalidZone(t *testing.T) {
	cfg := Default()
	cfg.Shops["mars"] = ShopOverride{Timezone: "Mars/Base"}
	if got := cfg.Location("mars"); got != time.UTC {
		t.Errorf("Location of an unknown zone = %s, want UTC", got)
	}
	if got := cfg.Location("other"); got.String() != "Asia/Shanghai" {
		t.Errorf("Location of a shop without override = %s, want Asia/Shanghai", got)
	}
}

// TestSeatRulesPerShop: a shop's seats keys replace the inherited ones one
// by one; other shops keep the defaults.
func TestSeatRulesPerShop(t *testing.T) {
	cfg, err := Parse(readTestdata(t, "shops.good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rules := cfg.Rules()
	def := detectors.SeatRules{IdleAfter: 3 * time.Minute, AwayAfter: 10 * time.Minute, UncoveredAfter: time.Minute,
		UncoveredAfterInferred: 5 * time.Minute, InferredOfflineAfter: 30 * time.Minute}
	night := def
	night.IdleAfter, night.UncoveredAfter = 5*time.Minute, 2*time.Minute
	for shop, want := range map[string]detectors.SeatRules{"night": night, "tb": def, "nobody": def} {
		if got := rules(shop).Seats; got != want {
			t.Errorf("%s: seats %+v, want %+v", shop, got, want)
		}
	}
}

// secretCases are receivers whose secrets cannot be read, and what
// CheckSecrets says of each.
var secretCases = []struct {
	doc  string
	want string
}{
	{`notify: {receivers: [{name: w, wecom: {key: "${RW_TEST_UNSET}"}}], route: {receiver: w}}`,
		`notify.receivers[0].wecom.key: environment variable RW_TEST_UNSET is not set`},
	{`notify: {receivers: [{name: d, dingtalk: {access_token: t, secret_file: /nonexistent/ding}}], route: {receiver: d}}`,
		`notify.receivers[0].dingtalk.secret: reading secret file: open /nonexistent/ding: no such file or directory`},
	{`notify: {receivers: [{name: h, webhook: {url: "http://h", secret: "${RW_TEST_WB}"}}], route: {receiver: h}}`,
		`notify.receivers[0].webhook.secret: is not whsec_ followed by base64 (the Standard Webhooks form)`},
}

func TestCheckSecrets(t *testing.T) {
	env := map[string]string{"RW_TEST_WB": "plain-text", "RW_TEST_KEY": "k"}
	for _, c := range secretCases {
		cfg, err := Parse([]byte(c.doc))
		if err != nil {
			t.Fatalf("%s: %v", c.doc, err)
		}
		err = cfg.CheckSecrets(func(k string) string { return env[k] })
		var verr *ValidationError
		if !errors.As(err, &verr) || len(verr.Errors) != 1 || verr.Errors[0] != c.want {
			t.Errorf("%s: CheckSecrets = %v, want %s", c.doc, err, c.want)
		}
	}
	cfg, err := Parse([]byte(`notify: {receivers: [{name: w, wecom: {key: "${RW_TEST_KEY}"}}], route: {receiver: w}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckSecrets(func(k string) string { return env[k] }); err != nil {
		t.Errorf("a set variable: %v", err)
	}
	if v, _ := cfg.Notify.Receivers[0].WeCom.Key.Resolve("", func(k string) string { return env[k] }); v != "k" {
		t.Errorf("resolved %q, want k", v)
	}
}
