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
