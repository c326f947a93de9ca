// Package notifytest holds emulators of the chat robots replywatch
// notifies (WeCom, DingTalk and Feishu custom robots, and a Standard
// Webhooks endpoint) as httptest servers for tests. Each checks what the
// real service checks (key or token, signature and its timestamp window,
// keywords, body shape, size limits), enforces the real rate limits,
// answers with the vendor's real error codes, and records what it
// accepted.
package notifytest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Received is one accepted message.
type Received struct {
	At time.Time
	// Title and Text are the message's title (DingTalk, Feishu) and text
	// as the vendor shows it.
	Title string
	Text  string
	// Mobiles and UserIDs are the @-mentions the vendor resolves.
	Mobiles []string
	UserIDs []string
	Body    []byte
}

// Robot is one emulated robot.
type Robot struct {
	Server *httptest.Server
	// Keywords, when set, must appear in the text (DingTalk and Feishu
	// security setting "custom keywords").
	Keywords []string
	// Limits are the rate limits: at most Messages per Per, sliding.
	Limits []Limit
	// Now is the service's clock (time.Now when nil).
	Now func() time.Time

	kind   string
	cred   string // WeCom key, DingTalk access token, Feishu hook id
	secret string

	mu       sync.Mutex
	received []Received
	codes    []int
	refused  []time.Time // when each code was answered
	requests []time.Time
}

// Limit is a rate limit.
type Limit struct {
	Messages int
	Per      time.Duration
}

// Received returns the accepted messages.
func (r *Robot) Received() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Received(nil), r.received...)
}

// Codes returns the non-zero codes answered, in order.
func (r *Robot) Codes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.codes...)
}

// Refused returns when each non-zero code was answered, in order.
func (r *Robot) Refused() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.refused...)
}

// URL is the endpoint to configure as the receiver's url.
func (r *Robot) URL() string {
	switch r.kind {
	case "wecom":
		return r.Server.URL + "/cgi-bin/webhook/send"
	case "dingtalk":
		return r.Server.URL + "/robot/send"
	}
	return r.Server.URL + "/open-apis/bot/v2/hook"
}

func (r *Robot) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// overLimit counts a request against the limits.
func (r *Robot) overLimit(now time.Time) bool {
	for _, l := range r.Limits {
		n := 0
		for _, t := range r.requests {
			if now.Sub(t) < l.Per {
				n++
			}
		}
		if n >= l.Messages {
			return true
		}
	}
	r.requests = append(r.requests, now)
	return false
}

func (r *Robot) answer(w http.ResponseWriter, code int, msg string) {
	if code != 0 {
		r.codes = append(r.codes, code)
		r.refused = append(r.refused, time.Now())
	}
	w.Header().Set("Content-Type", "application/json")
	if r.kind == "feishu" {
		_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "msg": msg, "data": map[string]any{}})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"errcode": code, "errmsg": msg})
}

func (r *Robot) hasKeyword(text string) bool {
	if len(r.Keywords) == 0 {
		return true
	}
	for _, k := range r.Keywords {
		if strings.Contains(text, k) {
			return true
		}
	}
	return false
}

func start(t testing.TB, r *Robot, h http.HandlerFunc) *Robot {
	r.Server = httptest.NewServer(h)
	t.Cleanup(r.Server.Close)
	return r
}

