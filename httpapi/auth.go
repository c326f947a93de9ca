package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/replywatch/replywatch/config"
)

// CookieName is the cookie a page's token is kept in.
const CookieName = "rw_token"

// Scope is what one caller may see: every shop (a loopback caller when no
// token is configured), a supervisor's shops, or one agent's own buyers and
// alerts.
type Scope struct {
	// Name is the token's name ("" for loopback access): never the token.
	Name  string
	Role  string
	Shops map[string]bool
	Agent string
	// All is set for loopback access without tokens.
	All bool
}

// Shop reports whether the scope may see shop's figures and alerts. An
// agent sees no shop as a whole.
func (s *Scope) Shop(shop string) bool {
	return s.All || s.Role == config.RoleSupervisor && s.Shops[shop]
}

// Alert reports whether the scope may see an alert of shop and agent.
func (s *Scope) Alert(shop, agent string) bool {
	if s.Role == config.RoleAgent {
		return agent == s.Agent
	}
	return s.Shop(shop)
}

// Auth checks bearer tokens against their configured SHA-256.
type Auth struct {
	tokens []token
}

type token struct {
	hash  [sha256.Size]byte
	scope Scope
}

// NewAuth knows the configured tokens (already validated).
func NewAuth(tokens []config.Token) *Auth {
	a := &Auth{}
	for _, t := range tokens {
		var e token
		if b, err := hex.DecodeString(t.SHA256); err == nil && len(b) == sha256.Size {
			copy(e.hash[:], b)
		}
		e.scope = Scope{Name: t.Name, Role: t.Role, Agent: t.Agent, Shops: map[string]bool{}}
		for _, s := range t.Shops {
			e.scope.Shops[s] = true
		}
		a.tokens = append(a.tokens, e)
	}
	return a
}

// Open reports whether no token is configured: then only loopback callers
// are served, and they see everything.
func (a *Auth) Open() bool { return len(a.tokens) == 0 }

// lookup finds the scope of a token text. Every configured hash is
// compared in constant time, whichever matches.
func (a *Auth) lookup(text string) *Scope {
	if text == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(text))
	var found *Scope
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], a.tokens[i].hash[:]) == 1 {
			found = &a.tokens[i].scope
		}
	}
	return found
}

// tokenOf is the request's token: the bearer header, else the cookie.
func tokenOf(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		return ""
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}

// loopback reports whether the request comes from this machine.
func loopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Identify returns the caller's scope, or the HTTP status and message to
// refuse with: 401 without a token or with an unknown one, 403 from
// another machine when no token is configured.
func (a *Auth) Identify(r *http.Request) (*Scope, int, string) {
	if a.Open() {
		if loopback(r) {
			return &Scope{All: true}, 0, ""
		}
		return nil, http.StatusForbidden, "no api.tokens are configured: the API answers only on loopback"
	}
	text := tokenOf(r)
	if text == "" {
		return nil, http.StatusUnauthorized, "a bearer token is required"
	}
	s := a.lookup(text)
	if s == nil {
		return nil, http.StatusUnauthorized, "unknown token"
	}
	return s, 0, ""
}

// withoutToken is u with its token query parameter removed.
func withoutToken(u *url.URL) string {
	q := u.Query()
	q.Del("token")
	out := u.Path
	if len(q) > 0 {
		out += "?" + q.Encode()
	}
	return out
}
