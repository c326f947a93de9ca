package deployments

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/replywatch/replywatch/config"
)

// TestDeploymentConfigsValidate parses the replywatch configuration the
// Compose stack mounts (and its commented notifier example, uncommented)
// and the config section of the chart's full values, with the notifier's
// secrets resolved from the variables the chart sets.
func TestDeploymentConfigsValidate(t *testing.T) {
	compose := string(readFile(t, "compose/replywatch.yaml"))
	if _, err := config.Parse([]byte(compose)); err != nil {
		t.Errorf("compose/replywatch.yaml: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(compose, "\n") {
		if rest, ok := strings.CutPrefix(l, "  #   "); ok {
			l = "  " + rest
		}
		lines = append(lines, l)
	}
	cfg, err := config.Parse([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("compose/replywatch.yaml with its notify example: %v", err)
	}
	env := map[string]string{"DING_TOKEN": "t", "DING_SECRET": "SECs"}
	if err := cfg.CheckSecrets(func(k string) string { return env[k] }); err != nil || len(cfg.Notify.Receivers) != 1 {
		t.Errorf("the compose notify example: %v (%d receivers)", err, len(cfg.Notify.Receivers))
	}

	var values struct {
		Config         yaml.Node `yaml:"config"`
		WebhookSecrets struct {
			Env map[string]string `yaml:"env"`
		} `yaml:"webhookSecrets"`
	}
	if err := yaml.Unmarshal(readFile(t, "helm/ci-full-values.yaml"), &values); err != nil {
		t.Fatal(err)
	}
	doc, err := yaml.Marshal(&values.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err = config.Parse(doc)
	if err != nil {
		t.Fatalf("helm/ci-full-values.yaml config: %v", err)
	}
	for _, r := range cfg.Notify.Receivers {
		if r.DingTalk != nil {
			for _, s := range []config.Secret{r.DingTalk.AccessToken, r.DingTalk.Secret} {
				name := strings.TrimSuffix(strings.TrimPrefix(string(s), "${"), "}")
				if _, ok := values.WebhookSecrets.Env[name]; !ok {
					t.Errorf("receiver %s reads ${%s}, which webhookSecrets.env does not set", r.Name, name)
				}
			}
		}
	}
}
