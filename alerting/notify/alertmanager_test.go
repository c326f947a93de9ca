package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/replywatch/replywatch/alerting"
	"github.com/replywatch/replywatch/internal/redisproc"
	"github.com/replywatch/replywatch/internal/testenv"
)

// startAlertmanager runs Debian's prometheus-alertmanager (or
// alertmanager) on a free loopback port with a temporary configuration
// and storage, and returns its base URL.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		if bin, err = exec.LookPath("alertmanager"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("alertmanager not found: apt-get install prometheus-alertmanager")
			}
			t.Skip("alertmanager not found: apt-get install prometheus-alertmanager")
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route: {receiver: blackhole, group_wait: 0s}\nreceivers: [{name: blackhole}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := redisproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	url := "http://" + addr
	testenv.Eventually(t, 30*time.Second, "alertmanager ready", func() error {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	})
	return url
}

type amGot struct {
	Labels map[string]string `json:"labels"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
	EndsAt time.Time `json:"endsAt"`
}

func amAlerts(t *testing.T, url string) map[string]amGot {
	t.Helper()
	resp, err := http.Get(url + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []amGot
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	out := map[string]amGot{}
	for _, a := range got {
		out[a.Labels["alert_id"]] = a
	}
	return out
}

func TestAlertmanagerReceivesAndResolves(t *testing.T) {
	if testing.Short() {
		t.Skip("starts alertmanager")
	}
	url := startAlertmanager(t)
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisServer(t).Addr})
	defer rdb.Close()
	// Resends every 750 ms give endsAt 3 s ahead: the time Alertmanager
	// would take to resolve an alert nobody re-sent.
	const resend = 750 * time.Millisecond
	am := NewAlertmanager(url, resend, httpClient(), zap.NewNop(), rdb, "rw", "am")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, stopFirst := context.WithCancel(ctx)
	go am.Run(first, time.Now)

	m := msg(2)
	now := time.Now()
	if err := am.Send(ctx, m, now); err != nil {
		t.Fatal(err)
	}
	id0, id1 := m.Items[0].Alert.ID, m.Items[1].Alert.ID
	testenv.Eventually(t, 10*time.Second, "both alerts active", func() error {
		got := amAlerts(t, url)
		if got[id0].Status.State != "active" || got[id1].Status.State != "active" {
			return fmt.Errorf("%+v", got)
		}
		if l := got[id0].Labels; l["alertname"] != "reply_breach" || l["shop_id"] != "s1" || l["buyer_id"] != "b000" || l["severity"] != "warning" {
			return fmt.Errorf("labels %v", l)
		}
		return nil
	})
	// endsAt is four resends ahead; without the resends Alertmanager would
	// resolve them after it. The notifier restarts (a new receiver on the
	// same Redis takes over the resends); past the last endsAt the first
	// receiver can have given, they are still active.
	stopFirst()
	lapse := time.Now().Add(4 * resend)
	am = NewAlertmanager(url, resend, httpClient(), zap.NewNop(), rdb, "rw", "am")
	go am.Run(ctx, time.Now)
	// Alertmanager's own clock passing that endsAt, not a wait for a
	// condition: it resolves the alert by itself then, and says nothing
	// when it does not. Only our resend interval sets how long this is.
	time.Sleep(time.Until(lapse))
	if got := amAlerts(t, url); got[id0].Status.State != "active" || !got[id0].EndsAt.After(time.Now()) {
		t.Fatalf("a firing alert lapsed although it was re-sent: %+v", got[id0])
	}
	res := m.Items[0].Alert
	res.Status, res.Reason, res.At = alerting.Resolved, alerting.ReasonReplied, time.Now()
	if err := am.Send(ctx, &Message{Items: []*Item{{Alert: res, Receiver: "am"}}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the resolved alert gone, the other active", func() error {
		got := amAlerts(t, url)
		if _, ok := got[id0]; ok {
			return fmt.Errorf("%s still listed: %+v", id0, got[id0])
		}
		if got[id1].Status.State != "active" {
			return fmt.Errorf("%s: %+v", id1, got[id1])
		}
		return nil
	})
}
