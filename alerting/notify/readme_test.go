package notify

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/alerting/notify/notifytest"
	"github.com/replywatch/replywatch/config"
)

// readmeBlock returns the first fenced block of the given language after
// a heading of README.md.
func readmeBlock(t *testing.T, heading, lang string) string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q", heading)
	}
	_, rest, ok = strings.Cut(rest, "```"+lang+"\n")
	if !ok {
		t.Fatalf("no ```%s block after %q", lang, heading)
	}
	block, _, _ := strings.Cut(rest, "```\n")
	return block
}

// TestReadmeDingTalk runs the README's DingTalk configuration: a warning
// reaches the agents' robot mentioning the agent, a breach reaches the
// supervisors' robot mentioning agent and supervisor, in the words the
// README shows.
func TestReadmeDingTalk(t *testing.T) {
	dir := t.TempDir()
	doc := strings.ReplaceAll(readmeBlock(t, "### Adding a DingTalk robot", "yaml"), "/run/secrets/", dir+"/")
	for name, v := range map[string]string{"leads-token": "tok-leads\n", "leads-secret": "SEC-leads\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("the README's configuration: %v", err)
	}
	env := map[string]string{"DING_TOKEN": "tok-cs", "DING_SECRET": "SEC-cs"}
	getenv := func(k string) string { return env[k] }
	if err := cfg.CheckSecrets(getenv); err != nil {
		t.Fatal(err)
	}
	cs, leads := notifytest.DingTalk(t, "tok-cs", "SEC-cs"), notifytest.DingTalk(t, "tok-leads", "SEC-leads")
	cfg.Notify.Receivers[0].DingTalk.URL = cs.URL()
	cfg.Notify.Receivers[1].DingTalk.URL = leads.URL()
	n, err := FromConfig(cfg, Deps{Registry: prometheus.NewRegistry(), Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	send := func(a alerting.Alert, now time.Time) {
		t.Helper()
		for _, r := range n.o.Route.For(&a) {
			m := &Message{Items: []*Item{{Alert: a, Receiver: r.Receiver, Route: r, Mentions: n.o.People.Mentions(&a, r.Mention)}}}
			if err := n.o.Receivers[r.Receiver].Send(context.Background(), m, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	w := warning(0, "b17")
	w.ShopID, w.AgentID = "s1", "a1"
	send(w, time.Now())
	b := breach(0, "b17")
	b.AgentID = "a1"
	leads.Now = func() time.Time { return b.Due.Add(20 * time.Second) }
	send(b, b.Due.Add(20*time.Second))

	if got := cs.Received(); len(got) != 1 || !slices.Equal(got[0].Mobiles, []string{"13800000001"}) {
		t.Fatalf("agents' robot: %+v", got)
	}
	got := leads.Received()
	if len(got) != 1 || !slices.Equal(got[0].Mobiles, []string{"13800000001", "13800000009"}) {
		t.Fatalf("supervisors' robot: %+v", got)
	}
	if want := readmeBlock(t, "## Telling people: the notifier", ""); got[0].Text+"\n" != want {
		t.Errorf("the breach reads\n%s\nthe README shows\n%s", got[0].Text, want)
	}
}
