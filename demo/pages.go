package demo

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/sim"
)

// pageTokens are the demo's API tokens, new on every run: a supervisor of
// every simulated shop and the first shop's first agent.
type pageTokens struct {
	base              string // http://host:port, once listening
	supervisor, token string
	agent             string
}

func (p *pageTokens) wall() string      { return p.base + "/wall?token=" + p.supervisor }
func (p *pageTokens) agentPage() string { return p.base + "/agent?token=" + p.token }

func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a page token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func hashHex(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// demoTokens configures the demo's tokens in cfg.
func demoTokens(cfg *config.Config, shops []sim.Shop) (*pageTokens, error) {
	p := &pageTokens{}
	var err error
	if p.supervisor, err = newToken(); err != nil {
		return nil, err
	}
	if p.token, err = newToken(); err != nil {
		return nil, err
	}
	sup := config.Token{Name: "demo-wall", SHA256: hashHex(p.supervisor), Role: config.RoleSupervisor}
	for _, s := range shops {
		sup.Shops = append(sup.Shops, s.ID)
	}
	cfg.API.Tokens = append(cfg.API.Tokens, sup)
	if len(shops) > 0 && len(shops[0].Agents) > 0 {
		p.agent = shops[0].Agents[0]
		cfg.API.Tokens = append(cfg.API.Tokens, config.Token{Name: "demo-agent", SHA256: hashHex(p.token),
			Role: config.RoleAgent, Agent: p.agent})
	}
	return p, nil
}
