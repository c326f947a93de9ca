package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/httpapi"
	"github.com/replywatch/replywatch/sim"
)

// deliveryPhase is one run of the chat traffic in the delivery part: the
// backlog replayed at full speed or the simulated day paced at a live rate,
// with or without the notifier, and with how many SSE clients open of
// which scopes.
type deliveryPhase struct {
	name    string
	notify  bool
	clients int
	// every gives every client a wall token of every shop (each takes
	// every record: the worst case); else the clients are the scoped mix.
	every bool
	// live paces the simulated day at Settings.LiveRate for SSEHold
	// rather than replaying the backlog at full speed.
	live bool
}

// Settings of the delivery part.
const (
	// receiverDelay is how long the benchmark's webhook receiver takes to
	// answer, as a chat vendor's API does.
	receiverDelay = 50 * time.Millisecond
	// envWebhookSecret carries the webhook receiver's secret to the
	// replica (a config written to a file masks literal secrets).
	envWebhookSecret = "RWBENCH_WEBHOOK_SECRET"
	// wallShare is one wall in this many clients of the scoped mix; the
	// others are agents' pages.
	wallShare = 25
)

// sseScope is what one SSE client of the delivery part may see: every
// shop (a wall) or one agent's alerts (an agent's page).
type sseScope struct {
	token string
	agent string // "" for a wall of every shop
}

// deliveryScopes are the API tokens of every delivery phase's replica and
// the clients of the scoped mix and of the worst case: in the mix one wall
// of every shop for every wallShare clients and an agent's page for each
// of the others, the agents spread evenly over the simulated shops and
// their agents; in the worst case the walls alone.
type deliveryScopes struct {
	tokens []config.Token
	shops  []string
	scoped []sseScope
	walls  []sseScope
}

