package deployments_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/app"
	"github.com/replywatch/replywatch/config"
	"github.com/replywatch/replywatch/deployments"
	"github.com/replywatch/replywatch/internal/testenv"
	"github.com/replywatch/replywatch/sim"
)

// notProduced are metrics a panel shows that no code produces yet; each
// must say why. The test fails when one of them starts to exist, so the
// list cannot go stale.
var notProduced = map[string]string{}

// A real Prometheus scrapes a replywatch fed with simulated traffic, with the
// kit's rules loaded; every dashboard query and recording rule returns data,
// and every metric an alert rule names exists.
func TestEveryQueryReturnsData(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus not found: install it with apt-get install prometheus")
		}
		t.Skip("prometheus not found (apt-get install prometheus)")
	}
	queries, err := deployments.Queries(".")
	if err != nil {
		t.Fatal(err)
	}
	broker, _ := testenv.Kafka(t, map[string]int{"cs.chat": 4, "cs.orders": 2, "cs.presence": 2, "cs.alerts": 1})

	// Shops run in a zone where it is early afternoon, so waits start and
	// deadlines pass whatever the hour of the test.
	loc := testenv.NoonZone(time.Now())
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{broker}
	cfg.Kafka.SessionTimeout, cfg.Kafka.RebalanceTimeout = 2*time.Second, 2*time.Second
	cfg.Redis.URL = testenv.Redis(t)
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Timezone = loc.String()
	cfg.Metrics.PerAgent = true
	cfg.Metrics.ReportInterval = 500 * time.Millisecond
	cfg.Metrics.ReporterLease = 3 * time.Second
	cfg.Seats.AwayAfter = time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, app.Options{Log: zap.NewNop(), Holder: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// The shop day so far, then waits whose deadlines pass during the test,
	// and one unusable record.
	now := time.Now().In(loc)
	opening := time.Date(now.Year(), now.Month(), now.Day(), 8, 0, 0, 0, loc)
	opts := sim.Options{Seed: 5, Shops: 2, Agents: 3, Rate: 3, Start: opening, End: now, Location: loc}
	w := sim.NewWriter(broker)
	defer w.Close()
	p := sim.NewProducer(context.Background(), w, sim.DefaultTopics)
	if err := sim.Generate(opts, p.Emit); err != nil {
		t.Fatal(err)
	}
	for _, r := range sim.Urgent(opts, now, 4) {
		if err := p.Emit(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMessages(context.Background(), kafka.Message{Topic: "cs.chat", Key: []byte("x"), Value: []byte("not json")}); err != nil {
		t.Fatal(err)
	}

	promAddr := freeAddr(t)
	dir := t.TempDir()
	rules, _ := filepath.Abs(deployments.RulesFile)
	promCfg := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: [%q]\nscrape_configs:\n  - job_name: replywatch\n    static_configs: [{targets: [%q]}]\n", rules, a.Addr())
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(promCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr)
	var promLog strings.Builder
	prom.Stdout, prom.Stderr = &promLog, &promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = prom.Process.Kill()
		_ = prom.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", promLog.String())
		}
	})
	api := "http://" + promAddr

	// Wait until the figures are in Prometheus: alerts fired and were
	// delivered.
	testenv.Eventually(t, 90*time.Second, "a breach alert, seats and per-agent series in Prometheus", func() error {
		res, err := query(api, `sum(replywatch_alerts_total{kind="reply_breach",status="firing"}) > 0 and on() sum(replywatch_seats) > 0 and on() count(replywatch_agent_waiting_buyers) > 0`)
		if err == nil && len(res) == 0 {
			err = errors.New("not yet")
		}
		return err
	})
	// Then until every dashboard query and recording rule returns data:
	// rate() windows need a few scrapes, rules on rules a few evaluations.
	// Each is checked again below, one by one.
	testenv.Eventually(t, 60*time.Second, "every dashboard query and recording rule returning data", func() error {
		var empty []string
		for _, q := range queries {
			if q.Kind == deployments.KindAlert {
				continue
			}
			if res, err := query(api, q.Expr); err != nil || (len(res) == 0 && notProducedIn(q.Expr) == "") {
				empty = append(empty, fmt.Sprintf("%s %s %q (%v)", q.File, q.Kind, q.Name, err))
			}
		}
		if len(empty) > 0 {
			return fmt.Errorf("%d without data: %s", len(empty), strings.Join(empty, "; "))
		}
		return nil
	})

	checkMetrics(t, "http://"+a.Addr()+"/metrics")

	metricName := regexp.MustCompile(`replywatch[_:][a-zA-Z0-9_:]*`)
	for _, q := range queries {
		if q.Kind == deployments.KindAlert {
			// An alert's condition is false when all is well; what must
			// hold is that it is valid and names only metrics that exist.
			if _, err := query(api, q.Expr); err != nil {
				t.Errorf("%s %s: %v", q.File, q.Name, err)
			}
			for _, m := range metricName.FindAllString(q.Expr, -1) {
				if _, skip := notProduced[m]; skip {
					continue
				}
				if res, err := query(api, "count({__name__=\""+m+"\"})"); err != nil || len(res) == 0 {
					t.Errorf("%s alert %s: metric %s has no series (%v)", q.File, q.Name, m, err)
				}
			}
			continue
		}
		res, err := query(api, q.Expr)
		if err != nil {
			t.Errorf("%s %s %q: %v", q.File, q.Kind, q.Name, err)
			continue
		}
		if len(res) == 0 {
			if why := notProducedIn(q.Expr); why != "" {
				t.Logf("%s %q shows no data yet: %s", q.File, q.Name, why)
				continue
			}
			t.Errorf("%s %s %q returned no data: %s", q.File, q.Kind, q.Name, q.Expr)
		}
	}
	for m := range notProduced {
		if res, _ := query(api, "count({__name__=\""+m+"\"})"); len(res) > 0 {
			t.Errorf("%s is produced now: remove it from notProduced", m)
		}
	}
}

// checkMetrics runs `promtool check metrics` on a scrape of url: names,
// units, help texts and types follow Prometheus' conventions.
func checkMetrics(t *testing.T, url string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found (apt-get install prometheus)")
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = resp.Body
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on %s: %v\n%s", url, err, out)
	}
}

func notProducedIn(expr string) string {
	for m, why := range notProduced {
		if strings.Contains(expr, m) {
			return why
		}
	}
	return ""
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// query runs an instant query and returns its result vector (or matrix/scalar as raw items).
func query(api, q string) ([]json.RawMessage, error) {
	resp, err := http.Get(api + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s", body.Error)
	}
	if body.Data.ResultType == "scalar" || body.Data.ResultType == "string" {
		return []json.RawMessage{body.Data.Result}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(body.Data.Result, &items); err != nil {
		return nil, err
	}
	return items, nil
}
