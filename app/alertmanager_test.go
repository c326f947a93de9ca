package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/replywatch/replywatch/alerting/notify/notifytest"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/internal/testenv"
)

// readmeYAML is the first ```yaml block after a heading of README.md.
func readmeYAML(t *testing.T, heading string) string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q", heading)
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	if !ok {
		t.Fatalf("no yaml block after %q", heading)
	}
	block, _, _ := strings.Cut(rest, "```\n")
	return block
}

// TestAlertmanagerToDingTalk: a real Alertmanager running the kit's
// configuration posts an SRE alert to replywatch (the README's
// configuration), which delivers it, signed, to the on-call DingTalk
// robot: once when it fires, once when it resolves, whatever Alertmanager
// repeats. Posting needs the alertmanager token, and that token reads
// nothing.
func TestAlertmanagerToDingTalk(t *testing.T) {
	e := newEnv(t)
	cfg, err := config.Parse([]byte(readmeYAML(t, "### Alertmanager's alerts in DingTalk, Feishu or WeCom")))
	if err != nil {
		t.Fatalf("the README's configuration: %v", err)
	}
	base := testConfig(t, e.broker, e.redis, "am")
	cfg.Kafka, cfg.Redis, cfg.HTTP, cfg.Clock, cfg.Metrics, cfg.Alerts, cfg.Shops = base.Kafka, base.Redis, base.HTTP, base.Clock, base.Metrics, base.Alerts, base.Shops
	sre := notifytest.DingTalk(t, "tok-sre", "SEC-sre")
	shops := notifytest.DingTalk(t, "tok-cs", "SEC-cs")
	for k, v := range map[string]string{"SRE_DING_TOKEN": "tok-sre", "SRE_DING_SECRET": "SEC-sre", "DING_TOKEN": "tok-cs", "DING_SECRET": "SEC-cs"} {
		t.Setenv(k, v)
	}
	for i := range cfg.Notify.Receivers {
		r := &cfg.Notify.Receivers[i]
		switch r.Name {
		case "sre-ding":
			r.DingTalk.URL = sre.URL()
		case "cs-ding":
			r.DingTalk.URL = shops.URL()
		}
	}
	// Short groups, so that the test does not wait for the defaults' 5 s.
	wait, interval := 100*time.Millisecond, 500*time.Millisecond
	cfg.Notify.Route.GroupWait, cfg.Notify.Route.GroupInterval = &wait, &interval
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, Options{Log: zaptest.NewLogger(t), Holder: "am"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	r := &running{app: a, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	addr := a.Addr()

	// The kit's Alertmanager configuration, pointed at this replywatch and
	// its token file, with groups flushed within a second.
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "replywatch-token")
	if err := os.WriteFile(tokenFile, []byte("change-me-alertmanager-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kit, err := os.ReadFile("../deployments/alertmanager/alertmanager.yml")
	if err != nil {
		t.Fatal(err)
	}
	amYAML := strings.NewReplacer("http://replywatch:8080/", "http://"+addr+"/",
		"/etc/alertmanager/secrets/replywatch-token", tokenFile,
		"group_wait: 30s", "group_wait: 0s", "group_interval: 5m", "group_interval: 1s", "group_interval: 2m", "group_interval: 1s",
	).Replace(string(kit))
	if !strings.Contains(amYAML, "http://"+addr+"/api/v1/alertmanager?receiver=sre-ding") {
		t.Fatalf("the kit's alertmanager.yml has no route to replywatch's sre-ding:\n%s", amYAML)
	}
	amCfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(amCfg, []byte(amYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	amAddr := testenv.Alertmanager(t, amCfg, "--log.level=debug")
	amAPI := "http://" + amAddr + "/api/v2/alerts"

	// Prometheus's part: the alert fires, then resolves.
	startsAt := time.Now().Add(-time.Minute).UTC()
	postTopic := func(topic, backlog string, startsAt, endsAt time.Time) {
		t.Helper()
		body, _ := json.Marshal([]map[string]any{{
			"labels": map[string]string{"alertname": "ReplywatchConsumerLagGrowing", "job": "replywatch", "topic": topic,
				"team": "sre", "severity": "warning"},
			"annotations": map[string]string{"summary": topic + " 消费积压在增长", "description": "积压 " + backlog + " 条，持续 10 分钟"},
			"startsAt":    startsAt.Format(time.RFC3339), "endsAt": endsAt.UTC().Format(time.RFC3339),
		}})
		resp, err := http.Post(amAPI, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("posting the alert to Alertmanager: %s", resp.Status)
		}
	}
	post := func(endsAt time.Time) { t.Helper(); postTopic("cs.chat", "12000", startsAt, endsAt) }
	post(time.Now().Add(time.Hour))
	testenv.Eventually(t, 60*time.Second, "the firing alert in DingTalk", func() error {
		if n := len(sre.Received()); n != 1 {
			return fmt.Errorf("%d messages, want 1", n)
		}
		return nil
	})
	fingerprint := amFingerprint(t, amAPI)
	got := sre.Received()[0]
	if !strings.Contains(got.Title, "ReplywatchConsumerLagGrowing") || !strings.Contains(got.Text, "cs.chat 消费积压在增长: 积压 12000 条，持续 10 分钟") {
		t.Errorf("firing message %q / %q, want the alert's name, summary and description", got.Title, got.Text)
	}
	if strings.Contains(got.Title, "已解除") {
		t.Errorf("firing message titled %q", got.Title)
	}

	// Alertmanager sending the same notification again (a retry, a
	// repeat) adds no message.
	notification := func(status string) []byte {
		b, _ := json.Marshal(map[string]any{"version": "4", "status": status, "receiver": "sre-dingtalk",
			"alerts": []map[string]any{{"status": status,
				"labels":      map[string]string{"alertname": "ReplywatchConsumerLagGrowing", "job": "replywatch", "topic": "cs.chat", "team": "sre", "severity": "warning"},
				"annotations": map[string]string{"summary": "cs.chat 消费积压在增长"},
				"startsAt":    startsAt.Format(time.RFC3339), "fingerprint": fingerprint}}})
		return b
	}
	send := func(token, receiver string, body []byte) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/alertmanager?receiver="+receiver, bytes.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := send("change-me-alertmanager-token", "sre-ding", notification("firing")); code != 200 || !strings.Contains(body, `"queued":0`) {
		t.Errorf("the same firing alert again: %d %s, want 200 and nothing queued", code, body)
	}
	for _, c := range []struct {
		token, receiver string
		body            []byte
		code            int
	}{
		{"", "sre-ding", notification("firing"), 401},
		{"wrong", "sre-ding", notification("firing"), 401},
		{"change-me-alertmanager-token", "nobody", notification("firing"), 404},
		{"change-me-alertmanager-token", "sre-ding", []byte(`{"version":"3","alerts":[]}`), 400},
		{"change-me-alertmanager-token", "sre-ding", []byte(`{"version":"4","alerts":[{"status":"firing","labels":{}}]}`), 400},
	} {
		if code, body := send(c.token, c.receiver, c.body); code != c.code {
			t.Errorf("POST as %q to %q: %d %s, want %d", c.token, c.receiver, code, body, c.code)
		}
	}
	// The alertmanager token reads nothing.
	for _, path := range []string{"/api/v1/alerts", "/api/v1/shops", "/wall"} {
		if code, _ := get(t, addr, path, "change-me-alertmanager-token"); code != 403 {
			t.Errorf("GET %s with the alertmanager token = %d, want 403", path, code)
		}
	}

	post(time.Now().Add(-time.Second))
	testenv.Eventually(t, 60*time.Second, "the resolved alert in DingTalk", func() error {
		if n := len(sre.Received()); n != 2 {
			return fmt.Errorf("%d messages, want 2", n)
		}
		return nil
	})
	got = sre.Received()[1]
	if !strings.Contains(got.Title, "已解除") || !strings.Contains(got.Title, "ReplywatchConsumerLagGrowing") {
		t.Errorf("resolved message titled %q", got.Title)
	}
	if code, body := send("change-me-alertmanager-token", "sre-ding", notification("resolved")); code != 200 || !strings.Contains(body, `"queued":0`) {
		t.Errorf("the same resolved alert again: %d %s, want 200 and nothing queued", code, body)
	}
	// Then another alert of the same Alertmanager group (another topic):
	// Alertmanager sends the group's notifications one after another, and
	// the notifier's sender sends a receiver's messages one after another,
	// so a second message of the first alert, from either, comes before
	// this one's.
	postTopic("cs.orders", "300", time.Now().UTC(), time.Now().Add(time.Hour))
	testenv.Eventually(t, 60*time.Second, "the other topic's alert in DingTalk", func() error {
		for _, m := range sre.Received() {
			if strings.Contains(m.Text, "cs.orders") {
				return nil
			}
		}
		return fmt.Errorf("%d messages, none of cs.orders", len(sre.Received()))
	})
	if got := sre.Received(); len(got) != 3 || !strings.Contains(got[2].Text, "cs.orders") || strings.Contains(got[2].Text, "cs.chat") {
		for _, m := range got {
			t.Logf("%q / %q", m.Title, m.Text)
		}
		t.Errorf("DingTalk got %d messages, want 3: firing, resolved, and then the other topic's alert alone", len(got))
	}
	if n := len(shops.Received()); n != 0 {
		t.Errorf("the shops' robot got %d messages of Alertmanager's", n)
	}
	if codes := sre.Codes(); len(codes) != 0 {
		t.Errorf("the DingTalk emulator refused requests with %v", codes)
	}
}

// amFingerprint is the fingerprint Alertmanager gave the test's alert.
func amFingerprint(t *testing.T, api string) string {
	t.Helper()
	resp, err := http.Get(api)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var alerts []struct {
		Fingerprint string            `json:"fingerprint"`
		Labels      map[string]string `json:"labels"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if a.Labels["alertname"] == "ReplywatchConsumerLagGrowing" {
			return a.Fingerprint
		}
	}
	t.Fatal("Alertmanager holds no ReplywatchConsumerLagGrowing")
	return ""
}

// TestNotifyAloneTakesAlertmanager: "replywatch notify" (the notifier
// without the processor) delivers Alertmanager's notifications too, and
// serves no other API.
func TestNotifyAloneTakesAlertmanager(t *testing.T) {
	e := newEnv(t)
	cfg := testConfig(t, e.broker, e.redis, "am-alone")
	ding := notifytest.DingTalk(t, "tok-sre", "SEC-sre")
	cfg.Notify.Receivers = []config.Receiver{{Name: "sre-ding", DingTalk: &config.DingTalk{URL: ding.URL(), Timeout: 5 * time.Second,
		AccessToken: "tok-sre", Secret: "SEC-sre", Limits: []config.Limit{{Messages: 20, Per: time.Minute}}}}}
	cfg.Notify.Route.Receiver = "sre-ding"
	wait := 50 * time.Millisecond
	cfg.Notify.Route.GroupWait = &wait
	cfg.API.Tokens = []config.Token{{Name: "am", SHA256: hashOf("am-token"), Role: config.RoleAlertmanager}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, Options{Log: zaptest.NewLogger(t), NotifyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{app: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	addr := a.Addr()

	body := `{"version":"4","status":"firing","receiver":"x","alerts":[{"status":"firing",
		"labels":{"alertname":"ReplywatchDown","job":"replywatch","severity":"critical","team":"sre"},
		"annotations":{"summary":"replywatch 全部副本不可用"},"startsAt":"` + time.Now().UTC().Format(time.RFC3339) + `","fingerprint":"f00d"}]}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/alertmanager", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer am-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /api/v1/alertmanager = %s", resp.Status)
	}
	testenv.Eventually(t, 30*time.Second, "the alert in DingTalk", func() error {
		if n := len(ding.Received()); n != 1 {
			return fmt.Errorf("%d messages, want 1", n)
		}
		return nil
	})
	if got := ding.Received()[0]; !strings.Contains(got.Title, "ReplywatchDown") || !strings.Contains(got.Text, "replywatch 全部副本不可用") {
		t.Errorf("message %q / %q", got.Title, got.Text)
	}
	if code, _ := get(t, addr, "/api/v1/alerts", "am-token"); code != 404 {
		t.Errorf("GET /api/v1/alerts on the notifier alone = %d, want 404", code)
	}
}
