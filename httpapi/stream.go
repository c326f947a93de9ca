package httpapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/config"
)

// Hub reads the alerts topic from its tail, each replica on its own (a
// reader per partition, no consumer group), keeps the latest records, and
// hands each record to the SSE subscribers whose scope it is in: they are
// filed by the agents or shops they may see, so that a record costs work
// only for the subscribers it concerns.
//
// An event's id is the stream position after it: for every partition the
// next offset to read ("0:1523,1:977"). A client that reconnects with it
// as Last-Event-ID gets exactly what follows, from this replica or any
// other, after a restart too: what the hub still holds comes from memory,
// anything older is read again from Kafka.
type Hub struct {
	Brokers []string
	Topic   string
	// Dialer connects to the brokers when they need TLS or SASL
	// (kafka.DefaultDialer when nil).
	Dialer *kafka.Dialer
	// Keep is how many recent records the hub holds for resuming clients
	// (default 10,000); Buffer how many records a subscriber may fall behind
	// before it is dropped (default 1,024); Heartbeat how often an idle
	// stream gets a comment line (default 15 s). FlushEvery is the least
	// time between two writes to one stream (default 100 ms): what arrives
	// meanwhile goes out in the next write, so that a busy topic costs a
	// write and a wake-up per client ten times a second rather than one per
	// record.
	Keep       int
	Buffer     int
	Heartbeat  time.Duration
	FlushEvery time.Duration
	Log        *zap.Logger

	mu    sync.Mutex
	ready chan struct{}
	pos   map[int]int64 // next offset per partition
	low   map[int]int64 // the oldest offset per partition still held
	ring  []hubEvent
	subs  map[*subscriber]struct{}
	// Every subscriber is filed once: under every record (all), or under
	// each agent (byAgent) or each shop (byShop) whose records it sees.
	all     map[*subscriber]struct{}
	byAgent map[string]map[*subscriber]struct{}
	byShop  map[string]map[*subscriber]struct{}
	// nsubs is len(subs), read without the lock: records are decoded
	// only while someone may want them.
	nsubs atomic.Int64

	subscribers prometheus.Gauge
	dropped     prometheus.Counter
	sent        prometheus.Counter
}

// hubEvent is one alert record and where it is in the topic.
type hubEvent struct {
	part int
	off  int64
	data []byte
	// rec is data decoded (once decoded is set): at publish while the hub
	// has subscribers, else by the client that needs it.
	decoded bool
	rec     record
	// id is the hub's position after the record and frame the whole SSE
	// event with that id, written once at publish while the hub has
	// subscribers: what every client in step with the hub sends as it is.
	id    string
	frame []byte
}

// decode reads the fields the filters need, once.
func (ev *hubEvent) decode() {
	if !ev.decoded {
		// UnmarshalJSON itself: json.Unmarshal would scan the record twice
		// more before it. An undecodable record reaches no one's filter.
		_ = ev.rec.UnmarshalJSON(ev.data)
		ev.decoded = true
	}
}

type subscriber struct {
	ch    chan *hubEvent // shared by every subscriber: read only
	gone  chan struct{}  // closed when the hub dropped the subscriber
	route route
}

// route is where the hub files a subscriber: under every record, or under
// the agents or the shops whose records it may see. A record has one shop
// and one agent, so a subscriber filed under several of either gets it
// once.
type route struct {
	all           bool
	agents, shops []string
}

// routeOf is the narrowest route that holds every record the scope and
// the filter let through: the stream still checks each record against
// both (a kind, say), but sees no record of another agent or shop.
func routeOf(s *Scope, f *filter) route {
	switch {
	case s.Role == config.RoleAgent:
		return route{agents: []string{s.Agent}}
	case len(f.agents) > 0:
		return route{agents: f.agents}
	case len(f.shops) > 0:
		return route{shops: f.shops}
	case s.All:
		return route{all: true}
	}
	return route{shops: slices.Sorted(maps.Keys(s.Shops))}
}

// NewHub reads topic on brokers once Run starts; its metrics go to reg
// (none when nil).
func NewHub(brokers []string, topic string, reg prometheus.Registerer, log *zap.Logger) *Hub {
	h := &Hub{Brokers: brokers, Topic: topic, Log: log, ready: make(chan struct{}),
		subs: map[*subscriber]struct{}{}, all: map[*subscriber]struct{}{},
		byAgent: map[string]map[*subscriber]struct{}{}, byShop: map[string]map[*subscriber]struct{}{},
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "replywatch_api_stream_subscribers",
			Help: "Server-Sent Events streams of alerts open on this replica."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "replywatch_api_stream_dropped_total",
			Help: "Alert streams closed because the client fell behind (it resumes with Last-Event-ID)."}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "replywatch_api_stream_events_total",
			Help: "Alert records written to Server-Sent Events streams."}),
	}
	if h.Log == nil {
		h.Log = zap.NewNop()
	}
	if reg != nil {
		reg.MustRegister(h.subscribers, h.dropped, h.sent)
	}
	return h
}

