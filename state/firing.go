package state

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Firing returns the alert records (JSON) firing now in scopes, as
// apply.lua keeps them from each batch's outbox: a firing record is kept
// under its alert id until a resolved record with that id is written in
// the same partition. One pipelined round trip.
func (r *Redis) Firing(ctx context.Context, scopes []string) ([][]byte, error) {
	if len(scopes) == 0 {
		return nil, nil
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(scopes))
	for i, s := range scopes {
		cmds[i] = pipe.HVals(ctx, r.base(s)+"firing")
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, r.fail("firing", "", err)
	}
	var out [][]byte
	for _, c := range cmds {
		for _, v := range c.Val() {
			out = append(out, []byte(v))
		}
	}
	return out, nil
}
