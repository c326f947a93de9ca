package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/alerting/notify/notifytest"
	"github.com/replywatch/replywatch/internal/testenv"
)

// `replywatch notify` alone: validate names a secret it cannot read; with
// the secrets in the environment it becomes ready, delivers a breach from
// cs.alerts to a signed DingTalk robot mentioning agent and supervisor, and
// stops on SIGTERM with exit 0.
func TestNotifyBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary, starts redis-server and kfake")
	}
	bin := buildBinary(t)
	broker, _ := testenv.Kafka(t, map[string]int{"cs.alerts": 2})
	redisURL := testenv.Redis(t)
	robot := notifytest.DingTalk(t, "tok", "SECsecret")
	httpAddr := freePort(t)
	cfgPath := filepath.Join(t.TempDir(), "replywatch.yml")
	cfg := fmt.Sprintf(`kafka: {brokers: [%q], session_timeout: 2s, rebalance_timeout: 2s}
redis: {url: %q}
http: {addr: %q}
notify:
  receivers:
    - {name: cs-ding, dingtalk: {url: %q, access_token: "${RW_DING_TOKEN}", secret: "${RW_DING_SECRET}"}}
  route: {receiver: cs-ding, group_wait: 100ms}
agents:
  a1: {name: 小王, mobile: "13800000001", supervisor: lead}
  lead: {name: 老李, mobile: "13800000009"}
`, broker, redisURL, httpAddr, robot.URL())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "validate", "--config", cfgPath).CombinedOutput()
	if code := exitCode(err); code != exitUsage || !strings.Contains(string(out), "notify.receivers[0].dingtalk.access_token: environment variable RW_DING_TOKEN is not set") {
		t.Fatalf("validate without the secrets: exit %d\n%s", code, out)
	}

	if out, err := exec.Command(bin, "validate", "--skip-secrets", "--config", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("validate --skip-secrets: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "notify", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "RW_DING_TOKEN=tok", "RW_DING_SECRET=SECsecret")
	rw := testenv.StartProcess(t, "replywatch", cmd)
	testenv.AwaitHTTP(t, 30*time.Second, "http://"+httpAddr+"/readyz")
	now := time.Now()
	a := alerting.Alert{ID: "a-1", Kind: alerting.KindReplyBreach, Status: alerting.Firing, Severity: alerting.Warning,
		Threshold: "3m", ShopID: "s1", BuyerID: "b1", AgentID: "a1", Since: now.Add(-3 * time.Minute), Due: now, At: now, EmittedAt: now}
	v, _ := json.Marshal(a)
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: "cs.alerts", Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("s1"), Value: v}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the breach at the robot", func() error {
		got := robot.Received()
		if len(got) != 1 {
			return fmt.Errorf("%d messages", len(got))
		}
		if !slices.Equal(got[0].Mobiles, []string{"13800000001", "13800000009"}) || !strings.Contains(got[0].Text, "买家 b1 · 客服 小王") {
			return fmt.Errorf("message %q mentions %v", got[0].Text, got[0].Mobiles)
		}
		return nil
	})
	start := time.Now()
	if err := rw.Stop(t, syscall.SIGTERM, 10*time.Second); err != nil {
		t.Errorf("exit: %v", err)
	}
	t.Logf("stopped in %v", time.Since(start))
	if strings.Contains(rw.Output(), "SECsecret") {
		t.Error("the log holds the robot's secret")
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