func (h *Hub) defaults() {
	if h.Keep <= 0 {
		h.Keep = 10_000
	}
	if h.Buffer <= 0 {
		h.Buffer = 1024
	}
	if h.Heartbeat <= 0 {
		h.Heartbeat = 15 * time.Second
	}
	if h.FlushEvery <= 0 {
		h.FlushEvery = 100 * time.Millisecond
	}
}

// Run reads the topic's partitions from their tails until ctx ends. It
// retries until Kafka answers; it never stops the replica.
func (h *Hub) Run(ctx context.Context) error {
	h.defaults()
	var tails map[int]int64
	for {
		var err error
		if tails, err = h.offsets(ctx, false); err == nil {
			break
		}
		h.Log.Warn("alert stream: reading the alerts topic's offsets", zap.String("topic", h.Topic), zap.Error(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	h.mu.Lock()
	h.pos, h.low = map[int]int64{}, map[int]int64{}
	for p, o := range tails {
		h.pos[p], h.low[p] = o, o
	}
	close(h.ready)
	h.mu.Unlock()
	var wg sync.WaitGroup
	for p, o := range tails {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.read(ctx, p, o)
		}()
	}
	wg.Wait()
	return nil
}

// offsets returns each partition's first (earliest) or next (tail) offset.
func (h *Hub) offsets(ctx context.Context, first bool) (map[int]int64, error) {
	var parts []kafka.Partition
	var err error
	for _, b := range h.Brokers {
		var c *kafka.Conn
		if c, err = h.dialer().DialContext(ctx, "tcp", b); err != nil {
			continue
		}
		parts, err = c.ReadPartitions(h.Topic)
		c.Close()
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, p := range parts {
		c, err := h.dialer().DialLeader(ctx, "tcp", fmt.Sprintf("%s:%d", p.Leader.Host, p.Leader.Port), h.Topic, p.ID)
		if err != nil {
			return nil, err
		}
		var o int64
		if first {
			o, err = c.ReadFirstOffset()
		} else {
			o, err = c.ReadLastOffset()
		}
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", p.ID, err)
		}
		out[p.ID] = o
	}
	return out, nil
}

func (h *Hub) dialer() *kafka.Dialer {
	if h.Dialer != nil {
		return h.Dialer
	}
	return kafka.DefaultDialer
}

func (h *Hub) reader(p int, from int64) (*kafka.Reader, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: h.Brokers, Dialer: h.Dialer, Topic: h.Topic, Partition: p,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 100 * time.Millisecond})
	if err := r.SetOffset(from); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// read follows partition p from offset from.
func (h *Hub) read(ctx context.Context, p int, from int64) {
	for ctx.Err() == nil {
		r, err := h.reader(p, from)
		if err != nil {
			h.Log.Warn("alert stream: opening a reader", zap.String("topic", h.Topic), zap.Int("partition", p), zap.Error(err))
			time.Sleep(time.Second)
			continue
		}
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				if ctx.Err() == nil {
					h.Log.Warn("alert stream: reading", zap.String("topic", h.Topic), zap.Int("partition", p), zap.Error(err))
				}
				break
			}
			from = m.Offset + 1
			ev := event(p, m)
			if h.nsubs.Load() > 0 {
				ev.decode() // outside the lock
			}
			h.publish(ev)
		}
		r.Close()
	}
}

func event(p int, m kafka.Message) hubEvent {
	return hubEvent{part: p, off: m.Offset, data: m.Value}
}

