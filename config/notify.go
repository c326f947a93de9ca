package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Notify configures the notifier: the consumer group on the alerts topic
// that delivers alerts to people through receivers.
type Notify struct {
	// Enabled runs the notifier inside "replywatch run".
	Enabled bool   `yaml:"enabled"`
	GroupID string `yaml:"group_id"`
	// MaxAge is how old an alert (its "at") may be and still be sent on its
	// own; older ones (a replayed backlog) become one digest per shop.
	MaxAge time.Duration `yaml:"max_age"`
	// MarkTTL is how long the record of a delivery is kept, so that a
	// redelivered alert is not sent again.
	MarkTTL   time.Duration `yaml:"mark_ttl"`
	Receivers []Receiver    `yaml:"receivers"`
	Route     Route         `yaml:"route"`
}

// Secret is a credential written in the file as text, or as "${VAR}" to
// read it from the environment. Literal secrets are masked when the
// configuration is printed.
type Secret string

// Receiver is one destination of alerts: a name and exactly one kind.
type Receiver struct {
	Name         string        `yaml:"name"`
	WeCom        *WeCom        `yaml:"wecom,omitempty"`
	DingTalk     *DingTalk     `yaml:"dingtalk,omitempty"`
	Feishu       *Feishu       `yaml:"feishu,omitempty"`
	Webhook      *Webhook      `yaml:"webhook,omitempty"`
	Alertmanager *Alertmanager `yaml:"alertmanager,omitempty"`
	// Log writes messages to replywatch's own log (the demo's receiver).
	Log *LogReceiver `yaml:"log,omitempty"`
}

// Limit is a sending budget: at most Messages per Per.
type Limit struct {
	Messages int           `yaml:"messages"`
	Per      time.Duration `yaml:"per"`
}

// WeCom is a WeCom (企业微信) group robot.
type WeCom struct {
	URL     string        `yaml:"url"`
	Timeout time.Duration `yaml:"timeout"`
	Key     Secret        `yaml:"key,omitempty"`
	KeyFile string        `yaml:"key_file,omitempty"`
	// Format is markdown (mentions by user id) or text (mentions by mobile).
	Format string  `yaml:"format"`
	Limits []Limit `yaml:"limits"`
}

// DingTalk is a DingTalk (钉钉) custom robot with signing.
type DingTalk struct {
	URL             string        `yaml:"url"`
	Timeout         time.Duration `yaml:"timeout"`
	AccessToken     Secret        `yaml:"access_token,omitempty"`
	AccessTokenFile string        `yaml:"access_token_file,omitempty"`
	Secret          Secret        `yaml:"secret,omitempty"`
	SecretFile      string        `yaml:"secret_file,omitempty"`
	Limits          []Limit       `yaml:"limits"`
}

// Feishu is a Feishu/Lark (飞书) custom bot with signing.
type Feishu struct {
	URL        string        `yaml:"url"`
	Timeout    time.Duration `yaml:"timeout"`
	Hook       Secret        `yaml:"hook,omitempty"`
	HookFile   string        `yaml:"hook_file,omitempty"`
	Secret     Secret        `yaml:"secret,omitempty"`
	SecretFile string        `yaml:"secret_file,omitempty"`
	Limits     []Limit       `yaml:"limits"`
}

// Webhook posts alert records as JSON, signed per the Standard Webhooks
// spec.
type Webhook struct {
	URL     string        `yaml:"url"`
	Timeout time.Duration `yaml:"timeout"`
	// Secret is "whsec_" followed by base64, as the spec writes it.
	Secret     Secret  `yaml:"secret,omitempty"`
	SecretFile string  `yaml:"secret_file,omitempty"`
	Limits     []Limit `yaml:"limits"`
}

// Alertmanager posts alerts to an Alertmanager's API v2.
type Alertmanager struct {
	// URL is the base URL; alerts go to URL/api/v2/alerts.
	URL     string        `yaml:"url"`
	Timeout time.Duration `yaml:"timeout"`
	// Resend is how often firing alerts are sent again (Alertmanager
	// resolves an alert that is not re-sent before its endsAt).
	Resend time.Duration `yaml:"resend"`
}

// LogReceiver has no settings.
type LogReceiver struct{}

// Route is a node of the routing tree: alerts matching Match go to
// Receiver, then to the first matching child (or every matching one
// after a child with Continue). Unset keys are inherited from the parent.
type Route struct {
	Receiver string `yaml:"receiver,omitempty"`
	// Match maps an alert field (kind, severity, status, shop_id, platform,
	// agent_id, threshold, audience) to the values it may take.
	Match map[string][]string `yaml:"match,omitempty"`
	// Mention is who is @-mentioned: agent, supervisor, both, none, or
	// auto (a warning the agent, a breach both, a critical alert the
	// supervisor).
	Mention       string         `yaml:"mention,omitempty"`
	Continue      bool           `yaml:"continue,omitempty"`
	GroupBy       []string       `yaml:"group_by,omitempty"`
	GroupWait     *time.Duration `yaml:"group_wait,omitempty"`
	GroupInterval *time.Duration `yaml:"group_interval,omitempty"`
	Routes        []Route        `yaml:"routes,omitempty"`
}

