package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting/notify/notifytest"
	"github.com/replywatch/replywatch/config"
)

var render = Renderer{Language: "zh", People: people}

// msg is a message of n breaches (n > 1: a group) for receiver r.
func msg(n int) *Message {
	root := NewRoute(config.Route{Receiver: "r"})
	m := &Message{Receiver: "r"}
	for i := range n {
		m.Items = append(m.Items, item(breach(i, fmt.Sprintf("b%03d", i)), root))
	}
	return m
}

var sendAt = t0.Add(3*time.Minute + 20*time.Second)

func TestDingTalk(t *testing.T) {
	robot := notifytest.DingTalk(t, "tok", "SECret")
	robot.Now = func() time.Time { return sendAt }
	d := &DingTalk{URL: robot.URL(), AccessToken: "tok", Secret: "SECret", Render: render, Client: http.DefaultClient}
	ctx := context.Background()
	if err := d.Send(ctx, msg(1), sendAt); err != nil {
		t.Fatal(err)
	}
	got := robot.Received()[0]
	want := "#### 【回复超时】店铺 s1\n\n买家 b000 · 客服 小王\n\n开始等待 10:00:00 · 时限 10:03:00 · 已超时 20秒\n\n@dwx @13800000009"
	if got.Text != want || got.Title != "【回复超时】店铺 s1" {
		t.Errorf("text\n%q\nwant\n%q (title %q)", got.Text, want, got.Title)
	}
	if !slices.Equal(got.Mobiles, []string{"13800000009"}) || !slices.Equal(got.UserIDs, []string{"dwx"}) {
		t.Errorf("mentions: mobiles %v user ids %v", got.Mobiles, got.UserIDs)
	}

	// 500 breaches fit in one message within 20000 bytes, the rest counted.
	big := msg(500)
	if err := d.Send(ctx, big, sendAt); err != nil {
		t.Fatal(err)
	}
	text := robot.Received()[1].Text
	if len(text) > DingTalkMax || !strings.Contains(text, fmt.Sprintf("……另有 %d 条未列出", 500-big.Shown)) || big.Shown < 50 {
		t.Errorf("digest of 500: %d bytes, %d named:\n%.300s", len(text), big.Shown, text)
	}
	if !strings.HasPrefix(text, "#### 【回复超时】店铺 s1 共 500 条\n\n买家 b000 ") {
		t.Errorf("digest starts %.80q", text)
	}

	// The 21st message in a minute is refused with 130101: a rate limit.
	for i := 2; i < 20; i++ {
		if err := d.Send(ctx, msg(1), sendAt); err != nil {
			t.Fatal(err)
		}
	}
	var rl *RateLimitError
	if err := d.Send(ctx, msg(1), sendAt); !errors.As(err, &rl) || rl.Code != 130101 {
		t.Errorf("21st send: %v, want a 130101 rate limit", err)
	}

	// A wrong secret, a stale timestamp and a missing keyword are
	// configuration errors.
	robot.Limits = nil
	var ce *ConfigError
	bad := &DingTalk{URL: robot.URL(), AccessToken: "tok", Secret: "wrong", Render: render, Client: http.DefaultClient}
	if err := bad.Send(ctx, msg(1), sendAt); !errors.As(err, &ce) || ce.Code != 310000 {
		t.Errorf("wrong secret: %v", err)
	}
	if err := d.Send(ctx, msg(1), sendAt.Add(-2*time.Hour)); !errors.As(err, &ce) || ce.Code != 310000 {
		t.Errorf("old timestamp: %v", err)
	}
	robot.Keywords = []string{"告警"}
	if err := d.Send(ctx, msg(1), sendAt); !errors.As(err, &ce) || ce.Msg != "keywords not in content" {
		t.Errorf("keyword: %v", err)
	}
}

func TestWeCom(t *testing.T) {
	robot := notifytest.WeCom(t, "k1")
	w := &WeCom{URL: robot.URL(), Key: "k1", Markdown: true, Render: render, Client: http.DefaultClient}
	ctx := context.Background()
	wm := &Message{Items: []*Item{item(warning(0, "b1"), NewRoute(config.Route{Receiver: "r", Mention: "agent"}))}}
	if err := w.Send(ctx, wm, t0.Add(2*time.Minute+15*time.Second)); err != nil {
		t.Fatal(err)
	}
	got := robot.Received()[0]
	want := "**【即将超时】店铺 s1**\n买家 b1 · 客服 小王\n开始等待 10:00:00 · 时限 10:03:00 · 剩余 45秒\n<@wangxiao>"
	if got.Text != want || !slices.Equal(got.UserIDs, []string{"wangxiao"}) {
		t.Errorf("markdown\n%q\nwant\n%q", got.Text, want)
	}
	big := msg(300)
	if err := w.Send(ctx, big, sendAt); err != nil {
		t.Fatalf("a 300-alert digest must fit WeCom's 4096 bytes: %v", err)
	}
	if n := len(robot.Received()[1].Text); n > WeComMarkdownMax || big.Shown == 0 || big.Shown == 300 {
		t.Errorf("digest %d bytes, %d named", n, big.Shown)
	}
	// Text messages mention by mobile when no user id is known.
	txt := &WeCom{URL: robot.URL(), Key: "k1", Render: render, Client: http.DefaultClient}
	if err := txt.Send(ctx, msg(1), sendAt); err != nil {
		t.Fatal(err)
	}
	if got := robot.Received()[2]; !slices.Equal(got.UserIDs, []string{"wangxiao", "lili"}) || len(got.Mobiles) != 0 {
		t.Errorf("text mentions %v %v", got.UserIDs, got.Mobiles)
	}
	var ce *ConfigError
	if err := (&WeCom{URL: robot.URL(), Key: "nope", Render: render, Client: http.DefaultClient}).Send(ctx, msg(1), sendAt); !errors.As(err, &ce) || ce.Code != 93000 {
		t.Errorf("wrong key: %v", err)
	}
	for len(robot.Received()) < 20 {
		if err := w.Send(ctx, msg(1), sendAt); err != nil {
			t.Fatal(err)
		}
	}
	var rl *RateLimitError
	if err := w.Send(ctx, msg(1), sendAt); !errors.As(err, &rl) || rl.Code != 45009 {
		t.Errorf("21st: %v", err)
	}
}