// WeCom emulates a WeCom group robot with key: 20 messages a minute,
// markdown content up to 4096 bytes, text up to 2048.
func WeCom(t testing.TB, key string) *Robot {
	r := &Robot{kind: "wecom", cred: key, Limits: []Limit{{20, time.Minute}}}
	return start(t, r, func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if req.Method != http.MethodPost || req.URL.Path != "/cgi-bin/webhook/send" {
			http.NotFound(w, req)
			return
		}
		if req.URL.Query().Get("key") != r.cred {
			r.answer(w, 93000, "invalid webhook url, hint: key is invalid")
			return
		}
		var body struct {
			MsgType  string `json:"msgtype"`
			Markdown *struct {
				Content string `json:"content"`
			} `json:"markdown"`
			Text *struct {
				Content             string   `json:"content"`
				MentionedList       []string `json:"mentioned_list"`
				MentionedMobileList []string `json:"mentioned_mobile_list"`
			} `json:"text"`
		}
		raw, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(raw, &body); err != nil {
			r.answer(w, 40001, "invalid json")
			return
		}
		rec := Received{Body: raw}
		switch {
		case body.MsgType == "markdown" && body.Markdown != nil:
			if len(body.Markdown.Content) > 4096 {
				r.answer(w, 40058, "markdown.content exceed max length 4096")
				return
			}
			rec.Text = body.Markdown.Content
			for _, part := range strings.Split(rec.Text, "<@")[1:] {
				if id, _, ok := strings.Cut(part, ">"); ok {
					rec.UserIDs = append(rec.UserIDs, id)
				}
			}
		case body.MsgType == "text" && body.Text != nil:
			if len(body.Text.Content) > 2048 {
				r.answer(w, 40058, "text.content exceed max length 2048")
				return
			}
			rec.Text = body.Text.Content
			rec.UserIDs, rec.Mobiles = body.Text.MentionedList, body.Text.MentionedMobileList
		default:
			r.answer(w, 40008, "invalid message type")
			return
		}
		now := r.now()
		if r.overLimit(now) {
			r.answer(w, 45009, "api freq out of limit")
			return
		}
		rec.At = now
		r.received = append(r.received, rec)
		r.answer(w, 0, "ok")
	})
}

// DingTalk emulates a DingTalk custom robot with signing: token, a
// timestamp within an hour of the service's clock, the HMAC-SHA256
// signature of timestamp+"\n"+secret, 20 messages a minute, 20000 bytes.
func DingTalk(t testing.TB, token, secret string) *Robot {
	r := &Robot{kind: "dingtalk", cred: token, secret: secret, Limits: []Limit{{20, time.Minute}}}
	return start(t, r, func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if req.Method != http.MethodPost || req.URL.Path != "/robot/send" {
			http.NotFound(w, req)
			return
		}
		q := req.URL.Query()
		if q.Get("access_token") != r.cred {
			r.answer(w, 300001, "token is not exist")
			return
		}
		now := r.now()
		ts, err := strconv.ParseInt(q.Get("timestamp"), 10, 64)
		if err != nil || now.Sub(time.UnixMilli(ts)).Abs() > time.Hour {
			r.answer(w, 310000, "invalid timestamp")
			return
		}
		mac := hmac.New(sha256.New, []byte(r.secret))
		mac.Write([]byte(q.Get("timestamp") + "\n" + r.secret))
		if q.Get("sign") != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
			r.answer(w, 310000, "sign not match")
			return
		}
		var body struct {
			MsgType  string `json:"msgtype"`
			Markdown *struct {
				Title string `json:"title"`
				Text  string `json:"text"`
			} `json:"markdown"`
			At struct {
				AtMobiles []string `json:"atMobiles"`
				AtUserIDs []string `json:"atUserIds"`
			} `json:"at"`
		}
		raw, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(raw, &body); err != nil || body.MsgType != "markdown" || body.Markdown == nil ||
			body.Markdown.Title == "" || body.Markdown.Text == "" {
			r.answer(w, 400105, "msgtype or content missing")
			return
		}
		if len(body.Markdown.Text) > 20000 {
			r.answer(w, 460101, "message too long")
			return
		}
		if !r.hasKeyword(body.Markdown.Text) {
			r.answer(w, 310000, "keywords not in content")
			return
		}
		if r.overLimit(now) {
			r.answer(w, 130101, "send too fast, exceed 20 times per minute")
			return
		}
		// DingTalk shows a mention only when "@mobile" is in the text.
		var mobiles []string
		for _, m := range body.At.AtMobiles {
			if strings.Contains(body.Markdown.Text, "@"+m) {
				mobiles = append(mobiles, m)
			}
		}
		r.received = append(r.received, Received{At: now, Title: body.Markdown.Title, Text: body.Markdown.Text,
			Mobiles: mobiles, UserIDs: body.At.AtUserIDs, Body: raw})
		r.answer(w, 0, "ok")
	})
}

