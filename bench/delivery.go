package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/config"
)

// deliveryPhase is one replay of the chat backlog in the delivery part:
// with or without the notifier, and with how many SSE clients open.
type deliveryPhase struct {
	name    string
	notify  bool
	clients int
}

// Settings of the delivery part.
const (
	// receiverDelay is how long the benchmark's webhook receiver takes to
	// answer, as a chat vendor's API does.
	receiverDelay = 50 * time.Millisecond
	// envWebhookSecret carries the webhook receiver's secret to the
	// replica (a config written to a file masks literal secrets).
	envWebhookSecret = "RWBENCH_WEBHOOK_SECRET"
)

// delivery replays the chat backlog, produced once before, through one
// replica child process again and again: without the notifier, with it
// sending to a webhook receiver that answers in 50 ms, with 500 SSE
// clients reading every alert record (in a process of their own), and
// without either once more to see the drift of the machine. Each phase
// writes its alerts to a topic of its own, so the notifier of a phase
// reads only that phase's alerts, and starts on an empty Redis.
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

	phases := []deliveryPhase{
		{"notifier off, no SSE clients", false, 0},
		{"notifier on (webhook answering in 50 ms), no SSE clients", true, 0},
		{strconv.Itoa(h.s.SSEClients) + " SSE clients, notifier off", false, h.s.SSEClients},
		{"notifier on and " + strconv.Itoa(h.s.SSEClients) + " SSE clients", true, h.s.SSEClients},
		{"notifier off, no SSE clients (again)", false, 0},
	}
	const part = PartDelivery
	r := h.report
	var base, baseCPU []float64
	for i, ph := range phases {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		before := requests.Load()
		res, err := h.deliveryPhase(ctx, i, ph, recv.URL)
		if err != nil {
			return fmt.Errorf("%s: %w", ph.name, err)
		}
		sent := requests.Load() - before
		h.logf("delivery: %s: %.0f events/s, processor %.1f µs/event, %d webhook requests, subscribers %+v",
			ph.name, res.rate, res.costs.perEvent(res.costs.child), sent, res.subs)
		note := fmt.Sprintf("%s events from first applied batch to last", thousands(res.applied))
		if ph.clients > 0 {
			note = fmt.Sprintf("%s events from the moment all %d clients were open to the last batch", thousands(res.applied), ph.clients)
		}
		r.add(part, ph.name+": chat events/s", res.rate, "events/s", note)
		r.add(part, ph.name+": processor CPU per event", res.costs.perEvent(res.costs.child), "µs",
			"/proc/<replica pid>/stat over the whole replay, group join included")
		r.add(part, ph.name+": alert records written", res.alerts, "records", "")
		if ph.notify {
			r.add(part, ph.name+": alert records the notifier read and routed", res.routed, "records", "by the end of the phase")
			r.add(part, ph.name+": webhook requests accepted", float64(sent), "requests",
				"grouped by shop and kind (group_wait 5s, group_interval 1m, the defaults) by the end of the phase")
		}
		if ph.clients > 0 {
			r.add(part, ph.name+": SSE records received", float64(res.subs.Records), "records",
				fmt.Sprintf("fewest to one client %s, reconnects after a drop %d, errors %d; subscriber process CPU %.1f s over %.0f s held",
					thousands(res.subs.Fewest), res.subs.Reconnects, res.subs.Errors, res.subCPU.Seconds(), res.held.Seconds()))
		}
		if ph.clients > 0 && res.subs.Records > 0 && len(baseCPU) > 0 {
			extra := res.costs.perEvent(res.costs.child) - baseCPU[0]
			r.add(part, ph.name+": replica CPU per SSE record delivered", extra*float64(res.costs.events)/float64(res.subs.Records), "µs",
				"replica CPU per event above the first phase's, times the events, over the records the clients received")
		}
		if !ph.notify && ph.clients == 0 {
			baseCPU = append(baseCPU, res.costs.perEvent(res.costs.child))
			base = append(base, res.rate)
		} else if len(base) > 0 {
			r.add(part, ph.name+": events/s against the first phase", 100*res.rate/base[0], "%", "")
		}
	}
	if len(base) == 2 {
		r.add(part, "drift of the machine: last phase against the first", 100*base[1]/base[0], "%",
			"the same replay with neither; the machine's own noise")
	}
	r.Notes = append(r.Notes, fmt.Sprintf("delivery: every process (broker and harness, Redis, the replica, the subscriber process) "+
		"shares this machine's %d cores, none pinned; the CPU each used is reported", runtime.NumCPU()))
	return nil
}

// phaseResult is what one delivery phase measured.
type phaseResult struct {
	rate    float64
	applied int64
	alerts  float64
	routed  float64
	costs   costs
	subs    SubscriberStats
	subCPU  time.Duration
	held    time.Duration
}

func (h *harness) deliveryPhase(ctx context.Context, i int, ph deliveryPhase, receiver string) (phaseResult, error) {
	var res phaseResult
	if err := h.redis.Reset(ctx); err != nil {
		return res, err
	}
	alerts := fmt.Sprintf("%s.delivery%d", TopicAlerts, i)
	if err := createTopic(ctx, h.broker.Addr, alerts, Topics[TopicAlerts]); err != nil {
		return res, err
	}
	ws, err := watchList(ctx, h.broker.Addr, "chat")
	if err != nil {
		return res, err
	}
	cfg, err := replicaConfig(h.broker.Addr, h.redis.URL, replicaOpts{group: fmt.Sprintf("delivery-%d", i), session: h.s.Session})
	if err != nil {
		return res, err
	}
	cfg.Kafka.Topics.Alerts = alerts
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
		if err := cfg.Validate(); err != nil {
			return res, fmt.Errorf("benchmark config: %w", err)
		}
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
	if ph.clients > 0 {
		subs, err = StartSubscribers(ctx, "http://"+rep.addr+"/api/v1/alerts/stream", ph.clients,
			filepath.Join(h.dir, fmt.Sprintf("subscribers-%d.log", i)))
		if err != nil {
			return res, err
		}
		openedAt = time.Now()
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
	// clients) to the last batch.
	var fromAt time.Time
	var fromApplied int64
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
	if ph.clients > 0 && openedAt.After(prog.First) {
		h.logf("delivery: the replica applied its first batch %s before the clients were open",
			openedAt.Sub(prog.First).Round(time.Millisecond))
	}
	res.applied = prog.Applied - fromApplied
	if d := prog.Done.Sub(fromAt).Seconds(); d > 0 {
		res.rate = float64(res.applied) / d
	}
	if res.costs, err = m.end(ctx, prog.Applied); err != nil {
		return res, err
	}
	// The alerts of the replay go out to the notifier and the clients
	// after the last batch too: hold the clients for the rest of a minute.
	if subs != nil {
		if rest := h.s.SSEHold - time.Since(openedAt); rest > 0 {
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
	return res, stopSubs()
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
