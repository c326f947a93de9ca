package state

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/replywatch/replywatch/internal/testenv"
)

// A cluster client from Dial reaches the replica promoted after its master
// was killed outright (no MOVED reply tells it) within seconds, not at
// go-redis's default once-a-minute reading of the slot map.
func TestDialFindsTheReplicaOfAKilledMaster(t *testing.T) {
	c := testenv.Cluster(t)
	client, err := Dial(c.URL, ModeCluster, c.Addrs, "")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
		if err := client.Set(ctx, keys[i], i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.KillMaster(func() {})
	promoted := time.Now()
	testenv.Eventually(t, 15*time.Second, "every key written through the client after the kill", func() error {
		for _, k := range keys {
			if err := client.Set(ctx, k, "after", 0).Err(); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	})
	t.Logf("every slot written %.1f s after the replica was promoted", time.Since(promoted).Seconds())
}
