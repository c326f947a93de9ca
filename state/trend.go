package state

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// trendTTL keeps a day's trend a day past its end, whatever the shop's
// time zone.
const trendTTL = 48 * time.Hour

// trendKey is the hash of a shop's samples of one shop-local day.
func (r *Redis) trendKey(shop, day string) string {
	return r.prefix + ":trend:{" + shop + "}:" + day
}

// AddTrend records one sample (JSON) of each shop's figures at a minute of
// its day (minutes since shop-local midnight); samples maps shop to sample,
// days shop to its day. A later sample of the same minute replaces it.
func (r *Redis) AddTrend(ctx context.Context, minute int, days map[string]string, samples map[string][]byte) error {
	pipe := r.client.Pipeline()
	for shop, b := range samples {
		k := r.trendKey(shop, days[shop])
		pipe.HSet(ctx, k, strconv.Itoa(minute), b)
		pipe.Expire(ctx, k, trendTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return r.fail("trend", "", err)
	}
	return nil
}

// Trend returns a shop's samples of day by minute.
func (r *Redis) Trend(ctx context.Context, shop, day string) (map[int][]byte, error) {
	m, err := r.client.HGetAll(ctx, r.trendKey(shop, day)).Result()
	if err != nil && err != redis.Nil {
		return nil, r.fail("trend", "", err)
	}
	out := make(map[int][]byte, len(m))
	for k, v := range m {
		if n, err := strconv.Atoi(k); err == nil {
			out[n] = []byte(v)
		}
	}
	return out, nil
}
