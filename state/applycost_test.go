package state

import (
	"context"
	"encoding/gob"
	"errors"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replywatch/replywatch/internal/testenv"
)

// capturedApply is one ApplyLoad call as recorded for TestApplyCost.
type capturedApply struct {
	Scope string
	Batch Batch
	Next  *LoadRequest
}

// TestApplyCost attributes apply.lua's Redis time to its sections: it
// replays recorded ApplyLoad calls (RW_APPLY_CAPTURE, a gob stream of
// capturedApply, which bench/results/2026-11-26-redis/record-applies.patch
// makes; RW_APPLY_BATCHES: only the first so many) against one fresh
// redis-server per variant, the variants in turn batch by batch: as
// recorded and with one section left out (RW_APPLY_VARIANTS: only the
// variants named, comma separated). It logs each server's CPU time, its
// EVALSHA microseconds (INFO commandstats, which include the commands the
// script runs) and the commands run, per batch. BENCHMARKS.md ("The bad
// day's Redis cost") records its figures.
// capturedApplies reads the recording RW_APPLY_CAPTURE names, and skips
// the test when it names none.
func capturedApplies(t *testing.T) []capturedApply {
	t.Helper()
	path := os.Getenv("RW_APPLY_CAPTURE")
	if path == "" {
		t.Skip("RW_APPLY_CAPTURE names no recording of apply batches")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var batches []capturedApply
	dec := gob.NewDecoder(f)
	for {
		var c capturedApply
		if err := dec.Decode(&c); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, c)
	}
	return batches
}

func TestApplyCost(t *testing.T) {
	batches := capturedApplies(t)
	if s := os.Getenv("RW_APPLY_BATCHES"); s != "" {
		if k, err := strconv.Atoi(s); err == nil && k < len(batches) {
			batches = batches[:k]
		}
	}
	// Events are the chat records: the last applied offset of each chat
	// partition + 1 (the backlog starts at offset 0).
	last := map[string]int64{}
	for _, c := range batches {
		last[c.Scope] = max(last[c.Scope], c.Batch.Offset+1)
	}
	var offsets int64
	for _, o := range last {
		offsets += o
	}
	n := int64(len(batches))
	t.Logf("%d batches covering %d offsets", n, offsets)

	variants := []struct {
		name string
		edit func(b *Batch)
	}{
		{"as recorded", func(*Batch) {}},
		{"no states", func(b *Batch) { b.States = nil }},
		{"no timers", func(b *Batch) { b.Timers = nil }},
		{"no figures", func(b *Batch) { b.Figures = nil }},
		{"no waiting sets", func(b *Batch) { b.Waits = nil }},
		{"no activity", func(b *Batch) { b.Activity = nil }},
		{"no outbox", func(b *Batch) { b.Outbox = nil }},
		{"no acks", func(b *Batch) { b.Acks = nil }},
		{"no outbox, no acks", func(b *Batch) { b.Outbox, b.Acks = nil, nil }},
		{"nothing but the checks", func(b *Batch) { *b = Batch{Token: b.Token, Offset: b.Offset, Now: b.Now, Lease: b.Lease} }},
	}
	if only := os.Getenv("RW_APPLY_VARIANTS"); only != "" {
		variants = slices.DeleteFunc(variants, func(v struct {
			name string
			edit func(b *Batch)
		}) bool {
			return !slices.Contains(strings.Split(only, ","), v.name)
		})
	}
	ctx := context.Background()
	// One server per variant, the batches applied to each in turn, so that
	// whatever else the machine does weighs on every variant alike.
	type run struct {
		c   *redis.Client
		r   *Redis
		cpu time.Duration
	}
	runs := make([]run, len(variants))
	for i := range variants {
		srv := testenv.RedisServer(t)
		c := newClient(t, srv.URL)
		runs[i] = run{c: c, r: NewRedis(c, "rw", 72*time.Hour)}
		claimed := map[string]bool{}
		for _, b := range batches {
			if !claimed[b.Scope] {
				claimed[b.Scope] = true
				if _, err := runs[i].r.Claim(ctx, b.Scope, b.Batch.Token); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := c.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		runs[i].cpu = redisCPU(t, c)
	}
	acks := recordedAcks(batches)
	for j, b := range batches {
		for i, v := range variants {
			x := b.Batch
			x.Acks = acks[j]
			v.edit(&x)
			if _, err := runs[i].r.ApplyLoad(ctx, b.Scope, &x, b.Next); err != nil && !errors.Is(err, ErrStale) {
				t.Fatal(err)
			}
		}
	}
	t.Logf("| variant | EVALSHA µs/batch (commandstats) | Redis CPU µs/batch | commands/batch | most Redis time |")
	for i, v := range variants {
		c := runs[i].c
		cpu := redisCPU(t, c) - runs[i].cpu
		stats := commandStatsUsec(t, c)
		var evalUsec, evals, data int64
		var top []string
		for name, s := range stats {
			switch name {
			case "evalsha", "eval":
				evalUsec += s[1]
				evals += s[0]
			case "info", "config|resetstat", "ping", "hello", "client|setinfo", "script|load":
			default:
				data += s[0]
				top = append(top, name)
			}
		}
		sort.Slice(top, func(i, j int) bool { return stats[top[i]][1] > stats[top[j]][1] })
		var parts []string
		for _, name := range top[:min(len(top), 6)] {
			s := stats[name]
			parts = append(parts, name+" "+strconv.FormatFloat(float64(s[0])/float64(n), 'f', 1, 64)+"/batch "+
				strconv.FormatFloat(float64(s[1])/float64(n), 'f', 0, 64)+" µs/batch")
		}
		t.Logf("| %s | %.0f | %.0f | %.1f | %s |", v.name, float64(evalUsec)/float64(n), cpu.Seconds()*1e6/float64(n),
			float64(evals+data)/float64(n), strings.Join(parts, ", "))
	}
}

// commandStatsUsec reads INFO commandstats: name → {calls, usec}.
func commandStatsUsec(t *testing.T, c *redis.Client) map[string][2]int64 {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]int64{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var s [2]int64
		for kv := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				s[0], _ = strconv.ParseInt(v, 10, 64)
			case "usec":
				s[1], _ = strconv.ParseInt(v, 10, 64)
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = s
	}
	return out
}

// redisCPU is the server's user + system CPU time (INFO cpu).
func redisCPU(t *testing.T, c *redis.Client) time.Duration {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			x, _ := strconv.ParseFloat(v, 64)
			sum += x
		}
	}
	return time.Duration(sum * float64(time.Second))
}

