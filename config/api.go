package config

import (
	"fmt"
	"regexp"
)

// API is access to the HTTP API and pages (/api/v1/..., /wall, /agent).
// With no tokens, they answer only to loopback clients.
type API struct {
	Tokens []Token `yaml:"tokens"`
}

// Token is one bearer token, kept as the SHA-256 of its text, with its
// scope: a supervisor sees the listed shops, an agent their own buyers and
// alerts; an alertmanager token only posts Alertmanager's notifications
// to /api/v1/alertmanager and reads nothing.
type Token struct {
	Name string `yaml:"name"`
	// SHA256 is the lowercase hex SHA-256 of the token text.
	SHA256 string   `yaml:"sha256"`
	Role   string   `yaml:"role"`
	Shops  []string `yaml:"shops"`
	Agent  string   `yaml:"agent"`
}

// Token roles.
const (
	RoleSupervisor = "supervisor"
	RoleAgent      = "agent"
	// RoleAlertmanager posts Alertmanager's webhook notifications, which
	// replywatch delivers to its own receivers.
	RoleAlertmanager = "alertmanager"
)

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (c *Config) validateAPI(p *problems) {
	names := map[string]int{}
	hashes := map[string]string{}
	for i, t := range c.API.Tokens {
		path := fmt.Sprintf("api.tokens[%d]", i)
		if t.Name == "" {
			p.add(path+".name", "is required")
		} else if j, dup := names[t.Name]; dup {
			p.add(path+".name", "%q is already the name of api.tokens[%d]", t.Name, j)
		} else {
			names[t.Name] = i
		}
		switch {
		case t.SHA256 == "":
			p.add(path+".sha256", "is required (the lowercase hex SHA-256 of the token)")
		case !sha256Hex.MatchString(t.SHA256):
			// The value is not printed: it may be the token itself, pasted by mistake.
			p.add(path+".sha256", "is not 64 lowercase hex digits (the SHA-256 of the token, not the token)")
		case hashes[t.SHA256] != "":
			p.add(path+".sha256", "is the same as token %q's", hashes[t.SHA256])
		default:
			hashes[t.SHA256] = t.Name
		}
		if !oneOf(p, path+".role", t.Role, RoleSupervisor, RoleAgent, RoleAlertmanager) {
			continue
		}
		switch t.Role {
		case RoleSupervisor:
			if len(t.Shops) == 0 {
				p.add(path+".shops", "a supervisor token needs at least one shop")
			}
			for k, s := range t.Shops {
				if s == "" || len(s) > maxShopID {
					p.add(fmt.Sprintf("%s.shops[%d]", path, k), "%q is not a shop id (1 to %d characters)", s, maxShopID)
				}
			}
			if t.Agent != "" {
				p.add(path+".agent", "only agent tokens name an agent")
			}
		case RoleAgent:
			if t.Agent == "" {
				p.add(path+".agent", "an agent token needs its agent id")
			}
			if len(t.Shops) > 0 {
				p.add(path+".shops", "only supervisor tokens list shops")
			}
		case RoleAlertmanager:
			if len(t.Shops) > 0 {
				p.add(path+".shops", "only supervisor tokens list shops")
			}
			if t.Agent != "" {
				p.add(path+".agent", "only agent tokens name an agent")
			}
		}
	}
}
