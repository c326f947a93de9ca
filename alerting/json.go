package alerting

import (
	"encoding/json"
	"time"
)

const timeLayout = "2006-01-02T15:04:05.000Z07:00"

type wireAlert struct {
	*alias
	Since     string `json:"since,omitempty"`
	Due       string `json:"due,omitempty"`
	At        string `json:"at,omitempty"`
	EmittedAt string `json:"emitted_at,omitempty"`
}

type alias Alert

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(timeLayout)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// MarshalJSON writes the contract's alert JSON.
func (a Alert) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireAlert{alias: (*alias)(&a), Since: fmtTime(a.Since), Due: fmtTime(a.Due), At: fmtTime(a.At), EmittedAt: fmtTime(a.EmittedAt)})
}

// UnmarshalJSON reads the contract's alert JSON.
func (a *Alert) UnmarshalJSON(b []byte) error {
	w := wireAlert{alias: (*alias)(a)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var err error
	for _, f := range []struct {
		dst *time.Time
		s   string
	}{{&a.Since, w.Since}, {&a.Due, w.Due}, {&a.At, w.At}, {&a.EmittedAt, w.EmittedAt}} {
		if *f.dst, err = parseTime(f.s); err != nil {
			return err
		}
	}
	return nil
}
