package deployments

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// testKit is a small deployments directory: the inputs of the checks' own
// tests, which break one thing in a copy of it at a time.
const testKit = "testdata/kit"

// edit is one change to a file of the test kit.
type edit struct {
	file     string // slash path relative to the kit
	old, new string // old must occur in the file
}

// kitWith copies the test kit to a temporary directory, applies the edits
// and returns the copy's root.
func kitWith(t *testing.T, edits ...edit) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(testKit, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(testKit, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatalf("copying test kit: %v", err)
	}
	for _, e := range edits {
		p := filepath.Join(dst, filepath.FromSlash(e.file))
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("edit: %v", err)
		}
		if !strings.Contains(string(data), e.old) {
			t.Fatalf("edit: %s does not contain %q", e.file, e.old)
		}
		if err := os.WriteFile(p, []byte(strings.Replace(string(data), e.old, e.new, 1)), 0o644); err != nil {
			t.Fatalf("edit: %v", err)
		}
	}
	return dst
}

// assertProblems fails unless got holds exactly one problem per wanted
// substring.
func assertProblems(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			if strings.Contains(g, w) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem mentions %q; got:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

// tool returns the path of a command the checks run, skipping the test when
// it is not installed (.ci/deploy-checks.sh installs it).
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (.ci/deploy-checks.sh installs it)", name)
	}
	return p
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// knownMetrics are the series replywatch exports (CONTRACT.md §4 and the
// additions the dashboards and rules rely on), without histogram suffixes.
// Recording rules are added from the rule file.
var knownMetrics = map[string]bool{
	"replywatch_waiting_buyers":                  true,
	"replywatch_oldest_wait_seconds":             true,
	"replywatch_consulting_buyers":               true,
	"replywatch_reply_breached_buyers":           true,
	"replywatch_reply_rate":                      true,
	"replywatch_buyer_messages":                  true,
	"replywatch_response_30s_rate":               true,
	"replywatch_avg_response_seconds":            true,
	"replywatch_seats":                           true,
	"replywatch_idle_seats":                      true,
	"replywatch_uncovered_seconds":               true,
	"replywatch_agent_seat":                      true,
	"replywatch_agent_idle_seconds":              true,
	"replywatch_shop_rules_clock_seconds":        true,
	"replywatch_orders_awaiting_shipment":        true,
	"replywatch_shipping_breached_orders":        true,
	"replywatch_open_disputes":                   true,
	"replywatch_review_satisfaction":             true,
	"replywatch_avg_refund_seconds":              true,
	"replywatch_agent_waiting_buyers":            true,
	"replywatch_agent_consulting_buyers":         true,
	"replywatch_agent_reply_breached_buyers":     true,
	"replywatch_agent_avg_response_seconds":      true,
	"replywatch_agent_buyer_messages":            true,
	"replywatch_agent_series_dropped_total":      true,
	"replywatch_agent_response_30s_rate":         true,
	"replywatch_flagged_messages":                true,
	"replywatch_effective_reply_rate":            true,
	"replywatch_effective_reply_rate_projected":  true,
	"replywatch_consulting_buyers_projected":     true,
	"replywatch_agent_flagged_messages":          true,
	"replywatch_shop_info":                       true,
	"replywatch_reply_rate_target":               true,
	"replywatch_service_window_open":             true,
	"replywatch_reporter_leader":                 true,
	"replywatch_events_total":                    true,
	"replywatch_dead_letters_total":              true,
	"replywatch_consumer_lag_messages":           true,
	"replywatch_watermark_lag_seconds":           true,
	"replywatch_timer_fire_delay_seconds":        true,
	"replywatch_alerts_total":                    true,
	"replywatch_alert_deliveries_total":          true,
	"replywatch_notify_delay_seconds_bucket":     true,
	"replywatch_notify_pending":                  true,
	"replywatch_notify_memory_entries":           true,
	"replywatch_notify_config_errors_total":      true,
	"replywatch_notify_records_total":            true,
	"replywatch_owned_partitions":                true,
	"replywatch_redis_errors_total":              true,
	"replywatch_build_info":                      true,
	"replywatch_ready":                           true,
	"replywatch_generations_total":               true,
	"replywatch_alert_redeliveries_total":        true,
	"replywatch_dead_letter_failures_total":      true,
	"replywatch_state_rebuilds_total":            true,
	"replywatch_timers_fired_seconds":            true,
	"replywatch_figures_age_seconds":             true,
	"replywatch_batch_records":                   true,
	"replywatch_redis_round_trips_total":         true,
	"replywatch_timer_fire_delay_seconds_bucket": true,
	"replywatch_timer_fire_delay_seconds_count":  true,
	"replywatch_timer_fire_delay_seconds_sum":    true,
	"replywatch_batch_records_bucket":            true,
	"replywatch_batch_records_count":             true,
	"replywatch_batch_records_sum":               true,
	"replywatch_redis_used_memory_bytes":         true,
	"replywatch_redis_maxmemory_bytes":           true,
}

// metricName finds replywatch series and recording-rule names in PromQL.
var metricName = regexp.MustCompile(`\breplywatch[_:][A-Za-z0-9_:]*`)

// unknownMetrics returns the replywatch names expr uses that are neither
// exported nor recorded.
func unknownMetrics(expr string, recorded map[string]bool) []string {
	var out []string
	for _, m := range metricName.FindAllString(expr, -1) {
		if !knownMetrics[m] && !recorded[m] {
			out = append(out, m)
		}
	}
	return out
}