// publish appends ev and hands it to the subscribers filed under every
// record, its agent and its shop; one that has no room left is dropped,
// never waited for.
func (h *Hub) publish(ev hubEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pos[ev.part] = ev.off + 1
	if len(h.subs) > 0 {
		ev.decode()
		ev.id = Position(h.pos).String()
		ev.frame = make([]byte, 0, len("id: \ndata: \n\n")+len(ev.id)+len(ev.data))
		ev.frame = append(append(append(append(append(ev.frame, "id: "...), ev.id...), "\ndata: "...), ev.data...), "\n\n"...)
	}
	h.ring = append(h.ring, ev)
	// The ring holds between Keep and 2×Keep records, subscribers or not:
	// dropping the older half at once costs one copy per Keep records.
	if len(h.ring) >= 2*h.Keep {
		for _, old := range h.ring[:len(h.ring)-h.Keep] {
			h.low[old.part] = old.off + 1
		}
		// A new array (subscribers may hold the old one), with the room
		// the next Keep records take.
		ring := make([]hubEvent, h.Keep, 2*h.Keep)
		copy(ring, h.ring[len(h.ring)-h.Keep:])
		h.ring = ring
	}
	if len(h.subs) == 0 {
		return
	}
	// One copy for every subscriber, never changed after this.
	shared := new(hubEvent)
	*shared = ev
	h.hand(h.all, shared)
	if shared.rec.AgentID != "" {
		h.hand(h.byAgent[shared.rec.AgentID], shared)
	}
	if shared.rec.ShopID != "" {
		h.hand(h.byShop[shared.rec.ShopID], shared)
	}
}

// hand gives ev to each of subs, dropping those with no room left.
func (h *Hub) hand(subs map[*subscriber]struct{}, ev *hubEvent) {
	for s := range subs {
		select {
		case s.ch <- ev:
		default:
			h.remove(s)
			close(s.gone)
			h.dropped.Inc()
		}
	}
}

// file adds s to the hub and to the index its route names.
func (h *Hub) file(s *subscriber) {
	h.subs[s] = struct{}{}
	h.nsubs.Add(1)
	h.subscribers.Inc()
	if s.route.all {
		h.all[s] = struct{}{}
	}
	for _, a := range s.route.agents {
		fileUnder(h.byAgent, a, s)
	}
	for _, sh := range s.route.shops {
		fileUnder(h.byShop, sh, s)
	}
}

func fileUnder(index map[string]map[*subscriber]struct{}, key string, s *subscriber) {
	set := index[key]
	if set == nil {
		set = map[*subscriber]struct{}{}
		index[key] = set
	}
	set[s] = struct{}{}
}

// remove takes s out of the hub and its index, if it is still there.
func (h *Hub) remove(s *subscriber) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	h.nsubs.Add(-1)
	h.subscribers.Dec()
	delete(h.all, s)
	for _, a := range s.route.agents {
		unfile(h.byAgent, a, s)
	}
	for _, sh := range s.route.shops {
		unfile(h.byShop, sh, s)
	}
}

func unfile(index map[string]map[*subscriber]struct{}, key string, s *subscriber) {
	if set := index[key]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(index, key)
		}
	}
}

// Position is a stream position: the next offset of each partition.
type Position map[int]int64

// String writes the position as an event id, partitions in order.
func (p Position) String() string {
	parts := make([]int, 0, len(p))
	for k := range p {
		parts = append(parts, k)
	}
	sort.Ints(parts)
	var b strings.Builder
	for i, k := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(k))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(p[k], 10))
	}
	return b.String()
}

// ParsePosition reads an event id written by Position.String.
func ParsePosition(s string) (Position, error) {
	p := Position{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, ":")
		part, err1 := strconv.Atoi(k)
		off, err2 := strconv.ParseInt(v, 10, 64)
		if !ok || err1 != nil || err2 != nil || part < 0 || off < 0 {
			return nil, fmt.Errorf("%q is not a stream position (partition:offset,...)", s)
		}
		p[part] = off
	}
	return p, nil
}

