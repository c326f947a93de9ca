package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/sim"
)

// received is one alert record and when the reader got it.
type received struct {
	at    time.Time
	alert alerting.Alert
}

// alertReader reads every partition of cs.alerts from the start, noting
// when each record arrived.
type alertReader struct {
	mu     sync.Mutex
	got    []received
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   int
}

func readAlerts(broker string) *alertReader {
	ctx, cancel := context.WithCancel(context.Background())
	ar := &alertReader{cancel: cancel}
	for p := range Topics[TopicAlerts] {
		ar.wg.Add(1)
		go func() {
			defer ar.wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: []string{broker}, Topic: TopicAlerts, Partition: p,
				MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 20 * time.Millisecond, ReadBatchTimeout: 20 * time.Millisecond,
			})
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				now := time.Now()
				var a alerting.Alert
				ar.mu.Lock()
				if json.Unmarshal(m.Value, &a) != nil {
					ar.errs++
				} else {
					ar.got = append(ar.got, received{at: now, alert: a})
				}
				ar.mu.Unlock()
			}
		}()
	}
	return ar
}

func (ar *alertReader) stop() []received {
	ar.cancel()
	ar.wg.Wait()
	return ar.got
}

// probes starts waits whose timers fall a few seconds after they are
// sent, among the live traffic: half are stamped 2 minutes minus a lead
// before now (their reply_warning is due after the lead), half 3 minutes
// minus the lead (their 3m reply_breach is due after the lead).
type probes struct {
	run    string
	perSec int
	until  time.Time
	start  time.Time
	rnd    *rand.Rand
	shop   sim.Shop
	mu     sync.Mutex
	n      int
	sentAt map[string]time.Time
}

func (p *probes) next(now time.Time) []sim.Record {
	if now.After(p.until) {
		return nil
	}
	want := int(now.Sub(p.start).Seconds() * float64(p.perSec))
	var out []sim.Record
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.n < want {
		p.n++
		buyer := probeBuyer(p.run, p.n)
		lead := time.Second + time.Duration(p.rnd.IntN(2000))*time.Millisecond
		back := 2 * time.Minute // the warning is due at ts + 3m - 60s
		if p.n%2 == 0 {
			back = 3 * time.Minute // the 3m breach is due at ts + 3m
		}
		ts := now.Add(lead - back).Truncate(time.Millisecond)
		p.sentAt[buyer] = now
		out = append(out, sim.Record{Topic: event.Chat, Key: p.shop.ID + "/" + buyer, Event: event.Event{
			EventID: "probe-" + p.run + "-" + strconv.Itoa(p.n), Type: event.TypeMessage, TS: event.Time{Time: ts},
			ShopID: p.shop.ID, Platform: p.shop.Platform, BuyerID: buyer, Sender: event.SenderBuyer,
			AgentID: p.shop.Agents[0], Text: "在吗？这个什么时候发货",
		}})
	}
	return out
}

// delays are the alert delays of one run, in ms beyond the deadline.
type delays struct {
	arrival, emitted []float64
}

// percentile is the nearest-rank percentile q (0..1) of sorted xs.
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

// delay runs the live-load alert delay measurement once per grace.
func (h *harness) delay(ctx context.Context) error {
	for i, g := range h.s.Graces {
		if err := h.delayRun(ctx, g, i == 0); err != nil {
			return fmt.Errorf("grace %s: %w", g, err)
		}
	}
	return nil
}