// Agent is a person in the directory, by agent id or "shop_id/agent_id".
type Agent struct {
	Name     string `yaml:"name"`
	Mobile   string `yaml:"mobile,omitempty"`
	WeCom    string `yaml:"wecom,omitempty"`
	DingTalk string `yaml:"dingtalk,omitempty"`
	Feishu   string `yaml:"feishu,omitempty"`
	// Supervisor is the id of the agent's supervisor in this directory.
	Supervisor string `yaml:"supervisor,omitempty"`
}

// Mention values.
const (
	MentionAuto       = "auto"
	MentionAgent      = "agent"
	MentionSupervisor = "supervisor"
	MentionBoth       = "both"
	MentionNone       = "none"
)

// RouteLabels are the alert fields a route may match or group by.
var RouteLabels = []string{"kind", "severity", "status", "shop_id", "platform", "agent_id", "buyer_id", "threshold", "audience"}

// Vendor endpoints, up to and not including the credential.
const (
	WeComURL    = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
	DingTalkURL = "https://oapi.dingtalk.com/robot/send"
	FeishuURL   = "https://open.feishu.cn/open-apis/bot/v2/hook"
)

// defaultNotify is the notify section an empty file gives.
func defaultNotify() Notify {
	wait, interval := 5*time.Second, time.Minute
	return Notify{
		Enabled:   true,
		GroupID:   "replywatch-notify",
		MaxAge:    10 * time.Minute,
		MarkTTL:   72 * time.Hour,
		Receivers: []Receiver{},
		Route:     Route{GroupBy: []string{"shop_id", "kind"}, GroupWait: &wait, GroupInterval: &interval},
	}
}

// fillNotify sets the defaults inside receivers, which a file lists
// without them: the vendor's endpoint, the 5s timeout and its rate limits.
func (c *Config) fillNotify() {
	for i := range c.Notify.Receivers {
		r := &c.Notify.Receivers[i]
		switch {
		case r.WeCom != nil:
			fillEndpoint(&r.WeCom.URL, &r.WeCom.Timeout, WeComURL)
			if r.WeCom.Format == "" {
				r.WeCom.Format = "markdown"
			}
			fillLimits(&r.WeCom.Limits, Limit{20, time.Minute})
		case r.DingTalk != nil:
			fillEndpoint(&r.DingTalk.URL, &r.DingTalk.Timeout, DingTalkURL)
			fillLimits(&r.DingTalk.Limits, Limit{20, time.Minute})
		case r.Feishu != nil:
			fillEndpoint(&r.Feishu.URL, &r.Feishu.Timeout, FeishuURL)
			fillLimits(&r.Feishu.Limits, Limit{5, time.Second}, Limit{100, time.Minute})
		case r.Webhook != nil:
			fillEndpoint(&r.Webhook.URL, &r.Webhook.Timeout, "")
			fillLimits(&r.Webhook.Limits)
		case r.Alertmanager != nil:
			fillEndpoint(&r.Alertmanager.URL, &r.Alertmanager.Timeout, "")
			if r.Alertmanager.Resend == 0 {
				r.Alertmanager.Resend = time.Minute
			}
		}
	}
}

func fillEndpoint(u *string, timeout *time.Duration, def string) {
	if *u == "" {
		*u = def
	}
	if *timeout == 0 {
		*timeout = 5 * time.Second
	}
}

func fillLimits(l *[]Limit, def ...Limit) {
	if *l == nil {
		*l = append([]Limit{}, def...)
	}
}

