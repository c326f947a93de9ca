package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/replywatch/replywatch/config"
)

func sum(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

var testTokens = []config.Token{
	{Name: "wall", SHA256: sum("wall-secret"), Role: config.RoleSupervisor, Shops: []string{"s1", "s2"}},
	{Name: "xiaowang", SHA256: sum("agent-secret"), Role: config.RoleAgent, Agent: "s1-a1"},
}

var identifyCases = []struct {
	name   string
	tokens []config.Token
	remote string
	header string
	cookie string
	code   int
	scope  string
}{
	{"bearer supervisor", testTokens, "10.0.0.5:4000", "Bearer wall-secret", "", 0, "wall"},
	{"bearer agent", testTokens, "10.0.0.5:4000", "Bearer agent-secret", "", 0, "xiaowang"},
	{"cookie", testTokens, "10.0.0.5:4000", "", "agent-secret", 0, "xiaowang"},
	{"header wins over cookie", testTokens, "10.0.0.5:4000", "Bearer wrong", "agent-secret", 401, ""},
	{"no token", testTokens, "10.0.0.5:4000", "", "", 401, ""},
	{"no token from loopback either", testTokens, "127.0.0.1:4000", "", "", 401, ""},
	{"unknown token", testTokens, "10.0.0.5:4000", "Bearer nope", "", 401, ""},
	{"not a bearer", testTokens, "10.0.0.5:4000", "Basic d2FsbA==", "", 401, ""},
	{"the hash is not the token", testTokens, "10.0.0.5:4000", "Bearer " + sum("wall-secret"), "", 401, ""},
	{"open, loopback v4", nil, "127.0.0.1:4000", "", "", 0, "*"},
	{"open, loopback v6", nil, "[::1]:4000", "", "", 0, "*"},
	{"open, another machine", nil, "192.168.1.9:4000", "Bearer wall-secret", "", 403, ""},
}

func TestIdentify(t *testing.T) {
	for _, c := range identifyCases {
		t.Run(c.name, func(t *testing.T) {
			a := NewAuth(c.tokens)
			r := httptest.NewRequest("GET", "/api/v1/alerts", nil)
			r.RemoteAddr = c.remote
			if c.header != "" {
				r.Header.Set("Authorization", c.header)
			}
			if c.cookie != "" {
				r.AddCookie(&http.Cookie{Name: CookieName, Value: c.cookie})
			}
			s, code, _ := a.Identify(r)
			if code != c.code {
				t.Fatalf("code %d, want %d", code, c.code)
			}
			switch {
			case c.scope == "" && s != nil:
				t.Errorf("scope %+v, want none", s)
			case c.scope == "*" && (s == nil || !s.All):
				t.Errorf("scope %+v, want everything", s)
			case c.scope != "" && c.scope != "*" && (s == nil || s.Name != c.scope):
				t.Errorf("scope %+v, want %s", s, c.scope)
			}
		})
	}
}

func TestScope(t *testing.T) {
	a := NewAuth(testTokens)
	sup, agent := a.lookup("wall-secret"), a.lookup("agent-secret")
	for _, c := range []struct {
		s           *Scope
		shop, agent string
		shopOK, see bool
	}{
		{sup, "s1", "s1-a9", true, true},
		{sup, "s3", "s3-a1", false, false},
		{agent, "s1", "s1-a1", false, true},
		{agent, "s1", "s1-a2", false, false},
		{agent, "s1", "", false, false}, // a shop-level alert is the supervisor's
		{&Scope{All: true}, "s9", "", true, true},
	} {
		if got := c.s.Shop(c.shop); got != c.shopOK {
			t.Errorf("%s.Shop(%s) = %v", c.s.Name, c.shop, got)
		}
		if got := c.s.Alert(c.shop, c.agent); got != c.see {
			t.Errorf("%s.Alert(%s, %s) = %v", c.s.Name, c.shop, c.agent, got)
		}
	}
}

// A page opened with ?token= keeps the token in an HttpOnly cookie and
// redirects to the same address without it; an unknown token sets nothing.
func TestPageTokenCookie(t *testing.T) {
	api := &API{Auth: NewAuth(testTokens)}
	mux := http.NewServeMux()
	api.Mount(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/wall?lang=en&token=wall-secret", nil))
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/wall?lang=en" {
		t.Fatalf("GET /wall?token= = %d to %q, want 303 to /wall?lang=en", rec.Code, rec.Header().Get("Location"))
	}
	c := rec.Result().Cookies()
	if len(c) != 1 || c[0].Name != CookieName || c[0].Value != "wall-secret" || !c[0].HttpOnly || c[0].Path != "/" {
		t.Fatalf("cookies %+v, want an HttpOnly %s", c, CookieName)
	}
	// The cookie opens the page and the API.
	for _, path := range []string{"/wall", "/api/v1/alerts?shop=s3"} {
		rec = httptest.NewRecorder()
		r := httptest.NewRequest("GET", path, nil)
		r.AddCookie(c[0])
		mux.ServeHTTP(rec, r)
		want := 200
		if strings.Contains(path, "s3") {
			want = 403
		}
		if rec.Code != want {
			t.Errorf("GET %s with the cookie = %d, want %d", path, rec.Code, want)
		}
	}
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/agent?token=guess", nil))
	if rec.Code != 401 || len(rec.Result().Cookies()) != 0 {
		t.Errorf("unknown token: %d, cookies %v", rec.Code, rec.Result().Cookies())
	}
	// Static files carry no data and need no token.
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/static/wall.js", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "/api/v1/shops") {
		t.Errorf("GET /static/wall.js = %d", rec.Code)
	}
}
