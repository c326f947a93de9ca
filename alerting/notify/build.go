package notify

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/config"
)

// LogReceiverName is the receiver messages go to when none is configured.
const LogReceiverName = "log"

// Deps are what FromConfig needs beyond the configuration.
type Deps struct {
	Redis    redis.UniversalClient
	Registry prometheus.Registerer
	// Deliveries is the process's replywatch_alert_deliveries_total when
	// it is already registered.
	Deliveries *prometheus.CounterVec
	Log        *zap.Logger
	// Kafka connects to the brokers when they need TLS or SASL.
	Kafka *kafka.Dialer
	// Getenv resolves "${VAR}" secrets.
	Getenv func(string) string
	// Out receives what the log receiver writes (the demo's terminal);
	// nil writes only to the log.
	Out io.Writer
	// HTTP is the client receivers use (a fresh one per receiver with its
	// timeout when nil).
	HTTP func(cfg config.Receiver) *http.Client
}

// FromConfig builds a notifier from a validated configuration. With no
// receivers configured every alert goes to the built-in log receiver.
func FromConfig(cfg *config.Config, d Deps) (*Notifier, error) {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	n := cfg.Notify
	render := Renderer{Language: cfg.Alerts.Language, People: Directory(cfg.Agents), Location: cfg.Location}
	receivers := map[string]Receiver{}
	rc := n.Route
	if len(n.Receivers) == 0 {
		receivers[LogReceiverName] = &Log{Name: LogReceiverName, Out: d.Out, Render: render, Log: d.Log.With(zap.String("component", "notify"))}
		rc.Receiver = LogReceiverName
		d.Log.Info("no notify receivers configured: alert messages are written to the log")
	}
	route := NewRoute(rc)
	for i, rc := range n.Receivers {
		r, err := buildReceiver(rc, render, d, cfg.Redis.Prefix)
		if err != nil {
			return nil, fmt.Errorf("notify.receivers[%d] (%s): %w", i, rc.Name, err)
		}
		receivers[rc.Name] = r
	}
	return New(Options{
		Brokers:          cfg.Kafka.Brokers,
		Dialer:           d.Kafka,
		Topic:            cfg.Kafka.Topics.Alerts,
		GroupID:          n.GroupID,
		StartOffset:      cfg.Kafka.StartOffset,
		SessionTimeout:   cfg.Kafka.SessionTimeout,
		RebalanceTimeout: cfg.Kafka.RebalanceTimeout,
		Route:            route,
		People:           Directory(cfg.Agents),
		Receivers:        receivers,
		Marks:            &Marks{Client: d.Redis, Prefix: cfg.Redis.Prefix, TTL: n.MarkTTL},
		MaxAge:           n.MaxAge,
		Metrics:          NewMetrics(d.Registry, d.Deliveries),
		Log:              d.Log.With(zap.String("component", "notify")),
	}), nil
}

func buildReceiver(rc config.Receiver, render Renderer, d Deps, prefix string) (Receiver, error) {
	client := func(timeout time.Duration) *http.Client {
		if d.HTTP != nil {
			return d.HTTP(rc)
		}
		return &http.Client{Timeout: timeout}
	}
	secret := func(v config.Secret, file string) (string, error) {
		return v.Resolve(file, d.Getenv)
	}
	switch {
	case rc.WeCom != nil:
		w := rc.WeCom
		key, err := secret(w.Key, w.KeyFile)
		if err != nil {
			return nil, err
		}
		return &WeCom{URL: w.URL, Key: key, Markdown: w.Format != "text", Budget: w.Limits, Render: render, Client: client(w.Timeout)}, nil
	case rc.DingTalk != nil:
		dt := rc.DingTalk
		token, err := secret(dt.AccessToken, dt.AccessTokenFile)
		if err != nil {
			return nil, err
		}
		sec, err := secret(dt.Secret, dt.SecretFile)
		if err != nil {
			return nil, err
		}
		return &DingTalk{URL: dt.URL, AccessToken: token, Secret: sec, Budget: dt.Limits, Render: render, Client: client(dt.Timeout)}, nil
	case rc.Feishu != nil:
		f := rc.Feishu
		hook, err := secret(f.Hook, f.HookFile)
		if err != nil {
			return nil, err
		}
		var sec string
		if f.Secret != "" || f.SecretFile != "" {
			if sec, err = secret(f.Secret, f.SecretFile); err != nil {
				return nil, err
			}
		}
		return &Feishu{URL: f.URL, Hook: hook, Secret: sec, Budget: f.Limits, Render: render, Client: client(f.Timeout)}, nil
	case rc.Webhook != nil:
		w := rc.Webhook
		sec, err := secret(w.Secret, w.SecretFile)
		if err != nil {
			return nil, err
		}
		return NewWebhook(w.URL, sec, w.Limits, client(w.Timeout))
	case rc.Alertmanager != nil:
		a := rc.Alertmanager
		return NewAlertmanager(a.URL, a.Resend, client(a.Timeout), d.Log.With(zap.String("receiver", rc.Name)), d.Redis, prefix, rc.Name), nil
	case rc.Log != nil:
		return &Log{Name: rc.Name, Out: d.Out, Render: render, Log: d.Log.With(zap.String("component", "notify"))}, nil
	}
	return nil, fmt.Errorf("no kind of receiver set")
}