// recordedAcks are the recorded batches' acks as outbox entry keys: a
// recording made before a batch's records were one entry acks each record
// by its own key; an entry is acked with the last of its records.
func recordedAcks(batches []capturedApply) [][]string {
	entry := map[string]string{} // record key → its entry's key
	left := map[string]int{}     // entry key → records not acked yet
	out := make([][]string, len(batches))
	for j, b := range batches {
		for _, k := range b.Batch.Acks {
			e, ok := entry[k]
			if !ok {
				out[j] = append(out[j], k) // an entry's key already
				continue
			}
			delete(entry, k)
			if left[e]--; left[e] == 0 {
				delete(left, e)
				out[j] = append(out[j], e)
			}
		}
		if e := OutboxKey(&b.Batch); e != "" && b.Batch.Outbox[0].Key != e {
			for _, d := range b.Batch.Outbox {
				if _, dup := entry[d.Key]; !dup {
					entry[d.Key] = e
					left[e]++
				}
			}
		}
	}
	return out
}

// TestApplyStateMemory measures what entity states take in Redis: it
// applies the states of every recorded batch (RW_APPLY_CAPTURE, as
// TestApplyCost reads it) and nothing else to a fresh redis-server, after
// claiming every partition, and logs INFO used_memory's growth per state
// left. BENCHMARKS.md ("The bad day's Redis cost") records its figures.
func TestApplyStateMemory(t *testing.T) {
	batches := capturedApplies(t)
	c := newClient(t, testenv.RedisServer(t).URL)
	r := NewRedis(c, "rw", 72*time.Hour)
	ctx := context.Background()
	claimed := map[string]bool{}
	for i := range batches {
		cp := &batches[i]
		if !claimed[cp.Scope] {
			claimed[cp.Scope] = true
			if _, err := r.Claim(ctx, cp.Scope, cp.Batch.Token); err != nil {
				t.Fatal(err)
			}
		}
		cp.Batch = Batch{Token: cp.Batch.Token, Offset: cp.Batch.Offset, States: cp.Batch.States}
	}
	before := usedMemory(t, c)
	type entity struct{ scope, key string }
	live := map[entity]bool{}
	for _, cp := range batches {
		for k, v := range cp.Batch.States {
			live[entity{cp.Scope, k}] = v != nil
		}
		if _, err := r.Apply(ctx, cp.Scope, &cp.Batch); err != nil && !errors.Is(err, ErrStale) {
			t.Fatal(err)
		}
	}
	grew := usedMemory(t, c) - before
	var states, size int64
	for e, ok := range live {
		if !ok {
			continue
		}
		l, err := r.Load(ctx, e.scope, []string{e.key}, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		states++
		size += int64(len(l.States[e.key]))
	}
	t.Logf("%d states of %d batches (encoded %.0f bytes each): used_memory grew %d bytes, %.1f per state",
		states, len(batches), float64(size)/float64(states), grew, float64(grew)/float64(states))
}

// usedMemory is INFO memory's used_memory.
func usedMemory(t *testing.T, c *redis.Client) int64 {
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("INFO memory has no used_memory")
	return 0
}
