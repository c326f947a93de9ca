package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/event"
	"github.com/replywatch/replywatch/internal/redisproc"
	"github.com/replywatch/replywatch/internal/scenario"
	"github.com/replywatch/replywatch/internal/testenv"
)

// Kafka reached over TLS with SASL (kfake's TLS listener and SCRAM or
// PLAIN users), and Redis over TLS with a client certificate as an ACL
// user allowed only replywatch's keys: the day's backlog gives the
// hand-counted figures and alerts. The Kafka password comes from a file,
// the Redis one from the environment; neither is printed. Without the
// settings neither server lets the connection through.
func TestSecuredKafkaAndRedis(t *testing.T) {
	for _, mech := range []struct{ config, kfake string }{
		{config.SASLScramSHA256, "SCRAM-SHA-256"},
		{config.SASLScramSHA512, "SCRAM-SHA-512"},
		{config.SASLPlain, "PLAIN"},
	} {
		t.Run(mech.config, func(t *testing.T) {
			certs := testenv.NewCerts(t)
			broker, _ := testenv.Kafka(t, testTopics, kfake.EnableSASL(), kfake.Superuser(mech.kfake, "rw-processor", "k-s3cret"),
				kfake.TLS(certs.Server))
			port, err := redisproc.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			// The default user may only PING (the harness's readiness
			// check); replywatch's user may touch only keys under its prefix.
			srv := testenv.RedisServerArgs(t, "--tls-port", strconv.Itoa(port), "--tls-cert-file", certs.ServerCert,
				"--tls-key-file", certs.ServerKey, "--tls-ca-cert-file", certs.CAFile, "--tls-auth-clients", "yes",
				"--user", "default", "on", "nopass", "-@all", "+ping",
				"--user", "replywatch", "on", ">r-s3cret", "~rw:*", "&*", "+@all")

			passwordFile := filepath.Join(t.TempDir(), "kafka-password")
			if err := os.WriteFile(passwordFile, []byte("k-s3cret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("RW_TEST_REDIS_PASSWORD", "r-s3cret")
			cfg := testConfig(t, broker, "rediss://127.0.0.1:"+strconv.Itoa(port)+"/0", "g1")
			cfg.Kafka.TLS = config.TLS{Enabled: true, CAFile: certs.CAFile}
			cfg.Kafka.SASL = config.SASL{Mechanism: mech.config, Username: "rw-processor", PasswordFile: passwordFile}
			cfg.Redis.Username, cfg.Redis.Password = "replywatch", "${RW_TEST_REDIS_PASSWORD}"
			cfg.Redis.TLS = config.TLS{Enabled: true, CAFile: certs.CAFile, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if err := cfg.CheckSecrets(os.Getenv); err != nil {
				t.Fatal(err)
			}
			out, err := cfg.YAML()
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{"k-s3cret", "r-s3cret"} {
				if strings.Contains(string(out), secret) {
					t.Errorf("the printed config holds the password %q", secret)
				}
			}

			// Neither server lets a client without the settings in.
			ctx := context.Background()
			plainKafka := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 3 * time.Second}
			if _, err := plainKafka.Metadata(ctx, &kafka.MetadataRequest{}); err == nil {
				t.Error("a client without TLS and SASL read the broker's metadata")
			}
			noUser := redis.NewClient(&redis.Options{Addr: srv.Addr})
			if err := noUser.Set(ctx, "rw:x", "1", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
				t.Errorf("the default user wrote a key: %v", err)
			}
			noUser.Close()

			dialer, transport, err := kafkaSecurity(cfg, os.Getenv)
			if err != nil {
				t.Fatal(err)
			}
			w := &kafka.Writer{Addr: kafka.TCP(broker), Transport: transport, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond,
				RequiredAcks: kafka.RequireAll}
			var msgs []kafka.Message
			for _, ev := range day() {
				b, err := json.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, kafka.Message{Topic: "cs.chat", Key: []byte(ev.Key(event.Chat)), Value: b})
			}
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				t.Fatalf("producing over TLS and SASL: %v", err)
			}
			w.Close()

			r := start(t, cfg, &fakeClock{t: endOfDay}, "r1")
			eventually(t, 30*time.Second, "figures", func() error {
				return expectFigures(scrape(t, r.app.Addr()), wantFigures)
			})
			eventually(t, 20*time.Second, "alerts", func() error {
				got, err := outcome(readSecured(t, dialer, broker))
				if err != nil {
					return err
				}
				return sameOutcome(scenario.Standing(got), wantFiring())
			})
			if c := readyz(r.app.Addr()); c != 200 {
				t.Errorf("/readyz %d", c)
			}

			// Passwords the servers refuse keep a replica out of service,
			// /readyz naming both parts.
			bad := *cfg
			bad.Kafka.GroupID, bad.Kafka.SASL.Password, bad.Kafka.SASL.PasswordFile = "g-bad", "wrong", ""
			bad.Redis.Password = "wrong"
			rb := start(t, &bad, &fakeClock{t: endOfDay}, "bad")
			eventually(t, 30*time.Second, "/readyz of the replica with wrong passwords", func() error {
				res, err := http.Get("http://" + rb.app.Addr() + "/readyz")
				if err != nil {
					return err
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "kafka") ||
					!strings.Contains(string(body), "WRONGPASS") {
					return fmt.Errorf("/readyz %d: %s", res.StatusCode, body)
				}
				t.Logf("/readyz with wrong passwords: %d %s", res.StatusCode, body)
				return nil
			})
		})
	}
}

// readSecured reads the alerts topic through dialer.
func readSecured(t *testing.T, dialer *kafka.Dialer, broker string) []alerting.Alert {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Dialer: dialer, Topic: "cs.alerts", Partition: 0,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	var out []alerting.Alert
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			return out
		}
		var a alerting.Alert
		if err := json.Unmarshal(m.Value, &a); err != nil {
			t.Fatalf("alert record %s: %v", m.Value, err)
		}
		out = append(out, a)
	}
}
