package notify

import (
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
)

// An Alertmanager alert becomes an alert record: its name the kind, the
// shop and severity from the labels, one id for both notifications of an
// occurrence and another for the next occurrence.
func TestFromAlertmanager(t *testing.T) {
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	start := now.Add(-10 * time.Minute)
	am := func(status, severity string, starts time.Time, fp string) AlertmanagerAlert {
		return AlertmanagerAlert{Status: status, StartsAt: starts, Fingerprint: fp,
			Labels:      map[string]string{"alertname": "ReplywatchShopUncovered", "shop": "s1", "severity": severity},
			Annotations: map[string]string{"summary": "店铺 s1 无人值守", "description": "已 5 分钟"}}
	}
	firing, err := FromAlertmanager(am("firing", "critical", start, "abc"), now)
	if err != nil {
		t.Fatal(err)
	}
	want := alerting.Alert{ID: firing.ID, Kind: "ReplywatchShopUncovered", Status: "firing", Severity: "critical", ShopID: "s1",
		Since: start, At: now, Summary: "店铺 s1 无人值守: 已 5 分钟"}
	if firing != want || firing.ID == "" {
		t.Errorf("firing: %+v, want %+v", firing, want)
	}
	resolved, err := FromAlertmanager(am("resolved", "critical", start, "abc"), now)
	if err != nil || resolved.ID != firing.ID || resolved.Status != "resolved" || resolved.Reason != alerting.ReasonRecovered {
		t.Errorf("resolved: %+v, %v; want the firing one's id %s, reason recovered", resolved, err, firing.ID)
	}
	if next, _ := FromAlertmanager(am("firing", "critical", start.Add(time.Hour), "abc"), now); next.ID == firing.ID {
		t.Errorf("a later occurrence has the same id %s", next.ID)
	}
	if other, _ := FromAlertmanager(am("firing", "critical", start, "def"), now); other.ID == firing.ID {
		t.Errorf("another alert has the same id %s", other.ID)
	}
	for sev, want := range map[string]string{"info": "info", "warning": "warning", "critical": "critical", "page": "critical", "": "warning", "high": "warning"} {
		if a, _ := FromAlertmanager(am("firing", sev, start, "abc"), now); a.Severity != want {
			t.Errorf("severity label %q gave %q, want %q", sev, a.Severity, want)
		}
	}
	noFP := am("firing", "warning", start, "")
	a1, _ := FromAlertmanager(noFP, now)
	noFP.Labels["shop"] = "s2"
	a2, _ := FromAlertmanager(noFP, now)
	if a1.ID == a2.ID {
		t.Errorf("without a fingerprint, alerts with other labels share the id %s", a1.ID)
	}
	for _, bad := range []AlertmanagerAlert{
		{Status: "firing", Labels: map[string]string{"job": "x"}},
		{Status: "pending", Labels: map[string]string{"alertname": "X"}},
	} {
		if _, err := FromAlertmanager(bad, now); err == nil {
			t.Errorf("%+v was accepted", bad)
		}
	}
}
