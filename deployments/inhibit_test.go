package deployments

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replywatch/replywatch/internal/testenv"
)

// inhibitCases: a source alert silences its targets of the same job (and
// instance, where the rule says so), never another job's. Each case has
// jobs of its own, so that one case's ReplywatchDown cannot reach another.
var inhibitCases = []struct {
	source        map[string]string
	target, other map[string]string // other differs from target only in job or instance
}{
	{map[string]string{"alertname": "ReplywatchDown", "job": "rw-a", "team": "sre", "severity": "critical"},
		map[string]string{"alertname": "ReplywatchConsumerLagGrowing", "job": "rw-a", "topic": "cs.chat", "team": "sre", "severity": "warning"},
		map[string]string{"alertname": "ReplywatchConsumerLagGrowing", "job": "rw-b", "topic": "cs.chat", "team": "sre", "severity": "warning"}},
	{map[string]string{"alertname": "ReplywatchTimersBehind", "job": "rw-c", "topic": "cs.chat", "team": "sre", "severity": "critical"},
		map[string]string{"alertname": "ReplywatchShopUncovered", "job": "rw-c", "shop": "s1", "team": "supervisors", "severity": "critical"},
		map[string]string{"alertname": "ReplywatchShopUncovered", "job": "rw-d", "shop": "s2", "team": "supervisors", "severity": "critical"}},
	{map[string]string{"alertname": "ReplywatchTargetDown", "job": "rw-e", "instance": "rw-1:8080", "team": "sre", "severity": "warning"},
		map[string]string{"alertname": "ReplywatchNotReady", "job": "rw-e", "instance": "rw-1:8080", "team": "sre", "severity": "warning"},
		map[string]string{"alertname": "ReplywatchNotReady", "job": "rw-e", "instance": "rw-2:8080", "team": "sre", "severity": "warning"}},
}

// TestInhibitRules posts alerts to a real Alertmanager running the kit's
// config and reads back which it inhibited.
func TestInhibitRules(t *testing.T) {
	cfg, _ := filepath.Abs("alertmanager/alertmanager.yml")
	api := "http://" + testenv.Alertmanager(t, cfg) + "/api/v2/alerts"

	var posted []map[string]any
	for _, c := range inhibitCases {
		for _, labels := range []map[string]string{c.source, c.target, c.other} {
			posted = append(posted, map[string]any{"labels": labels, "startsAt": time.Now().Add(-time.Minute).Format(time.RFC3339)})
		}
	}
	body, _ := json.Marshal(posted)
	resp, err := http.Post(api, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("posting alerts: %s", resp.Status)
	}

	key := func(l map[string]string) string { return fmt.Sprint(l) }
	testenv.Eventually(t, 30*time.Second, "inhibitions", func() error {
		resp, err := http.Get(api)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var got []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				InhibitedBy []string `json:"inhibitedBy"`
			} `json:"status"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			return err
		}
		inhibited := map[string]bool{}
		for _, a := range got {
			inhibited[key(a.Labels)] = len(a.Status.InhibitedBy) > 0
		}
		var wrong []string
		for _, c := range inhibitCases {
			for _, w := range []struct {
				labels map[string]string
				want   bool
			}{{c.source, false}, {c.target, true}, {c.other, false}} {
				if got, ok := inhibited[key(w.labels)]; !ok || got != w.want {
					wrong = append(wrong, fmt.Sprintf("%v inhibited %v (listed %v), want %v", w.labels, got, ok, w.want))
				}
			}
		}
		if len(wrong) > 0 {
			return fmt.Errorf("%s", strings.Join(wrong, "; "))
		}
		return nil
	})
}