// subscribe registers a subscriber filed by rt and returns, in the same
// step, the hub's position and the records it holds (all of them, whatever
// the route) with their per-partition floor.
func (h *Hub) subscribe(ctx context.Context, rt route) (*subscriber, Position, []hubEvent, Position, error) {
	select {
	case <-h.ready:
	case <-ctx.Done():
		return nil, nil, nil, nil, ctx.Err()
	case <-time.After(10 * time.Second):
		return nil, nil, nil, nil, errors.New("the alerts topic cannot be read yet")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &subscriber{ch: make(chan *hubEvent, h.Buffer), gone: make(chan struct{}), route: rt}
	h.file(s)
	pos, low := Position{}, Position{}
	for k, v := range h.pos {
		pos[k] = v
	}
	for k, v := range h.low {
		low[k] = v
	}
	// The held records are shared, not copied: publish only appends past
	// this length or moves the ring to a new array.
	return s, pos, h.ring[:len(h.ring):len(h.ring)], low, nil
}

func (h *Hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remove(s)
}

// idle returns the hub's position if s has nothing waiting: every record
// up to it that s's route holds has been taken by s. It returns nil while
// records wait for s, and once s was dropped (records it never got lie
// behind the hub's position).
func (h *Hub) idle(s *subscriber) Position {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; !ok || len(s.ch) > 0 {
		return nil
	}
	return maps.Clone(h.pos)
}

// replay reads partition p from Kafka, offsets [from, to), for a client
// resuming from before what the hub holds. Records gone from Kafka
// (retention) are skipped from the earliest one left.
func (h *Hub) replay(ctx context.Context, p int, from, to int64, each func(*hubEvent) error) error {
	first, err := h.offsets(ctx, true)
	if err != nil {
		return err
	}
	from = max(from, first[p])
	if from >= to {
		return nil
	}
	r, err := h.reader(p, from)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for from < to {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("replaying partition %d at offset %d: %w", p, from, err)
		}
		from = m.Offset + 1
		ev := event(p, m)
		if err := each(&ev); err != nil {
			return err
		}
	}
	return nil
}

