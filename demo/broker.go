package demo

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Partitions of the input topics: several, so that the processor runs one
// worker per partition as it does in production.
const inputPartitions = 4

// portTries is how many ports after a taken one are tried.
const portTries = 20

// Topics are the names the demo broker creates.
type Topics struct {
	Chat, Orders, Presence, Alerts, Buyers string
}

// DefaultTopics are the contract's topic names.
var DefaultTopics = Topics{Chat: "cs.chat", Orders: "cs.orders", Presence: "cs.presence", Alerts: "cs.alerts", Buyers: "cs.buyers"}

// Broker is an in-process Kafka-protocol broker on a loopback port.
type Broker struct {
	// Addr is host:port, what kafka-go and kcat are given.
	Addr    string
	cluster *kfake.Cluster
}

// StartBroker starts the embedded broker on 127.0.0.1:port, or on the next
// free port after it when it is taken; port 0 takes any free port. The input
// topics get four partitions each, alerts one (so they read in order), and
// every input topic its dead-letter topic.
func StartBroker(port int, t Topics) (*Broker, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// The processor's group joins and leaves in well under a second.
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
		kfake.SeedTopics(inputPartitions, t.Chat, t.Orders, t.Presence, t.Buyers),
		kfake.SeedTopics(1, t.Alerts, t.Chat+".DLT", t.Orders+".DLT", t.Presence+".DLT"),
	}
	tries := portTries
	if port == 0 {
		tries = 1
	}
	var err error
	for i := 0; i < tries; i++ {
		p := port
		if port != 0 {
			p = port + i
		}
		var c *kfake.Cluster
		if c, err = kfake.NewCluster(append(opts, kfake.Ports(p))...); err == nil {
			return &Broker{Addr: c.ListenAddrs()[0], cluster: c}, nil
		}
	}
	if port == 0 {
		return nil, fmt.Errorf("starting the embedded Kafka broker: %w", err)
	}
	return nil, fmt.Errorf("starting the embedded Kafka broker on a port from %d to %d: %w", port, port+tries-1, err)
}

// Close stops the broker; its data is lost.
func (b *Broker) Close() { b.cluster.Close() }
