package notify

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/replywatch/replywatch/alerting"
)

// Options are the parts a Notifier is built from.
type Options struct {
	Brokers []string
	// Dialer connects to the brokers when they need TLS or SASL.
	Dialer           *kafka.Dialer
	Topic            string
	GroupID          string
	StartOffset      string // earliest | latest
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration

	Route     *Route
	People    Directory
	Receivers map[string]Receiver
	Marks     *Marks
	MaxAge    time.Duration
	Metrics   *Metrics
	Log       *zap.Logger
	// Now is the wall clock (time.Now when nil).
	Now func() time.Time
	// Tick is how often groups are checked for a flush (100ms).
	Tick time.Duration
	// BatchSize is the most records read and checked against the marks
	// in one Redis round trip (500).
	BatchSize      int
	CommitInterval time.Duration
	// RetryMin and RetryMax bound the backoff between failed sends (1s, 1m).
	RetryMin, RetryMax time.Duration
	// ConfigRetry is how long a receiver whose configuration the vendor
	// refused waits before trying again (5m): not a retry loop, but no
	// alert is given up either.
	ConfigRetry time.Duration
	// RateLimitWait is how long to wait after a vendor's rate-limit answer
	// that names no time (1m).
	RateLimitWait time.Duration
	// MaxPending pauses reading while this many records are unsettled on
	// one partition (10000).
	MaxPending int
}

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Tick, 100*time.Millisecond)
	def(&o.CommitInterval, time.Second)
	def(&o.RetryMin, time.Second)
	def(&o.RetryMax, time.Minute)
	def(&o.ConfigRetry, 5*time.Minute)
	def(&o.RateLimitWait, time.Minute)
	def(&o.SessionTimeout, 10*time.Second)
	def(&o.RebalanceTimeout, 10*time.Second)
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 10000
	}
	if o.GroupID == "" {
		o.GroupID = "replywatch-notify"
	}
}

// Notifier is one member of the notify consumer group.
type Notifier struct {
	o       Options
	mu      sync.Mutex // guards lanes
	lanes   map[string]*lane
	budgets map[string]*Budget
	wake    map[string]chan struct{}
	joined  atomic.Bool
	badLog  *rate.Limiter

	healthMu sync.Mutex
	health   map[string]error // receivers the vendor says are misconfigured
}

// New builds a notifier.
func New(o Options) *Notifier {
	o.defaults()
	n := &Notifier{o: o, lanes: map[string]*lane{}, budgets: map[string]*Budget{}, wake: map[string]chan struct{}{}, health: map[string]error{},
		badLog: rate.NewLimiter(rate.Every(time.Second), 5)}
	for name, r := range o.Receivers {
		n.lanes[name] = newLane(name, o.MaxAge)
		n.budgets[name] = NewBudget(o.Marks.Client, o.Marks.Prefix, name, r.Limits())
		n.wake[name] = make(chan struct{}, 1)
		o.Metrics.init(name)
	}
	return n
}

// Joined reports whether the notifier is a member of a group generation.
func (n *Notifier) Joined() bool { return n.joined.Load() }

// Check fails while a receiver's vendor says its configuration is wrong,
// naming the receiver: /readyz shows it.
func (n *Notifier) Check(context.Context) error {
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	if len(n.health) == 0 {
		return nil
	}
	var msgs []string
	for name, err := range n.health {
		msgs = append(msgs, fmt.Sprintf("receiver %s: %v", name, err))
	}
	sort.Strings(msgs)
	return errors.New(strings.Join(msgs, "; "))
}

// Run joins the group and delivers until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	workCtx, cancelWork := context.WithCancel(ctx)
	defer func() {
		cancelWork()
		wg.Wait()
	}()
	for name, r := range n.o.Receivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.sender(workCtx, name, r)
		}()
		if am, ok := r.(*Alertmanager); ok {
			wg.Add(1)
			go func() {
				defer wg.Done()
				am.Run(workCtx, n.o.Now)
			}()
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.ticker(workCtx)
	}()
	return n.consume(ctx)
}