var receiverName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,64}$`)

func (c *Config) validateNotify(p *problems) {
	n := c.Notify
	if n.GroupID == "" {
		p.add("notify.group_id", "is required")
	} else if n.GroupID == c.Kafka.GroupID {
		p.add("notify.group_id", "%q is already kafka.group_id; the notifier needs a group of its own", n.GroupID)
	}
	atLeast(p, "notify.max_age", n.MaxAge, time.Second)
	atLeast(p, "notify.mark_ttl", n.MarkTTL, time.Hour)
	names := map[string]int{}
	for i, r := range n.Receivers {
		path := fmt.Sprintf("notify.receivers[%d]", i)
		switch {
		case r.Name == "":
			p.add(path+".name", "is required")
		case !receiverName.MatchString(r.Name):
			p.add(path+".name", "%q is not a receiver name (letters, digits, '.', '_', '-')", r.Name)
		default:
			if j, dup := names[r.Name]; dup {
				p.add(path+".name", "%q is already the name of notify.receivers[%d]", r.Name, j)
			} else {
				names[r.Name] = i
			}
		}
		kinds := r.kinds()
		if len(kinds) != 1 {
			p.add(path, "needs exactly one of wecom, dingtalk, feishu, webhook, alertmanager, log (has %d)", len(kinds))
			continue
		}
		r.validate(p, path+"."+kinds[0])
	}
	if len(n.Receivers) > 0 && n.Route.Receiver == "" {
		p.add("notify.route.receiver", "is required when receivers are configured")
	}
	validateRoute(p, "notify.route", n.Route, names)
	ids := make([]string, 0, len(c.Agents))
	for id := range c.Agents {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		a := c.Agents[id]
		path := "agents." + id
		if a.Name == "" {
			p.add(path+".name", "is required")
		}
		if a.Supervisor != "" {
			if _, ok := c.Agents[a.Supervisor]; !ok {
				p.add(path+".supervisor", "%q is not in agents", a.Supervisor)
			}
		}
		if a.Mobile != "" && !mobile.MatchString(a.Mobile) {
			p.add(path+".mobile", "%q is not a mobile number (digits, optionally with a leading +)", a.Mobile)
		}
	}
}

var mobile = regexp.MustCompile(`^\+?[0-9]{5,20}$`)

func (r Receiver) kinds() []string {
	var k []string
	for _, c := range []struct {
		name string
		set  bool
	}{{"wecom", r.WeCom != nil}, {"dingtalk", r.DingTalk != nil}, {"feishu", r.Feishu != nil},
		{"webhook", r.Webhook != nil}, {"alertmanager", r.Alertmanager != nil}, {"log", r.Log != nil}} {
		if c.set {
			k = append(k, c.name)
		}
	}
	return k
}

func (r Receiver) validate(p *problems, path string) {
	switch {
	case r.WeCom != nil:
		w := r.WeCom
		checkEndpoint(p, path, w.URL, w.Timeout)
		oneSecret(p, path, "key", w.Key, w.KeyFile)
		oneOf(p, path+".format", w.Format, "markdown", "text")
		checkLimits(p, path, w.Limits)
	case r.DingTalk != nil:
		d := r.DingTalk
		checkEndpoint(p, path, d.URL, d.Timeout)
		oneSecret(p, path, "access_token", d.AccessToken, d.AccessTokenFile)
		oneSecret(p, path, "secret", d.Secret, d.SecretFile)
		checkLimits(p, path, d.Limits)
	case r.Feishu != nil:
		f := r.Feishu
		checkEndpoint(p, path, f.URL, f.Timeout)
		oneSecret(p, path, "hook", f.Hook, f.HookFile)
		if f.Secret != "" && f.SecretFile != "" {
			p.add(path, "set secret or secret_file, not both")
		}
		checkLimits(p, path, f.Limits)
	case r.Webhook != nil:
		w := r.Webhook
		checkEndpoint(p, path, w.URL, w.Timeout)
		oneSecret(p, path, "secret", w.Secret, w.SecretFile)
		checkLimits(p, path, w.Limits)
	case r.Alertmanager != nil:
		a := r.Alertmanager
		checkEndpoint(p, path, a.URL, a.Timeout)
		atLeast(p, path+".resend", a.Resend, time.Second)
	}
}

func checkEndpoint(p *problems, path, raw string, timeout time.Duration) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		p.add(path+".url", "is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		p.add(path+".url", "%q is not an http:// or https:// URL", MaskURL(raw))
	}
	atLeast(p, path+".timeout", timeout, 10*time.Millisecond)
}

func checkLimits(p *problems, path string, ls []Limit) {
	for i, l := range ls {
		lp := fmt.Sprintf("%s.limits[%d]", path, i)
		if l.Messages < 1 {
			p.add(lp+".messages", "%d is not at least 1", l.Messages)
		}
		atLeast(p, lp+".per", l.Per, time.Millisecond)
	}
}

func oneSecret(p *problems, path, key string, v Secret, file string) {
	switch {
	case v == "" && file == "":
		p.add(path, "%s or %s_file is required", key, key)
	case v != "" && file != "":
		p.add(path, "set %s or %s_file, not both", key, key)
	}
}

func validateRoute(p *problems, path string, r Route, receivers map[string]int) {
	if r.Receiver != "" {
		if _, ok := receivers[r.Receiver]; !ok && r.Receiver != "" {
			p.add(path+".receiver", "%q is not the name of a receiver", r.Receiver)
		}
	}
	keys := make([]string, 0, len(r.Match))
	for k := range r.Match {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(RouteLabels, k) {
			p.add(path+".match."+k, "is not a field alerts are routed by (%s)", strings.Join(RouteLabels, ", "))
		} else if len(r.Match[k]) == 0 {
			p.add(path+".match."+k, "lists no values")
		}
	}
	if r.Mention != "" {
		oneOf(p, path+".mention", r.Mention, MentionAuto, MentionAgent, MentionSupervisor, MentionBoth, MentionNone)
	}
	for i, g := range r.GroupBy {
		if !slices.Contains(RouteLabels, g) {
			p.add(fmt.Sprintf("%s.group_by[%d]", path, i), "%q is not one of %s", g, strings.Join(RouteLabels, ", "))
		}
	}
	if r.GroupWait != nil {
		atLeast(p, path+".group_wait", *r.GroupWait, 0)
	}
	if r.GroupInterval != nil {
		atLeast(p, path+".group_interval", *r.GroupInterval, time.Millisecond)
	}
	for i, c := range r.Routes {
		validateRoute(p, fmt.Sprintf("%s.routes[%d]", path, i), c, receivers)
	}
}

func isEnvRef(s string) bool {
	return strings.HasPrefix(s, "${") && strings.HasSuffix(s, "}") && len(s) > 3
}

func validWebhookSecret(s string) bool {
	rest, ok := strings.CutPrefix(s, "whsec_")
	if !ok || rest == "" {
		return false
	}
	_, err := base64.StdEncoding.DecodeString(rest)
	return err == nil
}

// Resolve returns the secret's text: the environment variable it names,
// or the file's contents (trimmed), or the literal. It is what receivers
// are built from; the value is never printed.
func (s Secret) Resolve(file string, getenv func(string) string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading secret file: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", file)
		}
		return v, nil
	}
	if isEnvRef(string(s)) {
		name := string(s)[2 : len(s)-1]
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		return v, nil
	}
	return string(s), nil
}

// Masked is what the configuration prints for the secret.
func (s Secret) Masked() Secret {
	if s == "" || isEnvRef(string(s)) {
		return s
	}
	return "xxxxx"
}

// CheckSecrets resolves every receiver secret, the Kafka and Redis
// passwords and TLS files, so that a missing file or environment variable
// is reported by validate and at start rather than at the first alert or
// connection. Load does not call it: a processor-only replica
// need not hold the notifier's secrets.
func (c *Config) CheckSecrets(getenv func(string) string) error {
	var p problems
	for i, r := range c.Notify.Receivers {
		path := fmt.Sprintf("notify.receivers[%d]", i)
		for _, s := range r.secrets() {
			if s.value == "" && s.file == "" {
				continue
			}
			v, err := s.value.Resolve(s.file, getenv)
			switch {
			case err != nil:
				p.add(path+"."+s.key, "%v", err)
			case s.key == "webhook.secret" && !validWebhookSecret(v):
				p.add(path+"."+s.key, "is not whsec_ followed by base64 (the Standard Webhooks form)")
			}
		}
	}
	c.checkTransportSecrets(&p, getenv)
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Errors: p}
}

type secretField struct {
	key   string
	value Secret
	file  string
	set   func(Secret)
}

func (r *Receiver) secrets() []secretField {
	switch {
	case r.WeCom != nil:
		w := r.WeCom
		return []secretField{{"wecom.key", w.Key, w.KeyFile, func(s Secret) { w.Key = s }}}
	case r.DingTalk != nil:
		d := r.DingTalk
		return []secretField{
			{"dingtalk.access_token", d.AccessToken, d.AccessTokenFile, func(s Secret) { d.AccessToken = s }},
			{"dingtalk.secret", d.Secret, d.SecretFile, func(s Secret) { d.Secret = s }},
		}
	case r.Feishu != nil:
		f := r.Feishu
		return []secretField{
			{"feishu.hook", f.Hook, f.HookFile, func(s Secret) { f.Hook = s }},
			{"feishu.secret", f.Secret, f.SecretFile, func(s Secret) { f.Secret = s }},
		}
	case r.Webhook != nil:
		w := r.Webhook
		return []secretField{{"webhook.secret", w.Secret, w.SecretFile, func(s Secret) { w.Secret = s }}}
	}
	return nil
}

// maskedNotify is a copy of n with literal secrets masked.
func maskedNotify(n Notify) Notify {
	out := n
	out.Receivers = make([]Receiver, len(n.Receivers))
	for i, r := range n.Receivers {
		c := r
		switch {
		case r.WeCom != nil:
			v := *r.WeCom
			c.WeCom = &v
		case r.DingTalk != nil:
			v := *r.DingTalk
			c.DingTalk = &v
		case r.Feishu != nil:
			v := *r.Feishu
			c.Feishu = &v
		case r.Webhook != nil:
			v := *r.Webhook
			c.Webhook = &v
		}
		for _, s := range c.secrets() {
			s.set(s.value.Masked())
		}
		out.Receivers[i] = c
	}
	return out
}