func TestFeishu(t *testing.T) {
	robot := notifytest.Feishu(t, "hook-1", "fsSecret")
	f := &Feishu{URL: robot.URL(), Hook: "hook-1", Secret: "fsSecret", Render: render, Client: http.DefaultClient}
	ctx := context.Background()
	if err := f.Send(ctx, msg(1), time.Now()); err != nil {
		t.Fatal(err)
	}
	got := robot.Received()[0]
	if got.Title != "【回复超时】店铺 s1" || !slices.Equal(got.UserIDs, []string{"ou_wx", "ou_li"}) ||
		!strings.HasPrefix(got.Text, "买家 b000 · 客服 小王\n开始等待 10:00:00 · 时限 10:03:00 · 已超时 ") {
		t.Errorf("card %q / %q / %v", got.Title, got.Text, got.UserIDs)
	}
	big := msg(500)
	if err := f.Send(ctx, big, time.Now()); err != nil {
		t.Fatalf("digest: %v", err)
	}
	if n := len(robot.Received()[1].Body); n > FeishuMax || big.Shown == 0 {
		t.Errorf("digest body %d bytes, %d named", n, big.Shown)
	}
	// Five a second.
	var rl *RateLimitError
	var err error
	for range 6 {
		if err = f.Send(ctx, msg(1), time.Now()); err != nil {
			break
		}
	}
	if !errors.As(err, &rl) || rl.Code != 11232 {
		t.Errorf("sixth in a second: %v", err)
	}
	robot.Limits = nil
	var ce *ConfigError
	bad := &Feishu{URL: robot.URL(), Hook: "hook-1", Secret: "other", Render: render, Client: http.DefaultClient}
	if err := bad.Send(ctx, msg(1), time.Now()); !errors.As(err, &ce) || ce.Code != 19021 {
		t.Errorf("wrong secret: %v", err)
	}
	robot.Keywords = []string{"replywatch"}
	if err := f.Send(ctx, msg(1), time.Now()); !errors.As(err, &ce) || ce.Code != 19024 {
		t.Errorf("keyword: %v", err)
	}
	// The signatures differ: DingTalk signs timestamp+"\n"+secret with the
	// secret as key, Feishu signs nothing with it as the key.
	if DingTalkSign(1700000000000, "s") == FeishuSign(1700000000, "s") {
		t.Error("the two signatures should differ")
	}
}

func TestWebhook(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	hook := notifytest.Webhook(t, secret)
	w, err := NewWebhook(hook.Server.URL, secret, nil, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	m := msg(3)
	for range 2 {
		if err := w.Send(context.Background(), m, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	bodies, ids := hook.Bodies()
	var b WebhookBody
	if err := json.Unmarshal(bodies[0], &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Data.Alerts) != 3 || b.Data.Alerts[0].ID != m.Items[0].Alert.ID || b.Type != "replywatch.alerts" {
		t.Errorf("body %s", bodies[0])
	}
	if ids[0] != ids[1] {
		t.Errorf("a resend must keep its webhook-id: %v", ids)
	}
	wrong, _ := NewWebhook(hook.Server.URL, "whsec_"+strings.Repeat("A", 32), nil, http.DefaultClient)
	var ce *ConfigError
	if err := wrong.Send(context.Background(), m, time.Now()); !errors.As(err, &ce) || ce.Code != 401 || hook.Rejected() != 1 {
		t.Errorf("wrong secret: %v", err)
	}
}

func TestLogReceiver(t *testing.T) {
	var out bytes.Buffer
	l := &Log{Name: "log", Out: &out, Render: render}
	if err := l.Send(context.Background(), msg(1), sendAt); err != nil {
		t.Fatal(err)
	}
	want := "→ log: 【回复超时】店铺 s1 | 买家 b000 · 客服 小王 | 开始等待 10:00:00 · 时限 10:03:00 · 已超时 20秒 | @小王 @老李\n"
	if out.String() != want {
		t.Errorf("%q\nwant %q", out.String(), want)
	}
}

func httpClient() *http.Client { return &http.Client{Timeout: 5 * time.Second} }