// streamBufs are the write buffers of runs of records, shared by the
// streams: a stream holds one only while it writes.
var streamBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// stream serves GET /api/v1/alerts/stream.
func (a *API) stream(w http.ResponseWriter, r *http.Request) {
	s, f, ok := a.guardFiltered(w, r)
	if !ok {
		return
	}
	var resume Position
	if id := r.Header.Get("Last-Event-ID"); id != "" || r.URL.Query().Get("last_event_id") != "" {
		if id == "" {
			id = r.URL.Query().Get("last_event_id")
		}
		var err error
		if resume, err = ParsePosition(id); err != nil {
			http.Error(w, "Last-Event-ID: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	h := a.Stream
	ctx := r.Context()
	sub, pos, held, low, err := h.subscribe(ctx, routeOf(s, &f))
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer h.unsubscribe(sub)

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The client learns at once that the stream is open.
	if err := rc.Flush(); err != nil {
		return
	}

	cur := Position{}
	for k, v := range pos {
		cur[k] = v
	}
	// batching holds the flush while a run of records is written: one
	// flush (and system call) for the run rather than one per record.
	// A run of records (those queued for the client, or all it missed
	// when it connects) goes through a buffer of its own (streamBufs): one
	// system call per 64 KiB rather than per 2 KiB of the server's. The
	// write deadline is moved on at most once a second.
	batching := false
	var out io.Writer = w
	var deadline time.Time
	extend := func() {
		if now := time.Now(); deadline.Sub(now) < 9*time.Second {
			deadline = now.Add(10 * time.Second)
			_ = rc.SetWriteDeadline(deadline)
		}
	}
	begin := func() *bufio.Writer {
		extend()
		bw := streamBufs.Get().(*bufio.Writer)
		bw.Reset(w)
		out, batching = bw, true
		return bw
	}
	end := func(bw *bufio.Writer, err error) error {
		out, batching = w, false
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
		bw.Reset(nil)
		streamBufs.Put(bw)
		if err != nil {
			return err
		}
		return rc.Flush()
	}
	write := func(chunk string) error {
		extend()
		if _, err := io.WriteString(out, chunk); err != nil {
			return err
		}
		if batching {
			return nil
		}
		return rc.Flush()
	}

	sentID := ""
	// inStep says the client's position is the hub's before the next
	// record the hub hands it: each record's id is then the hub's, and its
	// frame is written as it is (no per-client formatting). cur is not kept
	// up to date meanwhile: idle brings it to the hub's when it is needed.
	inStep := false
	sent := 0
	defer func() { h.sent.Add(float64(sent)) }()
	// send passes one record read from the hub's ring or from Kafka on if
	// the scope and filter let it through, and moves the client's position
	// past it either way.
	send := func(ev *hubEvent) error {
		if at, ok := cur[ev.part]; ok && ev.off < at {
			return nil // sent already
		}
		cur[ev.part] = ev.off + 1
		rec := &ev.rec
		if !ev.decoded {
			// Shared with other clients: decoded into a copy of one's own.
			var r record
			_ = r.UnmarshalJSON(ev.data) // an undecodable record reaches no one's filter
			rec = &r
		}
		if !f.match(s, rec) {
			return nil
		}
		sent++
		if inStep && ev.frame != nil {
			sentID = ev.id
			extend()
			_, err := out.Write(ev.frame)
			if err == nil && !batching {
				err = rc.Flush()
			}
			return err
		}
		id := cur.String()
		sentID = id
		return write("id: " + id + "\ndata: " + string(ev.data) + "\n\n")
	}
	// live passes on a record the hub handed this client. The hub hands it
	// every record of its route in the topic's order, and none outside it:
	// the client's position after ev is the hub's (ev.id), or beyond it
	// where the client came from further ahead than this hub.
	live := func(ev *hubEvent) error {
		if !inStep {
			if at, ok := cur[ev.part]; ok && ev.off < at {
				return nil // sent already
			}
			after, err := ParsePosition(ev.id)
			if err != nil {
				return err
			}
			for k, v := range after {
				cur[k] = max(cur[k], v)
			}
			inStep = maps.Equal(cur, after)
		}
		if !f.match(s, &ev.rec) {
			return nil
		}
		sent++
		if inStep {
			sentID = ev.id
			_, err := out.Write(ev.frame)
			return err
		}
		id := cur.String()
		sentID = id
		return write("id: " + id + "\ndata: " + string(ev.data) + "\n\n")
	}
	// run sends ev and whatever else is queued already, then flushes.
	run := func(ev *hubEvent) error {
		bw := begin()
		err := live(ev)
		for k := 0; k < h.Buffer && err == nil; k++ {
			select {
			case next := <-sub.ch:
				err = live(next)
				continue
			default:
			}
			break
		}
		return end(bw, err)
	}
	// catchUp writes what a client missed: the alerts firing now for a new
	// one, what followed its last id for one that resumes.
	catchUp := func() error {
		if resume == nil {
			// A new client: what is firing now, then what follows. Redis is
			// written before the topic, so the snapshot holds everything up
			// to pos; records after pos that it holds already come again,
			// and a page applies records by alert_id and status.
			firing, err := a.firing(ctx, s, &f)
			if err != nil {
				a.Log.Warn("alert stream: reading the alerts firing now", zap.Error(err))
			}
			id := pos.String()
			for _, rec := range firing {
				if err := write("id: " + id + "\ndata: " + string(rec) + "\n\n"); err != nil {
					return err
				}
			}
			sentID = id
			if len(firing) == 0 {
				if err := write("id: " + id + "\n\n"); err != nil {
					return err
				}
			}
		} else {
			// A partition the id does not name is read from its start.
			for k := range cur {
				cur[k] = resume[k]
			}
			for k, v := range resume {
				cur[k] = v
			}
			// Older than what the hub holds: read it again from Kafka.
			parts := make([]int, 0, len(low))
			for p := range low {
				parts = append(parts, p)
			}
			sort.Ints(parts)
			for _, p := range parts {
				if from := cur[p]; from < low[p] {
					if err := h.replay(ctx, p, from, low[p], send); err != nil {
						if ctx.Err() == nil {
							a.Log.Warn("alert stream: resuming from Kafka", zap.String("topic", h.Topic), zap.Int("partition", p), zap.Error(err))
						}
						return err
					}
				}
			}
		}
		for i := range held {
			if err := send(&held[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := end(begin(), catchUp()); err != nil {
		return
	}
	// What the hub hands over from here follows pos: a client whose
	// position is pos now stays in step with the hub.
	inStep = maps.Equal(cur, pos)
	beat := time.NewTicker(h.Heartbeat)
	defer beat.Stop()
	pause := time.NewTimer(0)
	<-pause.C
	var flushed time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.gone:
			// Too far behind: the client reconnects with its last id.
			return
		case ev := <-sub.ch:
			// At most one write per FlushEvery: what comes meanwhile waits
			// in the buffer and goes out with ev.
			if wait := h.FlushEvery - time.Since(flushed); wait > 0 {
				pause.Reset(wait)
				select {
				case <-ctx.Done():
					return
				case <-sub.gone:
					return
				case <-pause.C:
				}
			}
			err := run(ev)
			flushed = time.Now()
			if err != nil {
				return
			}
		case <-beat.C:
			// The position moves past records this client does not see too,
			// so that a reconnect does not read them again: to the hub's,
			// once the client has taken every record the hub handed it.
			line := ": heartbeat\n\n"
			if at := h.idle(sub); at != nil {
				for k, v := range at {
					cur[k] = max(cur[k], v)
				}
				inStep = maps.Equal(cur, at)
				if id := cur.String(); id != sentID {
					line = "id: " + id + "\n\n"
					sentID = id
				}
			}
			if err := write(line); err != nil {
				return
			}
		}
	}
}
