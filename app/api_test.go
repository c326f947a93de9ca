package app

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
)

func hashOf(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// apiTokens are the tokens of the API tests: a supervisor of s1, and the
// agents a1 (s1) and a9 (s2).
var apiTokens = []config.Token{
	{Name: "floor-1", SHA256: hashOf("sup-s1-secret"), Role: config.RoleSupervisor, Shops: []string{"s1"}},
	{Name: "a1", SHA256: hashOf("agent-a1-secret"), Role: config.RoleAgent, Agent: "a1"},
	{Name: "a9", SHA256: hashOf("agent-a9-secret"), Role: config.RoleAgent, Agent: "a9"},
}

// buyerMsg is a buyer message assigned to agent.
func buyerMsg(id, shop, buyer, agent string, ts time.Time) event.Event {
	return event.Event{EventID: id, Type: event.TypeMessage, TS: event.Time{Time: ts}, ShopID: shop,
		BuyerID: buyer, Sender: "buyer", AgentID: agent, Text: "在吗"}
}

// get requests path with token (none when "") and returns the status and body.
func get(t *testing.T, addr, path, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

type apiAlert struct {
	ID      string `json:"alert_id"`
	Kind    string `json:"kind"`
	Status  string `json:"status"`
	ShopID  string `json:"shop_id"`
	BuyerID string `json:"buyer_id"`
	AgentID string `json:"agent_id"`
	Due     string `json:"due"`
}

func firingNow(t *testing.T, addr, path, token string) ([]apiAlert, error) {
	t.Helper()
	code, b := get(t, addr, path, token)
	if code != 200 {
		return nil, fmt.Errorf("GET %s = %d %s", path, code, b)
	}
	var body struct{ Alerts []apiAlert }
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, fmt.Errorf("GET %s: %v: %s", path, err, b)
	}
	return body.Alerts, nil
}

// sseEvent is one Server-Sent Event as a client reads it.
type sseEvent struct {
	ID   string
	Data string
}

// sse is an open alert stream.
type sse struct {
	res    *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// openStream connects to the alert stream; lastID, when set, resumes.
func openStream(t *testing.T, addr, path, token, lastID string) *sse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		t.Fatalf("GET %s = %d %s", path, res.StatusCode, b)
	}
	s := &sse{res: res, events: make(chan sseEvent, 10000), cancel: cancel}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Data != "" {
					s.events <- ev
				} else if ev.ID != "" {
					s.events <- sseEvent{ID: ev.ID} // the position moved past records not shown
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *sse) close() { s.cancel(); s.res.Body.Close() }

// collect reads records until cond holds on what was read, or fails after
// within. Every event must carry an id.
func (s *sse) collect(t *testing.T, within time.Duration, got *[]apiAlert, lastID *string, cond func([]apiAlert) bool) {
	t.Helper()
	deadline := time.After(within)
	for !cond(*got) {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("stream ended; read %d records", len(*got))
			}
			if ev.ID == "" {
				t.Fatalf("event without an id: %q", ev.Data)
			}
			*lastID = ev.ID
			if ev.Data == "" {
				continue
			}
			var a apiAlert
			if err := json.Unmarshal([]byte(ev.Data), &a); err != nil {
				t.Fatalf("event data is not an alert record: %v: %s", err, ev.Data)
			}
			*got = append(*got, a)
		case <-deadline:
			t.Fatalf("after %v the stream gave %d records: %+v", within, len(*got), *got)
		}
	}
}

