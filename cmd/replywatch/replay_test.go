package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// replayOrdersDay is a hand-counted shop day of order events.
const replayOrdersDay = `{"event_id":"p1","type":"order_paid","ts":"2026-11-24T08:00:00+08:00","shop_id":"s1","buyer_id":"b1","order_id":"o1"}
{"event_id":"r2","type":"review_posted","ts":"2026-11-24T09:00:00+08:00","shop_id":"s1","buyer_id":"b2","order_id":"o2","rating":5}
{"event_id":"r3","type":"review_posted","ts":"2026-11-24T09:10:00+08:00","shop_id":"s1","buyer_id":"b3","order_id":"o3","rating":1}
{"event_id":"q4","type":"refund_requested","ts":"2026-11-24T09:00:00+08:00","shop_id":"s1","buyer_id":"b4","order_id":"o4"}
{"event_id":"c4","type":"refund_completed","ts":"2026-11-24T09:30:00+08:00","shop_id":"s1","buyer_id":"b4","order_id":"o4"}
{"event_id":"m1","type":"message","ts":"2026-11-24T08:00:00+08:00","shop_id":"s1","buyer_id":"b1","sender":"buyer","text":"在吗"}
{"event_id":"m2","type":"message","ts":"2026-11-24T08:00:00+08:00","shop_id":"s1","buyer_id":"b1","sender":"agent","agent_id":"a1","text":"在的"}
{"event_id":"d5","type":"dispute_opened","ts":"2026-11-24T09:00:00+08:00","shop_id":"s1","buyer_id":"b5","order_id":"o5","respond_by":"2026-11-25T09:00:00+08:00"}
`

// `replay` prints the order figures and the alert records per kind: here
// with the shop given 2 h to ship (warning 30 min ahead) by --set, o1 is
// late at 10:00; one of two reviews is good; a refund took 30 min; one
// dispute is open; b1, who asked at 08:00 and paid at once, converted the
// shop's one inquiry.
func TestReplayPrintsOrders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orders.jsonl")
	if err := os.WriteFile(path, []byte(replayOrdersDay), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"replay", "--set", "shops.s1.orders.ship_within=2h", "--set", "orders.warn_before=30m",
		"--at", "2026-11-24T12:00:00+08:00", path}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	var row []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 11 && f[0] == "s1" {
			row = f
		}
	}
	if want := []string{"s1", "1", "1", "1", "0", "2", "50.0%", "1", "1800.0s", "1", "100.0%"}; strings.Join(row, " ") != strings.Join(want, " ") {
		t.Errorf("orders row %q, want %q\n%s", row, want, out)
	}
	for _, want := range []string{"shipping_warning firing", "shipping_breach firing", "bad_review firing"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "dispute_deadline") {
		t.Errorf("a dispute due tomorrow alerted today:\n%s", out)
	}
}
