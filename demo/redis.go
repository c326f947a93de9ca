package demo

import (
	"fmt"
	"os/exec"

	"github.com/alicebob/miniredis/v2"

	"github.com/replywatch/replywatch/internal/redisproc"
)

// Redis is where the demo keeps its state: a redis-server child process, or
// an embedded miniredis when no redis-server can run.
type Redis struct {
	// URL is redis://127.0.0.1:PORT/0.
	URL string
	// Desc says which Redis runs and why, for the user.
	Desc string
	// PID is the redis-server child's process id, 0 when embedded.
	PID int

	close func()
}

// Close stops the server: the child is killed and reaped, miniredis shut
// down. Closing twice does nothing.
func (r *Redis) Close() {
	if r.close != nil {
		r.close()
		r.close = nil
	}
}

// StartRedis starts Redis for the demo. With redis-server on PATH (and
// embedded false) it runs one as a child in dir, on a free loopback port,
// without persistence; otherwise, or when that child fails to start, it runs
// miniredis in this process and Desc says why.
func StartRedis(dir string, embedded bool) (*Redis, error) {
	why := "--embedded-redis given"
	if !embedded {
		bin, err := exec.LookPath("redis-server")
		if err == nil {
			r, err := startRedisServer(bin, dir)
			if err == nil {
				return r, nil
			}
			why = fmt.Sprintf("redis-server did not start: %v", err)
		} else {
			why = "redis-server not found on PATH; install it for the real thing"
		}
	}
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("starting embedded miniredis: %w", err)
	}
	return &Redis{
		URL:   "redis://" + m.Addr() + "/0",
		Desc:  "embedded miniredis (" + why + ")",
		close: m.Close,
	}, nil
}

// startRedisServer runs redis-server on a free port, retrying with another
// port when one is taken between the probe and the server's bind.
func startRedisServer(bin, dir string) (*Redis, error) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var port int
		if port, err = redisproc.FreePort(); err != nil {
			continue
		}
		var p *redisproc.Proc
		p, err = redisproc.Start(bin, dir, port, redisproc.Options{Attr: childAttr(), LogName: fmt.Sprintf("redis-%d.log", attempt+1)})
		if err == nil {
			return &Redis{
				URL:   p.URL,
				Desc:  fmt.Sprintf("redis-server child process (%s, pid %d, no persistence)", bin, p.PID),
				PID:   p.PID,
				close: p.Kill,
			}, nil
		}
	}
	return nil, err
}
