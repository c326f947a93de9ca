package bench

import (
	"testing"

	"github.com/replywatch/replywatch/config"
)

// The harness counts the buyers topic's partitions as the replicas create
// it: with the configuration's default count.
func TestBuyersPartitionsAreTheDefault(t *testing.T) {
	if d := config.Default().Kafka.BuyersPartitions; d != buyersPartitions {
		t.Fatalf("the buyers topic has %d partitions by default, the harness counts %d", d, buyersPartitions)
	}
}
