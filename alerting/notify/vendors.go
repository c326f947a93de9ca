package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/replywatch/replywatch/config"
)

// Vendor size limits, in bytes of the message text.
const (
	WeComMarkdownMax = 4096
	WeComTextMax     = 2048
	DingTalkMax      = 20000
	FeishuMax        = 20 << 10
)

// WeCom is a WeCom group robot.
type WeCom struct {
	URL      string
	Key      string
	Markdown bool
	Budget   []config.Limit
	Render   Renderer
	Client   *http.Client
}

var wecomCodes = codes{
	rateLimit: map[int]bool{45009: true},
	config:    map[int]bool{93000: true, 40008: true, 40058: true, 93017: true},
}

func (w *WeCom) Limits() []config.Limit { return w.Budget }

// Send posts the message as markdown (mentions as <@userid>) or text
// (mentions by mobile and user id).
func (w *WeCom) Send(ctx context.Context, m *Message, now time.Time) error {
	t := w.Render.Render(m, now)
	var body []byte
	if w.Markdown {
		var tags []string
		for _, p := range t.Mentions {
			if p.WeCom != "" {
				tags = append(tags, "<@"+p.WeCom+">")
			}
		}
		mention := strings.Join(tags, " ")
		var shown int
		body, shown = fitText(t, WeComMarkdownMax, func(title string, lines []string) (string, []byte) {
			content := "**" + title + "**\n" + strings.Join(lines, "\n")
			if mention != "" {
				content += "\n" + mention
			}
			b, _ := json.Marshal(map[string]any{"msgtype": "markdown", "markdown": map[string]string{"content": content}})
			return content, b
		})
		m.Shown = shown
	} else {
		var ids, mobiles []string
		for _, p := range t.Mentions {
			if p.WeCom != "" {
				ids = append(ids, p.WeCom)
			} else if p.Mobile != "" {
				mobiles = append(mobiles, p.Mobile)
			}
		}
		var shown int
		body, shown = fitText(t, WeComTextMax, func(title string, lines []string) (string, []byte) {
			content := title + "\n" + strings.Join(lines, "\n")
			text := map[string]any{"content": content}
			if len(ids) > 0 {
				text["mentioned_list"] = ids
			}
			if len(mobiles) > 0 {
				text["mentioned_mobile_list"] = mobiles
			}
			b, _ := json.Marshal(map[string]any{"msgtype": "text", "text": text})
			return content, b
		})
		m.Shown = shown
	}
	return post(ctx, w.Client, w.URL+"?key="+url.QueryEscape(w.Key), body, nil, wecomCodes)
}

// fitText fits a text whose size limit applies to the content (not the
// JSON around it), and returns the body and how many alerts it names.
func fitText(t Text, max int, enc func(title string, lines []string) (content string, body []byte)) ([]byte, int) {
	_, k := Fit(t, max, func(title string, lines []string) []byte {
		c, _ := enc(title, lines)
		return []byte(c)
	})
	lines := t.Lines[:k]
	if k < len(t.Lines) {
		lines = append(append([]string{}, lines...), t.More(t.Count-k))
	}
	_, body := enc(t.Title, lines)
	return body, shownOf(t, k)
}

// shownOf is how many alerts k kept lines name.
func shownOf(t Text, k int) int {
	if t.Count != len(t.Lines) {
		return t.Count // one alert over several lines
	}
	return k
}

// DingTalk is a DingTalk custom robot with signing.
type DingTalk struct {
	URL         string
	AccessToken string
	Secret      string
	Budget      []config.Limit
	Render      Renderer
	Client      *http.Client
}

var dingtalkCodes = codes{
	rateLimit: map[int]bool{130101: true},
	config:    map[int]bool{310000: true, 300001: true, 400102: true, 300005: true},
}

func (d *DingTalk) Limits() []config.Limit { return d.Budget }

