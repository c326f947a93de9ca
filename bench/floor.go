package bench

import (
	"context"
	_ "embed"
	"fmt"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/pipeline"
	"github.com/replywatch/replywatch/sim"
)

// PartFloor measures what the design's own I/O costs on the bad day, with
// trivial logic: the floor under any processor built on it.
const PartFloor = "floor"

// Sizes of the floor's work, from the storm part's measurements.
const (
	// floorAlertsPerEvent is the bad day's alert records per chat event.
	floorAlertsPerEvent = 0.64
	// floorStateBytes is the size of an encoded conversation state.
	floorStateBytes = 170
	// floorBatch is the pipeline's batch size.
	floorBatch = 500
	// floorDue is how far after its event an entity's timer is set.
	floorDue = 3 * time.Minute
	// floorCommitEvery is how often a partition's offset is committed to
	// Kafka: the pipeline's default commit interval. The offset applied is
	// in Redis with the batch, so a late commit only means re-reading
	// records that are then skipped; the repartition commits only what the
	// broker acknowledged.
	floorCommitEvery = time.Second
)

//go:embed floor.lua
var floorLua string

var floorScript = redis.NewScript(floorLua)

// floorState stands for an entity's encoded state: Redis stores and
// copies it as it would a real one of that size.
var floorState = func() []byte {
	b := make([]byte, floorStateBytes)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

// floorAlert is the value of every alert record of the floor: a reply
// breach of a bad-day conversation as the pipeline writes it
// (alerting.Alert.AppendJSON), stamped in the shop's zone with its summary.
var floorAlert = func() []byte {
	since := simDay.Add(14 * time.Hour)
	a := alerting.Alert{ID: alerting.ID(alerting.KindReplyBreach, "3m", "shop-01", "b100001", strconv.FormatInt(since.UnixMilli(), 10)),
		Kind: alerting.KindReplyBreach, Status: alerting.Firing, Severity: alerting.Critical, Threshold: "3m", Platform: "pdd",
		ShopID: "shop-01", BuyerID: "b100001", AgentID: "shop-01-a7", Since: since, Due: since.Add(floorDue), At: since.Add(floorDue)}
	a.Stamp(since.Add(floorDue+1500*time.Millisecond), "zh", sim.Shanghai())
	return a.AppendJSON(nil)
}()

// floorVariant is which of the design's optional pieces a floor run does.
type floorVariant struct {
	name string
	// repartition writes a fact per chat record to a buyers topic of its
	// own, read back and applied by a second group.
	repartition bool
	// alerts writes alert records at floorAlertsPerEvent off the chat
	// side's path, read back by a third group.
	alerts bool
}

var floorVariants = []floorVariant{
	{name: "repartition and alerts", repartition: true, alerts: true},
	{name: "without the repartition", alerts: true},
	{name: "without the alerts", repartition: true},
}

// floorRun is one floor run's topics, clients and counts.
type floorRun struct {
	v                    floorVariant
	broker               string
	rdb                  *redis.Client
	buyers, alerts       string
	facts, alertsW       *kafka.Writer
	hwms                 map[int]int64
	sides, buyerSides    map[int]*floorPartition
	alertSides           map[int]*floorPartition
	factsOut, alertsOut  atomic.Int64
	factsRead, alertsRd  atomic.Int64
	couriers             sync.WaitGroup
	courierErr           atomic.Pointer[error]
	factsDone, alertDone context.CancelFunc
	factsWant, alertWant atomic.Int64
}

// floorPartition is a partition's scratch (of the chat, buyers or alerts
// topic), used by its reader only.
type floorPartition struct {
	// seen are the batch's entities with their timers' due times.
	seen    map[string]int64
	claimed bool
	// next is the offset after the last record handled, committed the
	// offset last committed.
	next, committed int64
	lastCommit      time.Time
	facts           []kafka.Message
	buf             []byte
	events          int64
	alerted         int64
	courier         chan []kafka.Message
}

// floorResult is what one floor run measured.
type floorResult struct {
	// Events are the chat records read, Facts and Alerts the records
	// written to and read back from the buyers and alerts topics.
	Events, Facts, Alerts int64
	// First is the first chat batch fetched, Last the last batch of any
	// group handled.
	First, Last time.Time
	// Ends are when each group handled its last batch: chat, then buyers
	// and alerts when they ran.
	Ends map[string]time.Time
}

// Rate is chat events per second from the first batch to the last.
func (r floorResult) Rate() float64 {
	if d := r.Last.Sub(r.First).Seconds(); d > 0 {
		return float64(r.Events) / d
	}
	return 0
}

// measureFloor reads topic (up to hwms) as the pipeline does and does only the
// I/O the design requires of each batch, with trivial logic: decode; with
// the repartition, one fact per record (the event less its text) written
// keyed by buyer with the Hash balancer to a buyers topic of its own, and
// read back and decoded by a second group; one Redis round trip per batch
// on each side (floor.lua: fencing check, offset, one HSET of the batch's
// entity states, one ZADD of a timer per entity); with alerts, alert
// records at floorAlertsPerEvent written off the reader's path as the
// pipeline's courier writes them and read back once by a third group (the
// notifier's read); each group's offsets committed every
// floorCommitEvery as the pipeline commits them, the chat side's only
// once its facts are acknowledged and its batch is in Redis.
func measureFloor(ctx context.Context, broker, topic string, hwms map[int]int64, rdb *redis.Client, v floorVariant, tag string) (floorResult, error) {
	if err := floorScript.Load(ctx, rdb).Err(); err != nil {
		return floorResult{}, fmt.Errorf("loading floor.lua: %w", err)
	}
	var (
		res floorResult
		err error
	)
	pprof.Do(ctx, pprof.Labels("role", "floor"), func(ctx context.Context) {
		res, err = runFloor(ctx, broker, topic, hwms, rdb, v, tag)
	})
	return res, err
}

func runFloor(ctx context.Context, broker, topic string, hwms map[int]int64, rdb *redis.Client, v floorVariant, tag string) (floorResult, error) {
	f := &floorRun{v: v, broker: broker, rdb: rdb, hwms: hwms, sides: map[int]*floorPartition{}, buyerSides: map[int]*floorPartition{},
		alertSides: map[int]*floorPartition{}, buyers: "floor." + tag + ".buyers", alerts: "floor." + tag + ".alerts"}
	for p := range hwms {
		f.sides[p] = &floorPartition{seen: map[string]int64{}}
	}
	for p := range buyersPartitions {
		f.buyerSides[p] = &floorPartition{seen: map[string]int64{}}
	}
	for p := range Topics[TopicAlerts] {
		f.alertSides[p] = &floorPartition{}
	}
	f.factsWant.Store(-1)
	f.alertWant.Store(-1)
	// The downstream groups join first and read while the chat side runs:
	// the run ends when the last of them has read what was written.
	type downstream struct {
		read  groupRead
		err   error
		gen   *kafka.Generation
		topic string
		sides map[int]*floorPartition
	}
	var (
		down   []chan downstream
		groups []*kafka.ConsumerGroup
	)
	defer func() {
		for _, cg := range groups {
			cg.Close()
		}
	}()
	startDown := func(topic string, partitions int, group string, sides map[int]*floorPartition, handle batchFunc) (context.CancelFunc, error) {
		if err := pipeline.EnsureTopic(ctx, []string{broker}, nil, topic, partitions); err != nil {
			return nil, err
		}
		cg, gen, err := joinGroup(ctx, broker, group, topic)
		if err != nil {
			return nil, err
		}
		groups = append(groups, cg)
		rctx, cancel := context.WithCancel(ctx)
		c := make(chan downstream, 1)
		down = append(down, c)
		go func() {
			r, err := readAssigned(rctx, gen, broker, topic, floorBatch, nil, handle)
			c <- downstream{r, err, gen, topic, sides}
		}()
		return cancel, nil
	}
	if v.repartition {
		f.facts = &kafka.Writer{Addr: kafka.TCP(broker), Balancer: &kafka.Hash{}, BatchTimeout: 2 * time.Millisecond,
			BatchSize: floorBatch, BatchBytes: 16 << 20, RequiredAcks: kafka.RequireAll, WriteTimeout: 10 * time.Second, MaxAttempts: 5}
		defer f.facts.Close()
		cancel, err := startDown(f.buyers, buyersPartitions, "floor-"+tag+"-buyers", f.buyerSides, f.buyersBatch)
		if err != nil {
			return floorResult{}, err
		}
		defer cancel()
		f.factsDone = cancel
	}
	if v.alerts {
		f.alertsW = &kafka.Writer{Addr: kafka.TCP(broker), Balancer: &kafka.Hash{}, BatchTimeout: 2 * time.Millisecond,
			BatchSize: 1000, RequiredAcks: kafka.RequireAll, WriteTimeout: 10 * time.Second, MaxAttempts: 5}
		defer f.alertsW.Close()
		cancel, err := startDown(f.alerts, Topics[TopicAlerts], "floor-"+tag+"-notify", f.alertSides, f.alertsBatch)
		if err != nil {
			return floorResult{}, err
		}
		defer cancel()
		f.alertDone = cancel
		for _, s := range f.sides {
			s.courier = make(chan []kafka.Message, 8)
			f.couriers.Add(1)
			go f.courier(ctx, s.courier)
		}
	}

	cg, gen, err := joinGroup(ctx, broker, "floor-"+tag+"-chat", topic)
	if err != nil {
		return floorResult{}, err
	}
	groups = append(groups, cg)
	chat, err := readAssigned(ctx, gen, broker, topic, floorBatch, hwms, f.chatBatch)
	for _, s := range f.sides {
		if s.courier != nil {
			close(s.courier)
		}
	}
	f.couriers.Wait()
	if err != nil {
		return floorResult{}, err
	}
	if e := f.courierErr.Load(); e != nil {
		return floorResult{}, *e
	}
	// Now that every fact and alert is written, the downstream groups stop
	// once they have read them all.
	if v.repartition {
		f.factsWant.Store(f.factsOut.Load())
		f.checkDone(&f.factsRead, &f.factsWant, f.factsDone)
	}
	if v.alerts {
		f.alertWant.Store(f.alertsOut.Load())
		f.checkDone(&f.alertsRd, &f.alertWant, f.alertDone)
	}
	res := floorResult{Events: chat.records, First: chat.first, Last: chat.last, Facts: f.factsOut.Load(), Alerts: f.alertsOut.Load(),
		Ends: map[string]time.Time{"chat": chat.last}}
	// A guard against a hang: the downstream groups read at the rate of
	// the chat side, so a minute after it is long.
	wait := time.Minute + chat.last.Sub(chat.first)
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for _, c := range down {
		select {
		case d := <-c:
			if d.err != nil {
				return res, d.err
			}
			if d.read.last.After(res.Last) {
				res.Last = d.read.last
			}
			res.Ends[d.topic] = d.read.last
			// What the interval left uncommitted, once the group stopped.
			final := map[int]int64{}
			for p, s := range d.sides {
				if s.next > s.committed {
					final[p] = s.next
				}
			}
			if len(final) > 0 {
				if err := d.gen.CommitOffsets(map[string]map[int]int64{d.topic: final}); err != nil {
					return res, fmt.Errorf("committing %s: %w", d.topic, err)
				}
			}
		case <-timeout.C:
			return res, fmt.Errorf("the downstream groups read %d of %d facts and %d of %d alerts in %s after the chat side ended",
				f.factsRead.Load(), f.factsOut.Load(), f.alertsRd.Load(), f.alertsOut.Load(), wait)
		}
	}
	if f.factsRead.Load() < f.factsOut.Load() || f.alertsRd.Load() < f.alertsOut.Load() {
		return res, fmt.Errorf("read back %d of %d facts and %d of %d alerts", f.factsRead.Load(), f.factsOut.Load(), f.alertsRd.Load(), f.alertsOut.Load())
	}
	return res, nil
}

// checkDone ends a downstream group once it has read what was written.
func (f *floorRun) checkDone(read, want *atomic.Int64, done context.CancelFunc) {
	if w := want.Load(); w >= 0 && read.Load() >= w {
		done()
	}
}

// chatBatch is the chat side of a batch: decode, facts written and
// acknowledged, one Redis round trip, alerts handed to the courier, commit.
func (f *floorRun) chatBatch(ctx context.Context, gen *kafka.Generation, part int, msgs []kafka.Message) error {
	s := f.sides[part]
	s.facts, s.buf = s.facts[:0], s.buf[:0]
	var alerts []kafka.Message
	for i := range msgs {
		ev, err := event.Decode(event.Chat, msgs[i].Value, msgs[i].Time)
		if err != nil {
			return fmt.Errorf("decoding %s/%d at %d: %w", msgs[i].Topic, part, msgs[i].Offset, err)
		}
		s.entity(ev.Key(event.Chat), ev.Ms())
		if f.v.repartition {
			ev.Text, ev.MsgID = "", ""
			start := len(s.buf)
			s.buf = append(append(append(s.buf, ev.ShopID...), '/'), ev.BuyerID...)
			mid := len(s.buf)
			s.buf = ev.AppendJSON(s.buf)
			s.facts = append(s.facts, kafka.Message{Topic: f.buyers, Key: s.buf[start:mid:mid], Value: s.buf[mid:len(s.buf):len(s.buf)]})
		}
		s.events++
		if f.v.alerts && float64(s.events)*floorAlertsPerEvent >= float64(s.alerted+1) {
			s.alerted++
			alerts = append(alerts, kafka.Message{Topic: f.alerts, Key: msgs[i].Key, Value: floorAlert})
		}
	}
	if len(s.facts) > 0 {
		if err := f.facts.WriteMessages(ctx, s.facts...); err != nil {
			return fmt.Errorf("writing %d facts to %s: %w", len(s.facts), f.buyers, err)
		}
		f.factsOut.Add(int64(len(s.facts)))
	}
	if err := f.apply(ctx, gen, "chat", part, msgs[len(msgs)-1].Offset, s); err != nil {
		return err
	}
	if len(alerts) > 0 {
		select {
		case s.courier <- alerts:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	next := msgs[len(msgs)-1].Offset + 1
	return s.commit(gen, msgs[0].Topic, part, next, next >= f.hwms[part])
}

// commit commits offset next of the partition at most every
// floorCommitEvery, and when final.
func (s *floorPartition) commit(gen *kafka.Generation, topic string, part int, next int64, final bool) error {
	s.next = next
	if !final && time.Since(s.lastCommit) < floorCommitEvery {
		return nil
	}
	if err := gen.CommitOffsets(map[string]map[int]int64{topic: {part: next}}); err != nil {
		return fmt.Errorf("committing %s/%d at %d: %w", topic, part, next, err)
	}
	s.committed, s.lastCommit = next, time.Now()
	return nil
}

// entity adds an entity of the batch, its timer due floorDue after its
// latest event.
func (s *floorPartition) entity(key string, ms int64) {
	s.seen[key] = max(s.seen[key], ms+floorDue.Milliseconds())
}

// apply writes the batch's entities to the partition's keys in one round
// trip (floor.lua), then forgets them. A partition is claimed (its fencing
// token set) before its first batch, as the pipeline claims it on
// assignment.
func (f *floorRun) apply(ctx context.Context, gen *kafka.Generation, stream string, part int, offset int64, s *floorPartition) error {
	base := "fl:{" + stream + "." + strconv.Itoa(part) + "}:"
	if !s.claimed {
		if err := f.rdb.Set(ctx, base+"owner", gen.ID, 0).Err(); err != nil {
			return fmt.Errorf("claiming %s/%d: %w", stream, part, err)
		}
		s.claimed = true
	}
	n := len(s.seen)
	args := make([]any, 0, 3+4*n)
	args = append(args, gen.ID, offset, n)
	for k := range s.seen {
		args = append(args, k, floorState)
	}
	for k, due := range s.seen {
		args = append(args, due, k)
	}
	clear(s.seen)
	res, err := floorScript.EvalSha(ctx, f.rdb, []string{base + "owner", base + "offset", base + "s", base + "t"}, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("applying a batch of %s/%d: %w", stream, part, err)
	}
	if len(res) == 0 || res[0] != 1 {
		return fmt.Errorf("applying a batch of %s/%d at offset %d: floor.lua answered %v", stream, part, offset, res)
	}
	return nil
}

// courier writes a chat partition's alerts in the order they came, off
// its reader's path, as the pipeline's courier does.
func (f *floorRun) courier(ctx context.Context, jobs <-chan []kafka.Message) {
	defer f.couriers.Done()
	for msgs := range jobs {
		if err := f.alertsW.WriteMessages(ctx, msgs...); err != nil {
			err = fmt.Errorf("writing %d alert records to %s: %w", len(msgs), f.alerts, err)
			f.courierErr.CompareAndSwap(nil, &err)
			continue
		}
		f.alertsOut.Add(int64(len(msgs)))
	}
}

// buyersBatch is the buyers side of a batch: decode, one Redis round
// trip, commit.
func (f *floorRun) buyersBatch(ctx context.Context, gen *kafka.Generation, part int, msgs []kafka.Message) error {
	s := f.buyerSides[part]
	for i := range msgs {
		ev, err := event.Decode(event.Buyers, msgs[i].Value, msgs[i].Time)
		if err != nil {
			return fmt.Errorf("decoding %s/%d at %d: %w", msgs[i].Topic, part, msgs[i].Offset, err)
		}
		s.entity(ev.Key(event.Buyers), ev.Ms())
	}
	if err := f.apply(ctx, gen, "buyers", part, msgs[len(msgs)-1].Offset, s); err != nil {
		return err
	}
	if err := s.commit(gen, msgs[0].Topic, part, msgs[len(msgs)-1].Offset+1, false); err != nil {
		return err
	}
	f.factsRead.Add(int64(len(msgs)))
	f.checkDone(&f.factsRead, &f.factsWant, f.factsDone)
	return nil
}

// alertsBatch is the notifier's read of a batch of alert records: decode
// each, commit.
func (f *floorRun) alertsBatch(ctx context.Context, gen *kafka.Generation, part int, msgs []kafka.Message) error {
	for i := range msgs {
		var a alerting.Alert
		if err := a.UnmarshalJSON(msgs[i].Value); err != nil || a.ID == "" {
			return fmt.Errorf("reading alert record %s/%d at %d: %v", msgs[i].Topic, part, msgs[i].Offset, err)
		}
	}
	if err := f.alertSides[part].commit(gen, msgs[0].Topic, part, msgs[len(msgs)-1].Offset+1, false); err != nil {
		return err
	}
	f.alertsRd.Add(int64(len(msgs)))
	f.checkDone(&f.alertsRd, &f.alertWant, f.alertDone)
	return nil
}

// floor runs the floor's variants over the bad day, after the bare
// kafka-go read + decode of the same backlog, in one run.
func (h *harness) floor(ctx context.Context) error {
	if err := h.stormBacklog(ctx); err != nil {
		return err
	}
	const part = PartFloor
	r := h.report
	hwms, bare, bareCost, err := h.bareChat(ctx, "floor-bare")
	if err != nil {
		return err
	}
	h.logf("floor: bare kafka-go consumption + decode %.0f/s", bare.Rate())
	r.add(part, "bare kafka-go consumption + event.Decode of the bad day", bare.Rate(), "events/s",
		fmt.Sprintf("as the ceiling part; %.1f µs CPU per event (consumer + broker)", bareCost.perEvent(bareCost.self)))
	for i, v := range floorVariants {
		if err := h.redis.Reset(ctx); err != nil {
			return err
		}
		tag := strconv.Itoa(i)
		m, err := h.startMeter(ctx, h.profilePath("floor-"+tag))
		if err != nil {
			return err
		}
		res, err := measureFloor(ctx, h.broker.Addr, TopicChat, hwms, h.redis.Client, v, tag)
		if err != nil {
			_, _ = m.end(ctx, 0)
			return fmt.Errorf("%s: %w", v.name, err)
		}
		c, err := m.end(ctx, res.Events)
		if err != nil {
			return err
		}
		h.report.Profiles = append(h.report.Profiles, h.profilePath("floor-"+tag))
		rate := res.Rate()
		ends := ""
		for g, t := range res.Ends {
			ends += fmt.Sprintf(" %s %.1fs", g, t.Sub(res.First).Seconds())
		}
		h.logf("floor, %s: %d events, %d facts, %d alert records: %.0f/s; µs/event consumer %.1f, broker %.1f, Redis %.1f; ends after%s",
			v.name, res.Events, res.Facts, res.Alerts, rate, c.perEvent(c.byRole["floor"]), c.perEvent(c.byRole["broker"]), c.perEvent(c.redis), ends)
		name := v.name + ": "
		note := fmt.Sprintf("first chat batch to the last batch any group handled; %s facts, %s alert records (%.2f per event)",
			thousands(res.Facts), thousands(res.Alerts), float64(res.Alerts)/float64(max(1, res.Events)))
		share := 0.0
		if bare.Rate() > 0 {
			share = 100 * rate / bare.Rate()
		}
		if i == 0 {
			r.atLeast(part, name+"chat events/s", rate, "events/s", 100_000, note)
			r.atLeast(part, name+"share of bare consumption + decode (same run)", share, "%", 30, "")
		} else {
			r.add(part, name+"chat events/s", rate, "events/s", note)
			r.add(part, name+"share of bare consumption + decode (same run)", share, "%", "")
		}
		r.add(part, name+"consumer CPU per event", c.perEvent(c.byRole["floor"]), "µs",
			"profile samples labelled role=floor: every group's readers, the writers, the Redis client")
		r.add(part, name+"kfake broker CPU per event (same process)", c.perEvent(c.byRole["broker"]), "µs", "")
		r.add(part, name+"Redis CPU per event", c.perEvent(c.redis), "µs", "/proc/<redis pid>/stat")
		if c.events > 0 {
			r.add(part, name+"Redis commands per event", float64(c.cmds.Total())/float64(c.events), "",
				"EVALSHA and the commands floor.lua runs: MGET, SET, HSET, ZADD per batch on each side")
		}
	}
	return nil
}
