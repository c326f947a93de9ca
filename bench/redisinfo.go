package bench

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// CommandStat is one line of INFO commandstats.
type CommandStat struct {
	Name  string
	Calls int64
	Usec  int64
}

// scriptCommands are the script invocations: they are counted once per
// call, and the commands a script runs are counted on their own lines.
var scriptCommands = map[string]bool{"evalsha": true, "eval": true, "evalsha_ro": true, "eval_ro": true, "fcall": true}

// bookkeeping are the harness's own commands, left out of per-event counts.
var bookkeeping = map[string]bool{"info": true, "config": true, "config|resetstat": true, "config|get": true,
	"ping": true, "hello": true, "client": true, "client|setinfo": true, "flushall": true,
	"script": true, "script|load": true, "dbsize": true, "memory|usage": true}

// CommandStats reads INFO commandstats.
func CommandStats(ctx context.Context, c *redis.Client) (map[string]CommandStat, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("reading INFO commandstats: %w", err)
	}
	out := map[string]CommandStat{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		s := CommandStat{Name: strings.TrimPrefix(name, "cmdstat_")}
		for kv := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				s.Calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec":
				s.Usec, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		out[s.Name] = s
	}
	return out, nil
}

// CommandDelta is what ran on Redis between two INFO commandstats readings,
// leaving out the harness's own bookkeeping.
type CommandDelta struct {
	// Scripts counts EVALSHA/EVAL calls, Data the commands run inside them
	// or sent directly.
	Scripts, Data int64
	// Top are the commands that took most Redis time, most first; All
	// every command that ran, most calls first.
	Top []CommandStat
	All []CommandStat
}

// Total is every command Redis executed: script calls plus data commands.
func (d CommandDelta) Total() int64 { return d.Scripts + d.Data }

func diffCommands(before, after map[string]CommandStat) CommandDelta {
	var d CommandDelta
	for name, a := range after {
		if bookkeeping[name] {
			continue
		}
		b := before[name]
		s := CommandStat{Name: name, Calls: a.Calls - b.Calls, Usec: a.Usec - b.Usec}
		if s.Calls <= 0 {
			continue
		}
		if scriptCommands[name] {
			d.Scripts += s.Calls
		} else {
			d.Data += s.Calls
		}
		d.Top = append(d.Top, s)
	}
	d.All = slices.Clone(d.Top)
	slices.SortFunc(d.All, func(x, y CommandStat) int { return cmp.Or(cmp.Compare(y.Calls, x.Calls), cmp.Compare(x.Name, y.Name)) })
	slices.SortFunc(d.Top, func(x, y CommandStat) int { return cmp.Compare(y.Usec, x.Usec) })
	if len(d.Top) > 8 {
		d.Top = d.Top[:8]
	}
	return d
}

// infoField reads one numeric field of an INFO section.
func infoField(ctx context.Context, c *redis.Client, section, field string) (string, error) {
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return "", fmt.Errorf("reading INFO %s: %w", section, err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no %s", section, field)
}

// UsedMemory is INFO memory used_memory: bytes the allocator holds for data.
func UsedMemory(ctx context.Context, c *redis.Client) (int64, error) {
	v, err := infoField(ctx, c, "memory", "used_memory")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

// States is what the chat partitions' entity states hold in Redis: they
// live in generation hashes <prefix>:{<scope>}:c@<g>, field entity key
// (state/layout.go).
type States struct {
	// Count is the states (fields of every generation hash), Bytes the
	// hashes' MEMORY USAGE.
	Count, Bytes int64
	// Sampled states whose key matched, and their encoded length in all.
	Sampled, Len int64
}

// ReadStates reads the chat partitions' entity states: all of them, and up
// to n whose entity key matches match (a HSCAN pattern) for their length.
func ReadStates(ctx context.Context, c *redis.Client, match string, n int64) (States, error) {
	var s States
	var iter uint64
	for {
		keys, next, err := c.Scan(ctx, iter, keyPrefix+":{chat.*}:c@*", 1000).Result()
		if err != nil {
			return s, fmt.Errorf("scanning states: %w", err)
		}
		for _, k := range keys {
			if strings.HasSuffix(k, ":c@old") {
				continue
			}
			if err := s.add(ctx, c, k, match, n); err != nil {
				return s, err
			}
		}
		if iter = next; iter == 0 {
			return s, nil
		}
	}
}

// add counts generation hash k and samples its states.
func (s *States) add(ctx context.Context, c *redis.Client, k, match string, n int64) error {
	fields, err := c.HLen(ctx, k).Result()
	if err != nil {
		return err
	}
	bytes, err := c.MemoryUsage(ctx, k, 0).Result()
	if err != nil {
		return fmt.Errorf("MEMORY USAGE %s: %w", k, err)
	}
	s.Count += fields
	s.Bytes += bytes
	var iter uint64
	for s.Sampled < n {
		got, next, err := c.HScan(ctx, k, iter, match, 1000).Result()
		if err != nil {
			return fmt.Errorf("HSCAN %s: %w", k, err)
		}
		for i := 1; i < len(got) && s.Sampled < n; i += 2 {
			s.Len += int64(len(got[i]))
			s.Sampled++
		}
		if iter = next; iter == 0 {
			break
		}
	}
	return nil
}
