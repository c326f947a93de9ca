package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/replywatch/replywatch/config"
)

// Receiver delivers messages to one destination. Send returns nil only
// when the destination accepted the message; a *RateLimitError or a
// *ConfigError says what the destination answered.
type Receiver interface {
	Send(ctx context.Context, m *Message, now time.Time) error
	// Limits are the vendor's budget for this destination.
	Limits() []config.Limit
}

// RateLimitError is a vendor saying "too fast": wait and send again.
type RateLimitError struct {
	Code int
	Msg  string
	Wait time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("rate limited (errcode %d: %s)", e.Code, e.Msg)
}

// ConfigError is a vendor refusing the message for a reason sending it
// again cannot fix (signature, keyword, token): logged once, counted and
// shown on /readyz until a send succeeds.
type ConfigError struct {
	Code int
	Msg  string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("configuration error (errcode %d: %s)", e.Code, e.Msg)
}

// vendorAnswer is the body WeCom, DingTalk and Feishu answer with: HTTP
// 200 with a non-zero code is a failure.
type vendorAnswer struct {
	ErrCode *int   `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
	Code    *int   `json:"code"`
	Msg     string `json:"msg"`
	// Feishu's older answer.
	StatusCode *int `json:"StatusCode"`
}

func (v vendorAnswer) code() (int, string) {
	switch {
	case v.ErrCode != nil:
		return *v.ErrCode, v.ErrMsg
	case v.Code != nil:
		return *v.Code, v.Msg
	case v.StatusCode != nil:
		return *v.StatusCode, v.Msg
	}
	return 0, ""
}

// codes classifies a vendor's error codes.
type codes struct {
	rateLimit map[int]bool
	config    map[int]bool
}

// post sends body and reads a vendor answer.
func post(ctx context.Context, c *http.Client, url string, body []byte, hdr http.Header, cl codes) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return &ConfigError{Msg: "bad URL"}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("posting: %w", redactURL(err))
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusTooManyRequests {
		return &RateLimitError{Code: resp.StatusCode, Msg: resp.Status, Wait: retryAfter(resp)}
	}
	if resp.StatusCode >= 500 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	var ans vendorAnswer
	jerr := json.Unmarshal(data, &ans)
	code, msg := ans.code()
	switch {
	case jerr == nil && cl.rateLimit[code]:
		return &RateLimitError{Code: code, Msg: msg}
	case jerr == nil && cl.config[code]:
		return &ConfigError{Code: code, Msg: msg}
	case resp.StatusCode >= 400:
		return &ConfigError{Code: resp.StatusCode, Msg: strings.TrimSpace(resp.Status + " " + msg)}
	case jerr != nil:
		return fmt.Errorf("answered %s with a body that is not the vendor's JSON: %.100q", resp.Status, data)
	case code != 0:
		return fmt.Errorf("answered errcode %d: %s", code, msg)
	}
	return nil
}

func retryAfter(resp *http.Response) time.Duration {
	if s := resp.Header.Get("Retry-After"); s != "" {
		var n int
		if _, err := fmt.Sscan(s, &n); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return 0
}

// redactURL removes the URL (which holds the robot's credential) from an
// HTTP client error.
func redactURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
