package state

import (
	"cmp"
	"context"
	_ "embed"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/replywatch/replywatch/detectors"
)

//go:embed lua/agentwaiting.lua
var agentWaitingLua string

var agentWaitingScript = redis.NewScript(agentWaitingLua)

// WaitingBuyer is a buyer waiting on an agent now, and when the wait
// started (Unix ms): the agent's waiting set, kept from the moment the
// wait starts, before any alert.
type WaitingBuyer struct {
	Shop  string
	Agent string
	Buyer string
	Start int64
}

// AgentWaiting lists the buyers waiting on agent in every shop of the
// scopes, earliest wait first, at most limit of them, in two pipelined
// round trips: the waiting sets of every scope, then the agent's sets'
// members (one script per scope over the sets' buckets).
func (r *Redis) AgentWaiting(ctx context.Context, scopes []string, agent string, limit int) ([]WaitingBuyer, error) {
	if len(scopes) == 0 || agent == "" || limit <= 0 {
		return nil, nil
	}
	pipe := r.client.Pipeline()
	members := make([]*redis.StringSliceCmd, len(scopes))
	for i, s := range scopes {
		members[i] = pipe.SMembers(ctx, r.base(s)+"shops")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, r.fail("agent waiting", "", err)
	}
	type read struct {
		sets []string
		cmd  *redis.Cmd
	}
	var reads []read
	pipe = r.client.Pipeline()
	for i, s := range scopes {
		var sets []string
		for _, m := range members[i].Val() {
			if _, a, ok := detectors.SplitAgentSet(m); ok && a == agent {
				sets = append(sets, m)
			}
		}
		if len(sets) == 0 {
			continue
		}
		b := r.base(s)
		args := append(make([]any, 0, 2+len(sets)), b, limit)
		for _, set := range sets {
			args = append(args, set)
		}
		reads = append(reads, read{sets: sets, cmd: agentWaitingScript.Eval(ctx, pipe, []string{b + "wl"}, args...)})
	}
	if len(reads) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, r.fail("agent waiting", "", err)
	}
	var out []WaitingBuyer
	for _, rd := range reads {
		v, err := rd.cmd.Slice()
		if err != nil {
			return nil, r.fail("agent waiting", "", err)
		}
		i := 0
		for _, set := range rd.sets {
			shop, _, _ := detectors.SplitAgentSet(set)
			if i >= len(v) {
				return nil, r.fail("agent waiting", "", fmt.Errorf("reply %v is short", v))
			}
			n, _ := v[i].(int64)
			i++
			for range n {
				if i+1 >= len(v) {
					return nil, r.fail("agent waiting", "", fmt.Errorf("reply %v is short", v))
				}
				buyer, _ := v[i].(string)
				s, _ := v[i+1].(string)
				start, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return nil, r.fail("agent waiting", "", fmt.Errorf("wait start %q: %w", s, err))
				}
				out = append(out, WaitingBuyer{Shop: shop, Agent: agent, Buyer: buyer, Start: start})
				i += 2
			}
		}
	}
	slices.SortFunc(out, func(x, y WaitingBuyer) int {
		return cmp.Or(cmp.Compare(x.Start, y.Start), cmp.Compare(x.Shop, y.Shop), cmp.Compare(x.Buyer, y.Buyer))
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
