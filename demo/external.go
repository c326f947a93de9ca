package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/replywatch/replywatch/config"
)

// This file is what the demo does on servers it does not own (--brokers,
// --redis-url): it works under names of its own, so that it never writes
// into a real deployment's topics, group or keys, and removes them when it
// stops.

// newRunID names one demo run's topics, consumer group and Redis keys.
func newRunID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "rwdemo-" + hex.EncodeToString(b)
}

// runTopics are the contract's topic names under the run's prefix.
func runTopics(id string) config.Topics {
	d := config.Default().Kafka.Topics
	return config.Topics{Chat: id + "." + d.Chat, Orders: id + "." + d.Orders, Presence: id + "." + d.Presence, Alerts: id + "." + d.Alerts,
		Buyers: id + "." + d.Buyers}
}

// topicsOf lists the topics a run writes: inputs, alerts and dead letters,
// with their partition counts.
func topicsOf(t config.Topics) []kafka.TopicConfig {
	var out []kafka.TopicConfig
	for _, in := range []string{t.Chat, t.Orders, t.Presence, t.Buyers} {
		out = append(out, kafka.TopicConfig{Topic: in, NumPartitions: inputPartitions, ReplicationFactor: -1},
			kafka.TopicConfig{Topic: in + ".DLT", NumPartitions: 1, ReplicationFactor: -1})
	}
	return append(out, kafka.TopicConfig{Topic: t.Alerts, NumPartitions: 1, ReplicationFactor: -1})
}

// createTopics creates the run's topics on brokers, with the brokers'
// default replication.
func createTopics(ctx context.Context, brokers []string, t config.Topics) error {
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: topicsOf(t)})
	if err != nil {
		return fmt.Errorf("creating the demo's topics: %w", err)
	}
	for name, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("creating the demo's topic %s: %w", name, err)
		}
	}
	return nil
}

// removeKafka deletes the run's topics and its consumer groups.
func removeKafka(ctx context.Context, brokers []string, t config.Topics, groups ...string) error {
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	var names []string
	for _, tc := range topicsOf(t) {
		names = append(names, tc.Topic)
	}
	var errs []error
	if resp, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names}); err != nil {
		errs = append(errs, fmt.Errorf("deleting the demo's topics: %w", err))
	} else {
		for name, err := range resp.Errors {
			if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
				errs = append(errs, fmt.Errorf("deleting the demo's topic %s: %w", name, err))
			}
		}
	}
	// One request per group: each goes to its own coordinator.
	for _, group := range groups {
		if resp, err := c.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: []string{group}}); err != nil {
			errs = append(errs, fmt.Errorf("deleting the demo's consumer group %s: %w", group, err))
		} else if err := resp.Errors[group]; err != nil && !errors.Is(err, kafka.GroupIdNotFound) {
			errs = append(errs, fmt.Errorf("deleting the demo's consumer group %s: %w", group, err))
		}
	}
	return errors.Join(errs...)
}

// removeKeys deletes every key under prefix ("<prefix>:…") and returns how
// many there were.
func removeKeys(ctx context.Context, url, prefix string) (int, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return 0, fmt.Errorf("removing the demo's Redis keys: %w", err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	n := 0
	iter := c.Scan(ctx, 0, prefix+":*", 500).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.Unlink(ctx, batch...).Err()
		n += len(batch)
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return n, fmt.Errorf("removing the demo's Redis keys: %w", err)
			}
		}
	}
	if err := iter.Err(); err != nil {
		return n, fmt.Errorf("removing the demo's Redis keys: %w", err)
	}
	if err := flush(); err != nil {
		return n, fmt.Errorf("removing the demo's Redis keys: %w", err)
	}
	return n, nil
}