// DingTalkSign is DingTalk's signature: base64 of HMAC-SHA256 keyed by the
// secret over timestamp+"\n"+secret.
func DingTalkSign(timestampMS int64, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(timestampMS, 10) + "\n" + secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Send posts a signed markdown message; mentioned mobiles appear as @mobile
// in the text, which DingTalk needs to show the mention.
func (d *DingTalk) Send(ctx context.Context, m *Message, now time.Time) error {
	t := d.Render.Render(m, now)
	var mobiles, ids, tags []string
	for _, p := range t.Mentions {
		switch {
		case p.DingTalk != "":
			ids = append(ids, p.DingTalk)
			tags = append(tags, "@"+p.DingTalk)
		case p.Mobile != "":
			mobiles = append(mobiles, p.Mobile)
			tags = append(tags, "@"+p.Mobile)
		}
	}
	body, shown := fitText(t, DingTalkMax, func(title string, lines []string) (string, []byte) {
		text := "#### " + title + "\n\n" + strings.Join(lines, "\n\n")
		if len(tags) > 0 {
			text += "\n\n" + strings.Join(tags, " ")
		}
		at := map[string]any{"isAtAll": false}
		if len(mobiles) > 0 {
			at["atMobiles"] = mobiles
		}
		if len(ids) > 0 {
			at["atUserIds"] = ids
		}
		b, _ := json.Marshal(map[string]any{"msgtype": "markdown", "markdown": map[string]string{"title": title, "text": text}, "at": at})
		return text, b
	})
	m.Shown = shown
	ts := now.UnixMilli()
	u := d.URL + "?access_token=" + url.QueryEscape(d.AccessToken) + "&timestamp=" + strconv.FormatInt(ts, 10) +
		"&sign=" + url.QueryEscape(DingTalkSign(ts, d.Secret))
	return post(ctx, d.Client, u, body, nil, dingtalkCodes)
}

// Feishu is a Feishu custom bot, signed when it has a secret.
type Feishu struct {
	URL    string
	Hook   string
	Secret string
	Budget []config.Limit
	Render Renderer
	Client *http.Client
}

var feishuCodes = codes{
	rateLimit: map[int]bool{11232: true, 9499: true},
	config:    map[int]bool{19021: true, 19024: true, 19022: true, 19001: true},
}

func (f *Feishu) Limits() []config.Limit { return f.Budget }

// FeishuSign is Feishu's signature: base64 of HMAC-SHA256 keyed by
// timestamp+"\n"+secret over empty data (unlike DingTalk's).
func FeishuSign(timestampS int64, secret string) string {
	mac := hmac.New(sha256.New, []byte(strconv.FormatInt(timestampS, 10)+"\n"+secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Send posts an interactive card; mentions are <at id=...></at> in its
// lark_md text.
func (f *Feishu) Send(ctx context.Context, m *Message, now time.Time) error {
	t := f.Render.Render(m, now)
	var tags []string
	for _, p := range t.Mentions {
		if p.Feishu != "" {
			tags = append(tags, "<at id="+p.Feishu+"></at>")
		}
	}
	ts := now.Unix()
	var body []byte
	body, m.Shown = fitBody(t, FeishuMax, func(title string, lines []string) []byte {
		text := strings.Join(lines, "\n")
		if len(tags) > 0 {
			text += "\n" + strings.Join(tags, " ")
		}
		msg := map[string]any{
			"msg_type": "interactive",
			"card": map[string]any{
				"config":   map[string]any{"wide_screen_mode": true},
				"header":   map[string]any{"title": map[string]string{"tag": "plain_text", "content": title}, "template": "red"},
				"elements": []any{map[string]any{"tag": "div", "text": map[string]string{"tag": "lark_md", "content": text}}},
			},
		}
		if f.Secret != "" {
			msg["timestamp"] = strconv.FormatInt(ts, 10)
			msg["sign"] = FeishuSign(ts, f.Secret)
		}
		b, _ := json.Marshal(msg)
		return b
	})
	return post(ctx, f.Client, strings.TrimSuffix(f.URL, "/")+"/"+url.PathEscape(f.Hook), body, nil, feishuCodes)
}

// fitBody fits a message whose limit applies to the whole request body.
func fitBody(t Text, max int, enc func(title string, lines []string) []byte) ([]byte, int) {
	body, k := Fit(t, max, enc)
	return body, shownOf(t, k)
}
