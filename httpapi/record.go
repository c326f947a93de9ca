package httpapi

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/internal/jsonscan"
)

// recordNames are the members of an alert record the API keeps.
var recordNames = []string{"alert_id", "kind", "status", "shop_id", "agent_id", "due", "at"}

// UnmarshalJSON reads the members of an alert record the API keeps. The
// alert stream reads every record of the alerts topic: records as
// replywatch writes them go through a scanner of their own, anything else
// (escapes, nesting, names in other case) through encoding/json, whose
// result the scanner's matches.
func (r *record) UnmarshalJSON(b []byte) error {
	fast := *r
	if fast.scan(b) {
		*r = fast
		return nil
	}
	type plain record // no UnmarshalJSON: encoding/json's own reading
	return json.Unmarshal(b, (*plain)(r))
}

func (r *record) scan(b []byte) bool {
	s := jsonscan.New(b)
	at := func(dst *time.Time) bool {
		q, ok := s.Quoted()
		return ok && dst.UnmarshalJSON(q) == nil
	}
	return s.Object(func(name []byte) bool {
		switch string(name) {
		case "alert_id":
			return s.Intern(&r.ID, nil)
		case "kind":
			return s.Intern(&r.Kind, alerting.Kinds)
		case "status":
			return s.Intern(&r.Status, alertStatuses)
		case "shop_id":
			return s.Intern(&r.ShopID, nil)
		case "agent_id":
			return s.Intern(&r.AgentID, nil)
		case "due":
			return at(&r.Due)
		case "at":
			return at(&r.At)
		}
		for _, n := range recordNames {
			if strings.EqualFold(string(name), n) {
				return false // encoding/json matches it without regard to case
			}
		}
		return s.Skip()
	})
}

var alertStatuses = []string{alerting.Firing, alerting.Resolved}