// waitOwned waits until the replicas together own every input partition.
func waitOwned(ctx context.Context, timeout time.Duration, reps ...*Replica) error {
	// The replicas create the buyers topic with the default partition
	// count, buyersPartitions, and own its partitions too.
	want := float64(Topics[TopicChat] + Topics[TopicOrders] + Topics[TopicPresence] + buyersPartitions)
	deadline := time.Now().Add(timeout)
	for {
		total := 0.0
		for _, r := range reps {
			fams, err := r.Metrics(ctx)
			if err == nil {
				total += sumCounter(fams, "replywatch_owned_partitions", nil)
			}
		}
		if total == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replicas own %.0f of %.0f partitions after %s", total, want, timeout)
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (h *harness) delayRun(ctx context.Context, grace time.Duration, costsToo bool) error {
	if err := h.freshBroker(ctx); err != nil {
		return err
	}
	run := strconv.FormatInt(grace.Milliseconds(), 10) + "ms"
	cfg, err := replicaConfig(h.broker.Addr, h.redis.URL, replicaOpts{
		group: "delay-" + run, grace: grace, allDay: true, session: h.s.Session})
	if err != nil {
		return err
	}
	rep, err := StartInProcess("delay-"+run, cfg, h.log)
	if err != nil {
		return err
	}
	defer h.stop(rep)
	if err := waitOwned(ctx, 60*time.Second, rep); err != nil {
		return err
	}
	shops, err := sim.Shops(sim.Options{Seed: DefaultMix.Seed, Shops: DefaultMix.Shops, Agents: DefaultMix.Agents})
	if err != nil {
		return err
	}
	reader := readAlerts(h.broker.Addr)
	now := time.Now()
	pr := &probes{run: run, perSec: h.s.ProbesPerSecond, start: now,
		// The last probe's timer is due at most 3 s after it is sent.
		until: now.Add(h.s.DelayFor - 3*time.Second),
		rnd:   rand.New(rand.NewPCG(1, uint64(grace))), shop: shops[0],
		sentAt: map[string]time.Time{}}
	pacer := &Pacer{Broker: h.broker.Addr, Mix: DefaultMix, Rate: h.s.LiveRate, Probe: pr.next}

	// Costs are measured over the live run after a warm-up second.
	pctx, stopPacer := context.WithTimeout(ctx, h.s.DelayFor)
	defer stopPacer()
	perr := make(chan error, 1)
	go func() { perr <- pacer.Run(pctx) }()
	if !sleepCtx(ctx, time.Second) {
		return ctx.Err()
	}
	famsBefore, err := rep.Metrics(ctx)
	if err != nil {
		return err
	}
	sentBefore := pacer.Sent()
	var m *meter
	if costsToo {
		if m, err = h.startMeter(ctx, h.profilePath("live")); err != nil {
			return err
		}
	}
	<-pctx.Done()
	if err := <-perr; err != nil {
		return err
	}
	sent := pacer.Sent()
	livePart := fmt.Sprintf("live %d/s (grace %s)", h.s.LiveRate, grace)
	if m != nil {
		c, err := m.end(ctx, sent-sentBefore)
		if err != nil {
			return err
		}
		famsAfter, err := rep.Metrics(ctx)
		if err != nil {
			return err
		}
		h.roundTrips(livePart, tripsOf(famsAfter).minus(tripsOf(famsBefore)))
		h.commands(livePart, c)
		h.cpu(livePart, c, "processor")
		h.report.Profiles = append(h.report.Profiles, h.profilePath("live"))
		if top, err := pprofTop(h.profilePath("live"), "", ".processor", "-tagfocus=role=processor"); err == nil && top != "" {
			h.report.Profiles = append(h.report.Profiles, top)
		}
	}
	achieved := float64(sent) / h.s.DelayFor.Seconds()
	// Alerts of the last probes arrive within their lead + grace.
	sleepCtx(ctx, grace+time.Second)
	got := reader.stop()

	d, matched := probeDelays(got, pr, grace)
	if matched == 0 {
		return fmt.Errorf("none of the %d probe waits alerted", pr.n)
	}
	slices.Sort(d.arrival)
	slices.Sort(d.emitted)
	h.logf("delay grace %s: %d events at %.0f/s, %d of %d probe alerts; beyond grace p50 %.0f ms p99 %.0f ms max %.0f ms",
		grace, sent, achieved, matched, pr.n, percentile(d.arrival, .5), percentile(d.arrival, .99), percentile(d.arrival, 1))
	part := "delay grace " + grace.String()
	r := h.report
	r.add(part, "live chat rate achieved", achieved, "events/s", "paced producer, timestamps = send time")
	r.within(part, "probe alerts received", float64(matched), "alerts", fmt.Sprintf("= %d probes", pr.n),
		float64(pr.n), float64(pr.n), "one timer alert per probe wait, due during the run")
	r.add(part, "configured grace", float64(grace.Milliseconds()), "ms", "partition clock = wall clock − grace")
	r.add(part, "delay beyond grace at the alerts reader, p50", percentile(d.arrival, .5), "ms", "arrival − due − grace")
	r.atMost(part, "delay beyond grace at the alerts reader, p99", percentile(d.arrival, .99), "ms", 250, "")
	r.add(part, "delay beyond grace at the alerts reader, max", percentile(d.arrival, 1), "ms", "")
	r.add(part, "delay beyond grace by emitted_at, p50", percentile(d.emitted, .5), "ms", "emitted_at − due − grace")
	r.add(part, "delay beyond grace by emitted_at, p99", percentile(d.emitted, .99), "ms", "")
	r.add(part, "total delay after the deadline at the reader, p99", percentile(d.arrival, .99)+float64(grace.Milliseconds()), "ms", "grace included")
	return nil
}

// probeDelays matches the probes' timer alerts: firing alerts of probe
// buyers whose timer came due after the probe was sent (the 3m probes'
// warning was due before and fires at once; it measures nothing).
func probeDelays(got []received, pr *probes, grace time.Duration) (delays, int) {
	var d delays
	seen := map[string]bool{}
	prefix := "probe-" + pr.run + "-"
	for _, g := range got {
		a := g.alert
		if a.Status != alerting.Firing || !strings.HasPrefix(a.BuyerID, prefix) || seen[a.ID] {
			continue
		}
		sent, ok := pr.sentAt[a.BuyerID]
		if !ok || !a.At.After(sent) {
			continue
		}
		seen[a.ID] = true
		// at is when the timer condition became true: the warning time of a
		// reply_warning, the deadline of a reply_breach.
		d.arrival = append(d.arrival, float64(g.at.Sub(a.At)-grace)/float64(time.Millisecond))
		d.emitted = append(d.emitted, float64(a.EmittedAt.Sub(a.At)-grace)/float64(time.Millisecond))
	}
	return d, len(seen)
}
