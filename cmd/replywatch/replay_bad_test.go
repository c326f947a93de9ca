package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// replayDay is a small hand-made day: b1 breached at 3m and 5m (replied at
// 10:07:51, 471 s, its lines out of ts order), b2 answered in 20 s with a
// lowercase RFC 3339 time.
var replayDay = []string{
	`{"topic":"chat","key":"s1/b1","value":{"event_id":"e2","type":"message","ts":"2026-11-24T10:07:51+08:00","shop_id":"s1","buyer_id":"b1","sender":"agent","agent_id":"a1"}}`,
	`{"event_id":"e1","type":"message","ts":"2026-11-24T10:00:00+08:00","shop_id":"s1","buyer_id":"b1","sender":"buyer"}`,
	`{"event_id":"e3","type":"message","ts":"2026-11-24t02:30:00z","shop_id":"s1","buyer_id":"b2","sender":"buyer"}`,
	`{"event_id":"e4","type":"message","ts":"2026-11-24T10:30:20+08:00","shop_id":"s1","buyer_id":"b2","sender":"agent","agent_id":"a1"}`,
}

// Bad records among them, each what it is reported as.
var replayBad = []struct{ line, report string }{
	{`{"event_id":"x1","type":"message","ts":"2026-11-24T10:40:00+08:00","shop_id":"s1","sender":"buyer"}`,
		"dead-lettered: missing_field: buyer_id is required for message"},
	{`this is not json`, "skipped: not a JSON object"},
	{`{"topic":"cs.chat","key":"s1/b3","value":{"event_id":"x2","type":"message","ts":"yesterday","shop_id":"s1","buyer_id":"b3","sender":"buyer"}}`,
		`dead-lettered: bad_field: time "yesterday" is not RFC 3339`},
	{`{"topic":"cs.returns","value":{"event_id":"x3"}}`, `skipped: topic "cs.returns" is not chat, orders or presence`},
	{`{"event_id":"x4","type":"message","ts":"2026-11-24T10:41:00+08:00","shop_id":"s1","buyer_id":"b4","sender":"robot"}`,
		`dead-lettered: bad_field: sender "robot" is not one of`},
}

func replayFile(t *testing.T, lines []string) (code int, out map[string]any, stderr string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "day.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var so, se bytes.Buffer
	code = run([]string{"replay", "--format", "json", path}, &so, &se)
	if code == exitOK {
		if err := json.Unmarshal(so.Bytes(), &out); err != nil {
			t.Fatalf("output %q: %v", so.String(), err)
		}
	}
	return code, out, strings.ReplaceAll(se.String(), path, "day.jsonl")
}

// replay skips and reports bad records, as the pipeline dead-letters them,
// and the figures are those of the good records alone.
func TestReplaySkipsBadRecords(t *testing.T) {
	code, clean, stderr := replayFile(t, replayDay)
	if code != exitOK {
		t.Fatalf("clean day: exit %d\n%s", code, stderr)
	}
	shop := clean["shops"].([]any)[0].(map[string]any)
	if shop["consulting_buyers"] != 2.0 || shop["reply_breached_buyers"].(map[string]any)["3m"] != 1.0 || shop["avg_response_seconds"] != (471.0+20)/2 {
		t.Errorf("clean day figures %v, want 2 consulting, 1 breached at 3m, mean response 245.5 s", shop)
	}

	lines := append([]string(nil), replayDay[:2]...)
	for _, b := range replayBad {
		lines = append(lines, b.line)
	}
	lines = append(lines, replayDay[2:]...)
	code, dirty, stderr := replayFile(t, lines)
	if code != exitOK {
		t.Fatalf("exit %d, want %d: bad records do not abort a replay\n%s", code, exitOK, stderr)
	}
	for i, b := range replayBad {
		want := "day.jsonl:" + itoa(3+i) + ": " + b.report
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stderr, "5 unusable records (bad_field 2, missing_field 1, not a record 2), left out of the figures") {
		t.Errorf("stderr lacks the summary:\n%s", stderr)
	}
	if dirty["dead_letters"] != 3.0 || dirty["skipped_lines"] != 2.0 {
		t.Errorf("dead_letters %v, skipped_lines %v, want 3 and 2", dirty["dead_letters"], dirty["skipped_lines"])
	}
	if a, b := mustJSON(t, dirty["shops"]), mustJSON(t, clean["shops"]); a != b {
		t.Errorf("figures with bad records\n%s\nwithout\n%s", a, b)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