// ticker flushes due groups into ready messages and wakes their senders.
func (n *Notifier) ticker(ctx context.Context) {
	t := time.NewTicker(n.o.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := n.o.Now()
		n.mu.Lock()
		for name, l := range n.lanes {
			l.flush(now)
			if len(l.ready) > 0 {
				select {
				case n.wake[name] <- struct{}{}:
				default:
				}
			}
			n.o.Metrics.Pending.WithLabelValues(name).Set(float64(l.pending()))
			n.o.Metrics.Memory.WithLabelValues(name).Set(float64(l.seen.size()))
		}
		n.mu.Unlock()
	}
}

// add puts routed, not yet delivered items into their lanes. It returns
// how many of them a lane found queued or sent already (duplicates).
func (n *Notifier) add(items []*Item) (dups int) {
	now := n.o.Now()
	var out []settled
	n.mu.Lock()
	for _, it := range items {
		out = append(out, n.lanes[it.Receiver].add(it, now)...)
	}
	n.mu.Unlock()
	if len(out) > 0 {
		n.settleUnsent(out)
	}
	for _, s := range out {
		if s.how == resultDuplicate {
			dups++
		}
	}
	return dups
}

// settleUnsent marks items that leave without a message (inhibited) so a
// redelivery does not send them, counts duplicates, and releases their
// records.
func (n *Notifier) settleUnsent(out []settled) {
	var items []*Item
	for _, s := range out {
		items = append(items, s.item)
		n.o.Metrics.Deliveries.WithLabelValues(s.item.Receiver, s.how).Inc()
	}
	var inhibited []*Item
	for _, s := range out {
		if s.how == resultInhibited {
			inhibited = append(inhibited, s.item)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.o.Marks.Mark(ctx, inhibited, resultInhibited); err != nil {
		n.o.Log.Warn("cannot mark inhibited alerts; a redelivery may queue them again", zap.Error(err))
	}
	for _, it := range items {
		it.rec.settle()
	}
}

// sender is one receiver's send loop: take the next message within the
// budget, send it until accepted, mark it.
func (n *Notifier) sender(ctx context.Context, name string, r Receiver) {
	l, b := n.lanes[name], n.budgets[name]
	log := n.o.Log.With(zap.String("receiver", name))
	idle := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-n.wake[name]:
		case <-t.C:
		}
		return true
	}
	for ctx.Err() == nil {
		n.mu.Lock()
		ready := l.hasReady()
		n.mu.Unlock()
		if !ready {
			if !idle(n.o.Tick) {
				return
			}
			continue
		}
		avail, wait, err := b.Available(ctx, n.o.Now())
		if err != nil {
			log.Warn("cannot read the send budget; waiting", zap.Error(err))
			wait = time.Second
		}
		if avail == 0 || err != nil {
			if !sleep(ctx, max(wait, time.Millisecond)) {
				return
			}
			continue
		}
		n.mu.Lock()
		m := l.take(avail)
		n.mu.Unlock()
		if m == nil {
			continue
		}
		id, wait, err := b.Take(ctx, n.o.Now())
		if id == "" {
			// Another replica used the budget first, or Redis is away.
			n.mu.Lock()
			l.putBack(m)
			n.mu.Unlock()
			if err != nil {
				log.Warn("cannot take from the send budget; waiting", zap.Error(err))
				wait = time.Second
			}
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		for _, it := range m.Items {
			it.rec.inflight(1)
		}
		n.deliver(ctx, name, r, b, id, m, log)
	}
}

// deliver sends m until the receiver accepts it, then marks and settles
// its items. A send already under way finishes even when ctx ends (so an
// accepted message is always marked); waiting between tries does not.
func (n *Notifier) deliver(ctx context.Context, name string, r Receiver, b *Budget, sendID string, m *Message, log *zap.Logger) {
	l := n.lanes[name]
	release := func(items []*Item) {
		n.mu.Lock()
		l.forget(items)
		n.mu.Unlock()
		for _, it := range items {
			it.rec.inflight(-1)
		}
	}
	urgent(m.Items)
	backoff := n.o.RetryMin
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			n.o.Metrics.Deliveries.WithLabelValues(name, resultRetried).Inc()
			// Every attempt reaches the vendor and counts against its limit.
			for {
				id, wait, err := b.Take(ctx, n.o.Now())
				if id != "" {
					sendID = id
					break
				}
				if err != nil {
					wait = time.Second
				}
				if !sleep(ctx, wait) {
					release(m.Items)
					return
				}
			}
		}
		sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		err := r.Send(sendCtx, m, n.o.Now())
		b.Touch(sendCtx, sendID, n.o.Now())
		cancel()
		if err == nil {
			break
		}
		n.o.Metrics.Deliveries.WithLabelValues(name, resultFailed).Inc()
		var wait time.Duration
		var rl *RateLimitError
		var ce *ConfigError
		switch {
		case errors.As(err, &rl):
			wait = rl.Wait
			if wait <= 0 {
				wait = n.o.RateLimitWait
			}
			log.Warn("receiver rate-limited the message; sending it again after a wait",
				zap.Int("alerts", len(m.Items)), zap.Duration("wait", wait), zap.Error(err))
		case errors.As(err, &ce):
			wait = n.o.ConfigRetry
			n.o.Metrics.ConfigErrors.WithLabelValues(name).Inc()
			n.healthMu.Lock()
			_, known := n.health[name]
			n.health[name] = err
			n.healthMu.Unlock()
			if !known {
				log.Error("receiver refused the message: its configuration is wrong (secret, keyword or token); alerts wait for it",
					zap.Int("alerts", len(m.Items)), zap.Error(err))
			}
		default:
			wait = backoff
			backoff = min(2*backoff, n.o.RetryMax)
			if attempt == 0 || attempt%10 == 0 {
				log.Warn("sending failed; trying again", zap.Int("attempt", attempt+1), zap.Error(err))
			}
		}
		if !sleep(ctx, wait) {
			release(m.Items)
			return
		}
		// Items whose partition moved on while we waited are the new
		// owner's to send.
		var kept, gone []*Item
		for _, it := range m.Items {
			if it.revoked() {
				gone = append(gone, it)
			} else {
				kept = append(kept, it)
			}
		}
		release(gone)
		if m.Items = kept; len(m.Items) == 0 {
			return
		}
	}
	n.healthMu.Lock()
	delete(n.health, name)
	n.healthMu.Unlock()

	now := n.o.Now()
	byHow := map[string][]*Item{}
	for i, it := range m.Items {
		how := resultSent
		switch {
		case m.Stale:
			how = resultStale
		case i >= m.Shown:
			how = resultDigested
		}
		byHow[how] = append(byHow[how], it)
		if !it.Alert.EmittedAt.IsZero() {
			n.o.Metrics.Delay.WithLabelValues(name).Observe(now.Sub(it.Alert.EmittedAt).Seconds())
		}
	}
	for how, items := range byHow {
		n.o.Metrics.Deliveries.WithLabelValues(name, how).Add(float64(len(items)))
		n.markAccepted(ctx, items, how, log)
	}
	n.mu.Lock()
	l.done(m.Items)
	n.mu.Unlock()
	for _, it := range m.Items {
		it.rec.inflight(-1)
		it.rec.settle()
	}
}

// markAccepted writes the marks of accepted items, trying a few times:
// an unmarked accepted item is sent again only if its record is read
// again.
func (n *Notifier) markAccepted(ctx context.Context, items []*Item, how string, log *zap.Logger) {
	for attempt := 0; attempt < 5; attempt++ {
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := n.o.Marks.Mark(mctx, items, how)
		cancel()
		if err == nil {
			return
		}
		log.Warn("cannot mark delivered alerts", zap.Int("attempt", attempt+1), zap.Error(err))
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// route turns decoded alerts into items, one per receiver its routes name.
func (n *Notifier) route(a alerting.Alert, rec *record) []*Item {
	var items []*Item
	for _, r := range n.o.Route.For(&a) {
		if _, ok := n.lanes[r.Receiver]; !ok {
			continue
		}
		items = append(items, &Item{Alert: a, Receiver: r.Receiver, Route: r, Mentions: n.o.People.Mentions(&a, r.Mention), rec: rec})
	}
	return items
}