func newDeliveryScopes(clients int) (*deliveryScopes, error) {
	sims, err := sim.Shops(DefaultMix.options(1, simDay))
	if err != nil {
		return nil, err
	}
	d := &deliveryScopes{}
	var agents []string
	for _, sh := range sims {
		d.shops = append(d.shops, sh.ID)
	}
	nwalls := max(1, clients/wallShare)
	nagents := clients - nwalls
	// Agent k of every shop in turn, k rising: as many shops' agents as
	// there are pages, spread evenly.
	for k := 0; len(agents) < nagents; k++ {
		added := false
		for _, sh := range sims {
			if k < len(sh.Agents) && len(agents) < nagents {
				agents = append(agents, sh.Agents[k])
				added = true
			}
		}
		if !added {
			return nil, fmt.Errorf("%d agents' pages asked, the simulation has %d agents", nagents, len(agents))
		}
	}
	for i := range nwalls {
		sc := sseScope{token: fmt.Sprintf("rwbench-wall-%d-token", i)}
		d.tokens = append(d.tokens, config.Token{Name: fmt.Sprintf("wall-%d", i), SHA256: sha256Hex(sc.token),
			Role: config.RoleSupervisor, Shops: d.shops})
		d.walls = append(d.walls, sc)
	}
	for i, a := range agents {
		sc := sseScope{token: fmt.Sprintf("rwbench-agent-%d-token", i), agent: a}
		d.tokens = append(d.tokens, config.Token{Name: "agent-" + a, SHA256: sha256Hex(sc.token), Role: config.RoleAgent, Agent: a})
		d.scoped = append(d.scoped, sc)
	}
	d.scoped = append(d.scoped, d.walls...)
	return d, nil
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// clients are the scopes of a phase's clients, n of them.
func (d *deliveryScopes) clients(ph deliveryPhase) []sseScope {
	if !ph.every {
		return d.scoped[:ph.clients]
	}
	out := make([]sseScope, ph.clients)
	for i := range out {
		out[i] = d.walls[i%len(d.walls)]
	}
	return out
}

// delivery runs the chat traffic, produced once before, through one
// replica child process again and again: replayed at full speed without
// the notifier, with it sending to a webhook receiver that answers in
// 50 ms, with SSE clients of the scoped mix (agents' pages and walls) and
// with as many clients each taking every record (in a process of their
// own), and without either once more to see the drift of the machine;
// then the simulated day paced at the live rate without clients, with
// each mix, and without again. Each phase writes its alerts to a topic of
// its own, so the notifier of a phase reads only that phase's alerts, and
// starts on an empty Redis. The clients open from the start of their
// phase's alerts topic (Last-Event-ID), so each must receive exactly the
// records of its scope.
func (h *harness) delivery(ctx context.Context) error {
	if err := h.chatBacklog(ctx); err != nil {
		return err
	}
	var requests, bodies atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		time.Sleep(receiverDelay)
		requests.Add(1)
		bodies.Add(n)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	scopes, err := newDeliveryScopes(h.s.SSEClients)
	if err != nil {
		return err
	}

	n := h.s.SSEClients
	mix := fmt.Sprintf("%d SSE clients scoped (agents' pages %d, walls of every shop %d)", n, n-max(1, n/wallShare), max(1, n/wallShare))
	every := fmt.Sprintf("%d SSE clients each taking every record", n)
	live := fmt.Sprintf("live %s/s, ", thousands(int64(h.s.LiveRate)))
	phases := []deliveryPhase{
		{name: "notifier off, no SSE clients"},
		{name: "notifier on (webhook answering in 50 ms), no SSE clients", notify: true},
		{name: mix, clients: n},
		{name: every, clients: n, every: true},
		{name: "notifier off, no SSE clients (again)"},
		{name: live + "no SSE clients", live: true},
		{name: live + mix, clients: n, live: true},
		{name: live + every, clients: n, every: true, live: true},
		{name: live + "no SSE clients (again)", live: true},
	}
	const part = PartDelivery
	r := h.report
	// The phases without clients or notifier, of each kind.
	base := map[bool][]float64{}
	baseCPU := map[bool][]float64{}
	for i, ph := range phases {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		before := requests.Load()
		res, err := h.deliveryPhase(ctx, i, ph, recv.URL, scopes)
		if err != nil {
			return fmt.Errorf("%s: %w", ph.name, err)
		}
		sent := requests.Load() - before
		cpu := res.costs.perEvent(res.costs.child)
		h.logf("delivery: %s: %.0f events/s, processor %.1f µs/event, %d webhook requests, subscribers %d records, %d exact of %d (%d at the end), reconnects %d, errors %d %s",
			ph.name, res.rate, cpu, sent, res.subs.Records, res.exact, ph.clients, res.atEnd, res.subs.Reconnects, res.subs.Errors, res.subs.LastError)
		note := fmt.Sprintf("%s events from first applied batch to last", thousands(res.applied))
		switch {
		case ph.live:
			note = fmt.Sprintf("%s events produced at a fixed rate for %s, all applied %.1f s after the last was produced",
				thousands(res.applied), h.s.SSEHold, res.lag.Seconds())
		case ph.clients > 0:
			note = fmt.Sprintf("%s events from the moment all %d clients were open to the last batch", thousands(res.applied), ph.clients)
		}
		r.add(part, ph.name+": chat events/s", res.rate, "events/s", note)
		r.add(part, ph.name+": processor CPU per event", cpu, "µs",
			"/proc/<replica pid>/stat over the whole phase, group join included")
		r.add(part, ph.name+": alert records written", res.alerts, "records", "")
		if res.costs.events > 0 {
			r.add(part, ph.name+": alert records per chat event", res.alerts/float64(res.costs.events), "",
				"replywatch_alerts_total / every chat event the phase applied")
		}
		if ph.notify {
			r.add(part, ph.name+": alert records the notifier read and routed", res.routed, "records", "by the end of the phase")
			r.add(part, ph.name+": webhook requests accepted", float64(sent), "requests",
				"grouped by shop and kind (group_wait 5s, group_interval 1m, the defaults) by the end of the phase")
		}
		if ph.clients > 0 {
			r.add(part, ph.name+": SSE records received", float64(res.subs.Records), "records",
				fmt.Sprintf("fewest to one client %s, reconnects after a drop %d, errors %d; subscriber process CPU %.1f s over %.0f s held",
					thousands(res.subs.Fewest), res.subs.Reconnects, res.subs.Errors, res.subCPU.Seconds(), res.held.Seconds()))
			r.add(part, ph.name+": clients that received exactly their scope's records", float64(res.exact), "clients",
				fmt.Sprintf("of %d, counted against the phase's alerts topic up to each client's last event id; %s records missing, %s twice; "+
					"%d clients had every record of their scope on the topic when they stopped", ph.clients, thousands(res.short), thousands(res.over), res.atEnd))
		}
		if ph.clients > 0 && res.subs.Records > 0 && len(baseCPU[ph.live]) > 0 {
			extra := cpu - baseCPU[ph.live][0]
			r.add(part, ph.name+": replica CPU per SSE record delivered", extra*float64(res.costs.events)/float64(res.subs.Records), "µs",
				"replica CPU per event above the first phase's of its kind, times the events, over the records the clients received")
		}
		if !ph.notify && ph.clients == 0 {
			baseCPU[ph.live] = append(baseCPU[ph.live], cpu)
			base[ph.live] = append(base[ph.live], res.rate)
		} else if len(base[ph.live]) > 0 {
			r.add(part, ph.name+": events/s against the first phase of its kind", 100*res.rate/base[ph.live][0], "%", "")
			r.add(part, ph.name+": processor CPU per event against the first phase of its kind", 100*cpu/baseCPU[ph.live][0], "%", "")
		}
	}
	for _, live := range []bool{false, true} {
		if b := base[live]; len(b) == 2 {
			kind := "the backlog replay"
			if live {
				kind = "the live rate"
			}
			r.add(part, "drift of the machine, "+kind+": last phase against the first", 100*b[1]/b[0], "%",
				"the same traffic with neither; the machine's own noise")
		}
	}
	r.Notes = append(r.Notes, fmt.Sprintf("delivery: every process (broker and harness, Redis, the replica, the subscriber process) "+
		"shares this machine's %d cores, none pinned; the CPU each used is reported", runtime.NumCPU()))
	return nil
}

// phaseResult is what one delivery phase measured.
type phaseResult struct {
	rate    float64
	applied int64
	// lag is how long after the last live event was produced all were applied.
	lag    time.Duration
	alerts float64
	routed float64
	costs  costs
	subs   SubscriberStats
	subCPU time.Duration
	held   time.Duration
	// exact counts the clients that received exactly the records of
	// their scope up to the position they got to, short and over the
	// records missing and too many; atEnd the clients that got every
	// record of their scope on the topic.
	exact, atEnd int
	short, over  int64
}

func (h *harness) deliveryPhase(ctx context.Context, i int, ph deliveryPhase, receiver string, scopes *deliveryScopes) (phaseResult, error) {
	var res phaseResult
	if err := h.redis.Reset(ctx); err != nil {
		return res, err
	}
	alerts := fmt.Sprintf("%s.delivery%d", TopicAlerts, i)
	if err := createTopic(ctx, h.broker.Addr, alerts, Topics[TopicAlerts]); err != nil {
		return res, err
	}
	chat := TopicChat
	var ws []watched
	var err error
	if ph.live {
		chat = fmt.Sprintf("%s.live%d", TopicChat, i)
		for _, t := range []string{chat, chat + ".DLT"} {
			if err := createTopic(ctx, h.broker.Addr, t, Topics[TopicChat]); err != nil {
				return res, err
			}
		}
	} else if ws, err = watchList(ctx, h.broker.Addr, "chat"); err != nil {
		return res, err
	}
	cfg, err := replicaConfig(h.broker.Addr, h.redis.URL, replicaOpts{group: fmt.Sprintf("delivery-%d", i), session: h.s.Session})
	if err != nil {
		return res, err
	}
	cfg.Kafka.Topics.Alerts = alerts
	cfg.Kafka.Topics.Chat = chat
	cfg.API.Tokens = scopes.tokens
	cfg.Notify.Enabled = ph.notify
	var env []string
	if ph.notify {
		cfg.Notify.GroupID = fmt.Sprintf("delivery-notify-%d", i)
		// The simulated day lies in the past: send its alerts one by one
		// rather than as the digest of a replayed backlog.
		cfg.Notify.MaxAge = 24 * 365 * time.Hour
		cfg.Notify.Receivers = []config.Receiver{{Name: "bench",
			Webhook: &config.Webhook{URL: receiver, Timeout: 5 * time.Second, Secret: config.Secret("${" + envWebhookSecret + "}")}}}
		cfg.Notify.Route.Receiver = "bench"
		env = append(env, envWebhookSecret+"=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	}
	if err := cfg.Validate(); err != nil {
		return res, fmt.Errorf("benchmark config: %w", err)
	}
	m, err := h.startMeter(ctx, "")
	if err != nil {
		return res, err
	}
	profile := h.profilePath(fmt.Sprintf("delivery-%d", i))
	var rep *Replica
	// The replica's HTTP port is picked free before it binds it: another
	// process may take it meanwhile, and then the replica exits. Start it
	// again on another port (it has applied nothing: it answers before it
	// joins the group only when its listener is up).
	for attempt := 1; ; attempt++ {
		if rep, err = StartChild(fmt.Sprintf("delivery-%d", i), cfg, h.dir, profile, append(env, h.s.ReplicaEnv...)...); err != nil {
			return res, err
		}
		err = waitHTTP(ctx, "http://"+rep.addr+"/healthz", time.Minute, rep.done)
		if err == nil {
			break
		}
		_ = rep.Stop(10 * time.Second)
		if attempt == 3 {
			return res, fmt.Errorf("the replica did not start (see %s): %w", filepath.Join(h.dir, rep.Name+".log"), err)
		}
		h.logf("delivery: %s: starting the replica again: %v", ph.name, err)
		if err := h.redis.Reset(ctx); err != nil {
			return res, err
		}
	}
	m.childPIDs = []string{rep.PID()} // started after the meter: its CPU counts from 0
	defer h.stop(rep)

	var subs *Subscribers
	var subStart time.Duration
	var openedAt time.Time
	clients := scopes.clients(ph)
	if ph.clients > 0 {
		// From the start of the phase's alerts topic: every record of the
		// client's scope, none of a snapshot.
		from := make([]string, Topics[TopicAlerts])
		for p := range from {
			from[p] = strconv.Itoa(p) + ":0"
		}
		spec := SubscriberSpec{From: strings.Join(from, ",")}
		for _, c := range clients {
			spec.Tokens = append(spec.Tokens, c.token)
		}
		subs, err = StartSubscribers(ctx, "http://"+rep.addr+"/api/v1/alerts/stream", spec,
			filepath.Join(h.dir, fmt.Sprintf("subscribers-%d.log", i)))
		if err != nil {
			return res, err
		}
		openedAt = time.Now()
		h.logf("delivery: %s: %d clients open", ph.name, len(spec.Tokens))
		if subStart, err = CPUTime(subs.PID()); err != nil {
			_, _ = subs.Stop()
			return res, err
		}
	}
	stopSubs := func() error {
		if subs == nil {
			return nil
		}
		t, err := CPUTime(subs.PID())
		if err == nil {
			res.subCPU = t - subStart
		}
		res.held = time.Since(openedAt)
		res.subs, err = subs.Stop()
		subs = nil
		return err
	}
	defer func() { _ = stopSubs() }()

	// From the moment the clients are open (or the first batch, without
	// clients) to the last batch; live, from the first event produced to
	// the last.
	var fromAt time.Time
	var fromApplied int64
	var produced time.Time
	if ph.live {
		dayRate, err := h.liveDayRate()
		if err != nil {
			return res, err
		}
		pacer := &Pacer{Broker: h.broker.Addr, Mix: DefaultMix, Rate: h.s.LiveRate, Topic: chat, DayRate: dayRate, Restamp: true}
		pctx, stop := context.WithTimeout(ctx, h.s.SSEHold)
		fromAt = time.Now()
		err = pacer.Run(pctx)
		stop()
		produced = time.Now()
		if err != nil {
			return res, err
		}
		hwms, err := highWaterMarks(ctx, h.broker.Addr, chat, Topics[TopicChat])
		if err != nil {
			return res, err
		}
		for p := range Topics[TopicChat] {
			ws = append(ws, watched{stream: "chat", partition: p, hwm: hwms[p]})
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second+time.Duration(h.s.Events)*time.Millisecond)
	prog, err := waitApplied(wctx, h.redis.Client, ws, 20*time.Millisecond, func(n int64) {
		if fromAt.IsZero() && n > 0 {
			fromAt, fromApplied = time.Now(), n
		}
	})
	cancel()
	if err != nil {
		return res, err
	}
	h.logf("delivery: %s: %s events applied", ph.name, thousands(prog.Applied))
	if ph.clients > 0 && !ph.live && openedAt.After(prog.First) {
		h.logf("delivery: the replica applied its first batch %s before the clients were open",
			openedAt.Sub(prog.First).Round(time.Millisecond))
	}
	res.applied = prog.Applied - fromApplied
	if ph.live {
		res.lag = prog.Done.Sub(produced)
		if d := produced.Sub(fromAt).Seconds(); d > 0 {
			res.rate = float64(res.applied) / d
		}
	} else if d := prog.Done.Sub(fromAt).Seconds(); d > 0 {
		res.rate = float64(res.applied) / d
	}
	if res.costs, err = m.end(ctx, prog.Applied); err != nil {
		return res, err
	}
	// The alerts of the replay go out to the notifier and the clients
	// after the last batch too: hold the clients for the rest of a minute,
	// and at least a few seconds after the last batch.
	if subs != nil {
		if rest := max(h.s.SSEHold-time.Since(openedAt), 5*time.Second-time.Since(prog.Done)); rest > 0 {
			sleepCtx(ctx, rest)
		}
	}
	fams, err := rep.Metrics(ctx)
	if err != nil {
		return res, err
	}
	h.report.Profiles = append(h.report.Profiles, profile)
	res.alerts = sumCounter(fams, "replywatch_alerts_total", nil)
	res.routed = sumCounter(fams, "replywatch_notify_records_total", map[string]string{"result": "routed"})
	if subs == nil {
		return res, nil
	}
	// Each client against the records of its scope on the topic before
	// the position it got to (its last event id): none missing, none
	// twice, whenever it stopped; and whether it got all the topic holds
	// for it.
	if err := stopSubs(); err != nil {
		return res, err
	}
	recs, err := readScopes(ctx, h.broker.Addr, alerts)
	if err != nil {
		return res, err
	}
	for k, c := range clients {
		if k >= len(res.subs.Counts) || k >= len(res.subs.LastIDs) {
			break
		}
		at, err := httpapi.ParsePosition(res.subs.LastIDs[k])
		if err != nil {
			return res, fmt.Errorf("client %d: last event id: %w", k, err)
		}
		var want, all int64
		for _, rec := range recs {
			if c.agent == "" && rec.shop || c.agent != "" && rec.agent == c.agent {
				all++
				if rec.off < at[rec.part] {
					want++
				}
			}
		}
		switch got := res.subs.Counts[k]; {
		case got == want:
			res.exact++
		case got < want:
			res.short += want - got
		default:
			res.over += got - want
		}
		if res.subs.Counts[k] == all {
			res.atEnd++
		}
	}
	return res, nil
}

// liveDayRate is the simulator rate of a day of LiveRate × SSEHold chat
// events: the live phases pace one simulated day over their length.
func (h *harness) liveDayRate() (float64, error) {
	perDay, err := DefaultMix.perDay(isChat)
	if err != nil {
		return 0, err
	}
	return float64(h.s.LiveRate) * h.s.SSEHold.Seconds() / float64(perDay), nil
}

// scopeRecord is what the count check needs of an alert record: where it
// is, whether it has a shop (every wall sees it: the walls are of every
// simulated shop, the only shops on the topic) and its agent.
type scopeRecord struct {
	part  int
	off   int64
	shop  bool
	agent string
}

// readScopes reads topic (partitioned as TopicAlerts) to its end.
func readScopes(ctx context.Context, broker, topic string) ([]scopeRecord, error) {
	hwms, err := highWaterMarks(ctx, broker, topic, Topics[TopicAlerts])
	if err != nil {
		return nil, err
	}
	var out []scopeRecord
	for p, hwm := range hwms {
		if hwm == 0 {
			continue
		}
		// A short MaxWait: Close waits for the fetch past the end.
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: p, MaxBytes: 4 << 20,
			MaxWait: 100 * time.Millisecond})
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				return nil, fmt.Errorf("reading %s/%d: %w", topic, p, err)
			}
			var a struct {
				Shop  string `json:"shop_id"`
				Agent string `json:"agent_id"`
			}
			if err := json.Unmarshal(m.Value, &a); err != nil {
				r.Close()
				return nil, fmt.Errorf("%s/%d at %d: %w", topic, p, m.Offset, err)
			}
			out = append(out, scopeRecord{part: p, off: m.Offset, shop: a.Shop != "", agent: a.Agent})
			if m.Offset+1 >= hwm {
				break
			}
		}
		r.Close()
	}
	return out, nil
}

// createTopic creates a topic on the benchmark broker.
func createTopic(ctx context.Context, broker, topic string, partitions int) error {
	var d kafka.Dialer
	c, err := d.DialContext(ctx, "tcp", broker)
	if err != nil {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	defer c.Close()
	if err := c.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}); err != nil {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	return nil
}

// waitHTTP polls url until it answers 200, or its server exited.
func waitHTTP(ctx context.Context, url string, within time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("the server of %s exited", url)
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s answered %s", url, resp.Status)
		} else {
			last = err
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("waiting for %s: %w", url, last)
}
