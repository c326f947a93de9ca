package app

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/state"
)

// kafkaSecurity builds, from kafka.tls and kafka.sasl, the dialer of the
// consumer groups and readers and the transport of the clients and the
// writer. Both are nil when neither is set: kafka-go's defaults then.
func kafkaSecurity(cfg *config.Config, getenv func(string) string) (*kafka.Dialer, kafka.RoundTripper, error) {
	k := cfg.Kafka
	tlsCfg, err := k.TLS.Config()
	if err != nil {
		return nil, nil, fmt.Errorf("kafka.tls: %w", err)
	}
	var mech sasl.Mechanism
	if k.SASL.Mechanism != "" {
		password, err := cfg.KafkaPassword(getenv)
		if err != nil {
			return nil, nil, err
		}
		switch k.SASL.Mechanism {
		case config.SASLPlain:
			mech = plain.Mechanism{Username: k.SASL.Username, Password: password}
		case config.SASLScramSHA256:
			mech, err = scram.Mechanism(scram.SHA256, k.SASL.Username, password)
		case config.SASLScramSHA512:
			mech, err = scram.Mechanism(scram.SHA512, k.SASL.Username, password)
		default:
			err = fmt.Errorf("unknown mechanism %q", k.SASL.Mechanism)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("kafka.sasl: %w", err)
		}
	}
	if tlsCfg == nil && mech == nil {
		return nil, nil, nil
	}
	d := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, ClientID: k.ClientID, TLS: tlsCfg, SASLMechanism: mech}
	t := &kafka.Transport{DialTimeout: 10 * time.Second, ClientID: k.ClientID, TLS: tlsCfg, SASL: mech}
	return d, t, nil
}

// KafkaSecurity is, for the commands that reach the brokers apart from
// the processor (simulate, demo), the dialer and transport that kafka.tls
// and kafka.sasl ask for; both nil when neither is set.
func KafkaSecurity(cfg *config.Config, getenv func(string) string) (*kafka.Dialer, kafka.RoundTripper, error) {
	return kafkaSecurity(cfg, getenv)
}

// dialRedis connects to Redis with the URL, the mode and the credentials
// and TLS settings given apart from the URL.
func dialRedis(cfg *config.Config, getenv func(string) string) (redis.UniversalClient, error) {
	user, password, err := cfg.RedisCredentials(getenv)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := cfg.Redis.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("redis.tls: %w", err)
	}
	r := cfg.Redis
	return state.DialAuth(r.URL, r.Mode, r.Addrs, r.MasterName, state.Auth{Username: user, Password: password, TLS: tlsCfg})
}
