package config

import (
	"os"
	"strings"
	"testing"
)

// The README's token example is a valid configuration.
func TestReadmeAPIExample(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, block := range strings.Split(string(data), "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if !strings.HasPrefix(block, "api:") {
			continue
		}
		found++
		cfg, err := Parse([]byte(block))
		if err != nil {
			t.Errorf("README api example: %v\n%s", err, block)
			continue
		}
		if len(cfg.API.Tokens) != 2 || cfg.API.Tokens[0].Role != RoleSupervisor || cfg.API.Tokens[1].Agent != "shop-01-a1" {
			t.Errorf("README api example gives %+v", cfg.API.Tokens)
		}
	}
	if found != 1 {
		t.Errorf("%d api examples in the README, want 1", found)
	}
}