func buyersOf(as []apiAlert) []string {
	var out []string
	for _, a := range as {
		k := a.ShopID + "/" + a.BuyerID
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// firingIn is what the alerts topic says is firing now, by alert id.
// quietShopRules keeps the shop-level rules quiet for the test's span: its
// shops send no presence and no agent replies while the clock jumps minutes
// ahead, which raises shop_uncovered and effective_reply_risk on the lease
// holder at times the test does not control; these tests count the
// conversations' alerts.
func quietShopRules(t *testing.T, cfg *config.Config) *config.Config {
	t.Helper()
	cfg.Seats.UncoveredAfterInferred = time.Hour
	cfg.EffectiveReply.AlertBelow = 0
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func firingIn(alerts []alerting.Alert) map[string]alerting.Alert {
	out := map[string]alerting.Alert{}
	for _, a := range alerts {
		if a.Status == alerting.Firing {
			out[a.ID] = a
		} else {
			delete(out, a.ID)
		}
	}
	return out
}

// Tokens see only their scope, over the JSON API and over the stream: a
// supervisor its shops, an agent their own buyers' alerts. No token or an
// unknown one is refused with 401, a request outside the scope with 403.
// The alerts firing now equal what the alerts topic says is firing.
func TestAPIScopes(t *testing.T) {
	e := newEnv(t)
	t0 := sh("10:00:00")
	clock := &fakeClock{t: t0}
	cfg := quietShopRules(t, testConfig(t, e.broker, e.redis, "api"))
	cfg.API.Tokens = apiTokens
	r := start(t, cfg, clock, "api")
	addr := r.app.Addr()
	eventually(t, 20*time.Second, "joined", func() error {
		if !r.app.Processor.Joined() {
			return errors.New("not joined")
		}
		return nil
	})
	produce(t, e.broker, "cs.chat",
		buyerMsg("m1", "s1", "b1", "a1", t0),
		buyerMsg("m2", "s1", "b2", "a2", t0),
		buyerMsg("m3", "s2", "b3", "a9", t0),
	)
	eventually(t, 10*time.Second, "events applied", func() error {
		if got := scrape(t, addr)["replywatch_events_total{result=applied,topic=cs.chat}"]; got != 3 {
			return fmt.Errorf("applied %v of 3", got)
		}
		return nil
	})
	// Both thresholds pass: each buyer has a warning and a breach per threshold.
	clock.Set(t0.Add(6 * time.Minute))
	eventually(t, 10*time.Second, "alerts fired", func() error {
		if n := len(firingIn(readAlerts(t, e.broker))); n != 12 {
			return fmt.Errorf("%d alerts firing on cs.alerts, want 12", n)
		}
		return nil
	})
	fromTopic := firingIn(readAlerts(t, e.broker))

	for _, c := range []struct{ path, token string }{
		{"/api/v1/alerts", ""}, {"/api/v1/alerts", "wrong"}, {"/api/v1/shops", ""},
		{"/api/v1/alerts/stream", ""}, {"/api/v1/alerts/stream", "wrong"}, {"/wall", ""}, {"/agent", "wrong"},
	} {
		if code, _ := get(t, addr, c.path, c.token); code != 401 {
			t.Errorf("GET %s with token %q = %d, want 401", c.path, c.token, code)
		}
	}
	for _, c := range []struct{ path, token string }{
		{"/api/v1/alerts?shop=s2", "sup-s1-secret"}, {"/api/v1/shops?shop=s2", "sup-s1-secret"},
		{"/api/v1/alerts/stream?shop=s2", "sup-s1-secret"},
		{"/api/v1/alerts?agent=a2", "agent-a1-secret"}, {"/api/v1/alerts?shop=s1", "agent-a1-secret"},
		{"/api/v1/alerts/stream?agent=a2", "agent-a1-secret"}, {"/api/v1/shops", "agent-a1-secret"},
		{"/wall", "agent-a1-secret"},
	} {
		if code, _ := get(t, addr, c.path, c.token); code != 403 {
			t.Errorf("GET %s as %q = %d, want 403", c.path, c.token, code)
		}
	}

	// The JSON API.
	for _, c := range []struct {
		path, token string
		buyers      []string
	}{
		{"/api/v1/alerts", "sup-s1-secret", []string{"s1/b1", "s1/b2"}},
		{"/api/v1/alerts?shop=s1&agent=a2", "sup-s1-secret", []string{"s1/b2"}},
		{"/api/v1/alerts", "agent-a1-secret", []string{"s1/b1"}},
		{"/api/v1/alerts?agent=a1&kind=reply_breach", "agent-a1-secret", []string{"s1/b1"}},
		{"/api/v1/alerts", "agent-a9-secret", []string{"s2/b3"}},
	} {
		got, err := firingNow(t, addr, c.path, c.token)
		if err != nil {
			t.Fatal(err)
		}
		if b := buyersOf(got); !slices.Equal(b, c.buyers) {
			t.Errorf("GET %s as %q: buyers %v, want %v", c.path, c.token, b, c.buyers)
		}
		for _, a := range got {
			want, ok := fromTopic[a.ID]
			if !ok || want.ShopID != a.ShopID || want.AgentID != a.AgentID || want.Kind != a.Kind {
				t.Errorf("GET %s: %+v is not firing on cs.alerts", c.path, a)
			}
			if strings.Contains(c.path, "kind=") && a.Kind != alerting.KindReplyBreach {
				t.Errorf("GET %s gave kind %s", c.path, a.Kind)
			}
		}
	}
	all, err := firingNow(t, addr, "/api/v1/alerts", "sup-s1-secret")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 8 {
		t.Errorf("supervisor of s1 sees %d alerts firing, want the 8 of s1", len(all))
	}

	// The stream: a1 sees b1's alerts now, and later only their own.
	s := openStream(t, addr, "/api/v1/alerts/stream", "agent-a1-secret", "")
	var got []apiAlert
	var last string
	s.collect(t, 10*time.Second, &got, &last, func(g []apiAlert) bool { return len(g) >= 4 })
	produce(t, e.broker, "cs.chat",
		buyerMsg("m4", "s1", "b4", "a2", t0.Add(6*time.Minute)),
		buyerMsg("m5", "s2", "b5", "a9", t0.Add(6*time.Minute)),
		buyerMsg("m6", "s1", "b6", "a1", t0.Add(6*time.Minute)),
	)
	eventually(t, 10*time.Second, "events applied", func() error {
		if got := scrape(t, addr)["replywatch_events_total{result=applied,topic=cs.chat}"]; got != 6 {
			return fmt.Errorf("applied %v of 6", got)
		}
		return nil
	})
	clock.Set(t0.Add(12 * time.Minute))
	s.collect(t, 10*time.Second, &got, &last, func(g []apiAlert) bool { return len(g) >= 8 })
	// The stream stays open: what else it gives is checked at the end,
	// after a record that must come behind all of these.

	// Waiting buyers, listed from the start of each wait with its
	// deadlines: an agent sees their own, a supervisor an agent's buyers in
	// the supervisor's shops.
	for _, c := range []struct {
		path, token string
		code        int
	}{
		{"/api/v1/waiting", "", 401}, {"/api/v1/waiting?agent=a2", "agent-a1-secret", 403},
		{"/api/v1/waiting?agent=a9&shop=s2", "sup-s1-secret", 403}, {"/api/v1/waiting", "sup-s1-secret", 400},
	} {
		if code, b := get(t, addr, c.path, c.token); code != c.code {
			t.Errorf("GET %s as %q = %d %s, want %d", c.path, c.token, code, b, c.code)
		}
	}
	loc := cfg.Location("s1")
	for _, c := range []struct {
		path, token string
		want        []string
	}{
		{"/api/v1/waiting", "agent-a1-secret", []string{"s1/b1/a1 10:00:00 10:03:00", "s1/b6/a1 10:06:00 10:09:00"}},
		{"/api/v1/waiting?agent=a1", "agent-a1-secret", []string{"s1/b1/a1 10:00:00 10:03:00", "s1/b6/a1 10:06:00 10:09:00"}},
		{"/api/v1/waiting?agent=a2", "sup-s1-secret", []string{"s1/b2/a2 10:00:00 10:03:00", "s1/b4/a2 10:06:00 10:09:00"}},
		{"/api/v1/waiting?agent=a9", "sup-s1-secret", nil},
		{"/api/v1/waiting", "agent-a9-secret", []string{"s2/b3/a9 10:00:00 10:03:00", "s2/b5/a9 10:06:00 10:09:00"}},
	} {
		code, b := get(t, addr, c.path, c.token)
		if code != 200 {
			t.Errorf("GET %s as %q = %d %s", c.path, c.token, code, b)
			continue
		}
		var body struct {
			Buyers []struct {
				Shop      string `json:"shop_id"`
				Agent     string `json:"agent_id"`
				Buyer     string `json:"buyer_id"`
				WaitStart string `json:"wait_start"`
				Deadline  string `json:"deadline"`
				Deadlines []struct{ Threshold, At string }
			}
		}
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, w := range body.Buyers {
			start, err1 := time.Parse(time.RFC3339Nano, w.WaitStart)
			dl, err2 := time.Parse(time.RFC3339Nano, w.Deadline)
			if err1 != nil || err2 != nil || len(w.Deadlines) != 2 || w.Deadlines[1].Threshold != "5m" {
				t.Errorf("GET %s: entry %+v", c.path, w)
				continue
			}
			if _, off := start.Zone(); off != 8*3600 {
				t.Errorf("GET %s: wait start %s is not in the shop's time", c.path, w.WaitStart)
			}
			got = append(got, w.Shop+"/"+w.Buyer+"/"+w.Agent+" "+start.In(loc).Format("15:04:05")+" "+dl.In(loc).Format("15:04:05"))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("GET %s as %q: %v, want %v", c.path, c.token, got, c.want)
		}
	}

	// /api/v1/shops holds the figures /metrics exports.
	eventually(t, 10*time.Second, "figures", func() error {
		code, b := get(t, addr, "/api/v1/shops", "sup-s1-secret")
		if code != 200 {
			return fmt.Errorf("GET /api/v1/shops = %d %s", code, b)
		}
		var body struct {
			Shops []map[string]any
		}
		if err := json.Unmarshal(b, &body); err != nil {
			return err
		}
		if len(body.Shops) != 1 || body.Shops[0]["shop"] != "s1" {
			return fmt.Errorf("shops %s, want s1 alone", b)
		}
		m := scrape(t, addr)
		s1 := body.Shops[0]
		for k, v := range map[string]any{
			"replywatch_waiting_buyers{shop=s1}":                     s1["waiting_buyers"],
			"replywatch_consulting_buyers{shop=s1}":                  s1["consulting_buyers"],
			"replywatch_reply_breached_buyers{shop=s1,threshold=3m}": s1["reply_breached_buyers"].(map[string]any)["3m"],
			"replywatch_reply_rate{shop=s1,threshold=5m}":            s1["reply_rate"].(map[string]any)["5m"],
		} {
			if m[k] != v {
				return fmt.Errorf("%s = %v on /metrics, %v on /api/v1/shops", k, m[k], v)
			}
		}
		if s1["waiting_buyers"] != 4.0 {
			return fmt.Errorf("s1 waiting %v, want 4", s1["waiting_buyers"])
		}
		return nil
	})

	// A last buyer of a1's, produced once cs.alerts (one partition) holds
	// every record above: its alerts come behind them, on a1's stream too,
	// so once it gives one, whatever else it would give came before. All
	// of it must be a1's.
	eventually(t, 10*time.Second, "every alert on cs.alerts", func() error {
		if n := scrape(t, addr)["replywatch_alert_deliveries_total{result=ok,sink=kafka}"]; n < 24 {
			return fmt.Errorf("cs.alerts accepted %v alert records, want the 24 above", n)
		}
		return nil
	})
	produce(t, e.broker, "cs.chat", buyerMsg("m7", "s1", "b7", "a1", t0.Add(12*time.Minute)))
	eventually(t, 10*time.Second, "events applied", func() error {
		if got := scrape(t, addr)["replywatch_events_total{result=applied,topic=cs.chat}"]; got != 7 {
			return fmt.Errorf("applied %v of 7", got)
		}
		return nil
	})
	clock.Set(t0.Add(18 * time.Minute))
	s.collect(t, 10*time.Second, &got, &last, func(g []apiAlert) bool { return slices.Contains(buyersOf(g), "s1/b7") })
	if b := buyersOf(got); !slices.Equal(b, []string{"s1/b1", "s1/b6", "s1/b7"}) {
		t.Errorf("a1's stream gave buyers %v, want s1/b1, s1/b6 and the last one, s1/b7", b)
	}
	for _, a := range got {
		if a.AgentID != "a1" {
			t.Errorf("a1's stream gave %+v", a)
		}
	}
}

// resumeTokens are the scopes of the resume test: every shop, one shop,
// one agent.
var resumeTokens = []config.Token{
	{Name: "floor", SHA256: hashOf("sup-all-secret"), Role: config.RoleSupervisor, Shops: []string{"s1", "s2"}},
	{Name: "floor-1", SHA256: hashOf("sup-s1-secret"), Role: config.RoleSupervisor, Shops: []string{"s1"}},
	{Name: "a1", SHA256: hashOf("agent-a1-secret"), Role: config.RoleAgent, Agent: "a1"},
}

// A client that reconnects with the last event id it read gets every
// record of its scope that followed, once: from the replica it was on,
// and from a new replica that never saw those records (read again from
// Kafka). The hub hands each stream only its scope's records, so a
// stream's ids skip what it does not see; resuming from them is exact all
// the same.
func TestStreamResumesAfterDrop(t *testing.T) {
	e := newEnv(t)
	t0 := sh("10:00:00")
	clock := &fakeClock{t: t0}
	cfg := testConfig(t, e.broker, e.redis, "resume")
	cfg.API.Tokens = resumeTokens
	r := start(t, quietShopRules(t, cfg), clock, "resume")
	addr := r.app.Addr()
	eventually(t, 20*time.Second, "joined", func() error {
		if !r.app.Processor.Joined() {
			return errors.New("not joined")
		}
		return nil
	})
	scopes := []struct {
		name, token string
		sees        func(alerting.Alert) bool
		// drop is how many records the first stream reads before it is
		// dropped: part of the first wave's.
		drop int
	}{
		{"every shop", "sup-all-secret", func(alerting.Alert) bool { return true }, 8},
		{"shop s1", "sup-s1-secret", func(a alerting.Alert) bool { return a.ShopID == "s1" }, 8},
		{"agent a1", "agent-a1-secret", func(a alerting.Alert) bool { return a.AgentID == "a1" }, 4},
	}
	streams := make([]*sse, len(scopes))
	gots := make([][]apiAlert, len(scopes))
	lasts := make([]string, len(scopes))
	for i, sc := range scopes {
		streams[i] = openStream(t, addr, "/api/v1/alerts/stream", sc.token, "")
		streams[i].collect(t, 10*time.Second, &gots[i], &lasts[i], func([]apiAlert) bool { return lasts[i] != "" })
	}

	var mu sync.Mutex
	produced := 0
	// wave sends n buyers' messages: agents a0 and a1 in shop s1, a2 in s2.
	wave := func(n int, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		var evs []event.Event
		for i := range n {
			produced++
			shop := "s1"
			if i%3 == 2 {
				shop = "s2"
			}
			evs = append(evs, buyerMsg(fmt.Sprint("r", produced), shop, fmt.Sprint("b", produced), fmt.Sprint("a", i%3), at))
		}
		produce(t, e.broker, "cs.chat", evs...)
		want := float64(produced)
		eventually(t, 10*time.Second, "applied", func() error {
			if got := scrape(t, addr)["replywatch_events_total{result=applied,topic=cs.chat}"]; got != want {
				return fmt.Errorf("applied %v of %v", got, want)
			}
			return nil
		})
	}
	// Each buyer gives 4 records (3m and 5m warnings and breaches).
	wave(5, t0)
	clock.Set(t0.Add(6 * time.Minute))
	for i, sc := range scopes {
		streams[i].collect(t, 10*time.Second, &gots[i], &lasts[i], func(g []apiAlert) bool { return len(g) >= sc.drop })
		streams[i].close() // dropped mid-way
	}

	wave(5, t0.Add(6*time.Minute))
	clock.Set(t0.Add(12 * time.Minute))
	eventually(t, 10*time.Second, "all alerts on cs.alerts", func() error {
		if as := readAlerts(t, e.broker); len(as) != 40 {
			kinds := map[string]int{}
			for _, a := range as {
				kinds[a.Kind+"/"+a.Status]++
			}
			return fmt.Errorf("%d records, want 40: %v", len(as), kinds)
		}
		return nil
	})
	// A new replica, whose stream starts at the topic's end: the records
	// after a stream's last id come from Kafka.
	cfg2 := testConfig(t, e.broker, e.redis, "resume")
	cfg2.API.Tokens = resumeTokens
	r2 := start(t, quietShopRules(t, cfg2), clock, "resume-2")
	for i, sc := range scopes {
		var want []string
		for _, a := range readAlerts(t, e.broker) {
			if sc.sees(a) {
				want = append(want, a.ID+":"+a.Status)
			}
		}
		for _, at := range []struct{ replica, addr string }{{"same replica", addr}, {"new replica", r2.app.Addr()}} {
			s := openStream(t, at.addr, "/api/v1/alerts/stream", sc.token, lasts[i])
			got := slices.Clone(gots[i])
			last := lasts[i]
			s.collect(t, 10*time.Second, &got, &last, func(g []apiAlert) bool { return len(g) >= len(want) })
			var ids []string
			for _, a := range got {
				ids = append(ids, a.ID+":"+a.Status)
			}
			if !slices.Equal(ids, want) {
				t.Errorf("%s, %s: the stream gave\n%v\nthe topic holds for the scope\n%v", sc.name, at.replica, ids, want)
			}
			// Nothing more: no repeats after the last record.
			select {
			case ev := <-s.events:
				if ev.Data != "" {
					t.Errorf("%s, %s: a record after all of them: %s", sc.name, at.replica, ev.Data)
				}
			case <-time.After(300 * time.Millisecond):
			}
			s.close()
		}
	}
}