// Feishu emulates a Feishu custom bot, signed when secret is set: the
// HMAC-SHA256 keyed by timestamp+"\n"+secret over empty data, a timestamp
// within an hour; 5 messages a second and 100 a minute; 20 KB bodies.
func Feishu(t testing.TB, hook, secret string) *Robot {
	r := &Robot{kind: "feishu", cred: hook, secret: secret, Limits: []Limit{{5, time.Second}, {100, time.Minute}}}
	return start(t, r, func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		id, ok := strings.CutPrefix(req.URL.Path, "/open-apis/bot/v2/hook/")
		if req.Method != http.MethodPost || !ok {
			http.NotFound(w, req)
			return
		}
		if id != r.cred {
			r.answer(w, 19001, "param invalid: incoming webhook access token invalid")
			return
		}
		raw, _ := io.ReadAll(req.Body)
		if len(raw) > 20<<10 {
			r.answer(w, 9499, "request body too large")
			return
		}
		var body struct {
			Timestamp string `json:"timestamp"`
			Sign      string `json:"sign"`
			MsgType   string `json:"msg_type"`
			Card      *struct {
				Header struct {
					Title struct {
						Content string `json:"content"`
					} `json:"title"`
				} `json:"header"`
				Elements []struct {
					Tag  string `json:"tag"`
					Text struct {
						Tag     string `json:"tag"`
						Content string `json:"content"`
					} `json:"text"`
				} `json:"elements"`
			} `json:"card"`
		}
		if err := json.Unmarshal(raw, &body); err != nil || body.MsgType != "interactive" || body.Card == nil {
			r.answer(w, 19002, "params error, msg_type or card missing")
			return
		}
		now := r.now()
		if r.secret != "" {
			ts, err := strconv.ParseInt(body.Timestamp, 10, 64)
			mac := hmac.New(sha256.New, []byte(body.Timestamp+"\n"+r.secret))
			if err != nil || now.Sub(time.Unix(ts, 0)).Abs() > time.Hour || body.Sign != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
				r.answer(w, 19021, "sign match fail or timestamp is not within one hour from current time")
				return
			}
		}
		var text []string
		for _, e := range body.Card.Elements {
			text = append(text, e.Text.Content)
		}
		rec := Received{Title: body.Card.Header.Title.Content, Text: strings.Join(text, "\n"), Body: raw}
		if !r.hasKeyword(rec.Title + rec.Text) {
			r.answer(w, 19024, "Key Words Not Found")
			return
		}
		if r.overLimit(now) {
			r.answer(w, 11232, "frequency limited psm")
			return
		}
		for _, part := range strings.Split(rec.Text, "<at id=")[1:] {
			if id, _, ok := strings.Cut(part, "></at>"); ok {
				rec.UserIDs = append(rec.UserIDs, id)
			}
		}
		rec.At = now
		r.received = append(r.received, rec)
		r.answer(w, 0, "success")
	})
}

// Hook is an endpoint that verifies Standard Webhooks signatures with the
// spec's library (which also enforces its five-minute timestamp window).
type Hook struct {
	Server *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	ids    []string
	bad    int
}

// Webhook starts a Standard Webhooks endpoint for the "whsec_..." secret.
func Webhook(t testing.TB, secret string) *Hook {
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := &Hook{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := v.Verify(raw, req.Header); err != nil {
			h.bad++
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		h.bodies = append(h.bodies, raw)
		h.ids = append(h.ids, req.Header.Get("webhook-id"))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Server.Close)
	return h
}

// Bodies returns the verified bodies, and their webhook-ids.
func (h *Hook) Bodies() ([][]byte, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.bodies...), append([]string(nil), h.ids...)
}

// Rejected counts requests whose signature did not verify.
func (h *Hook) Rejected() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bad
}
