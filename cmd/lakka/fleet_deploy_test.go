package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/internal/natstest"
)

// fleetEdge is one edge binary of a small fleet on fixed loopback ports,
// started again on the same ports after a restart.
type fleetEdge struct {
	name, listen, admin, backend string
	pidFile                      string
	withSnap, withoutSnap        string // config files: with and without cache.snapshot_path
	pid                          atomic.Int64
	logs                         []func() string
}

func newFleetEdge(t *testing.T, name, backend string) *fleetEdge {
	dir := t.TempDir()
	e := &fleetEdge{
		name: name, backend: backend,
		listen:  fmt.Sprintf("127.0.0.1:%d", natstest.FreePort(t)),
		admin:   fmt.Sprintf("127.0.0.1:%d", natstest.FreePort(t)),
		pidFile: filepath.Join(dir, "edge.pid"),
	}
	base := "edge:\n  node_id: " + name + "\n  pid_file: " + e.pidFile + "\n  drain_delay: 300ms\nlog:\n  access: \"off\"\n"
	e.withSnap, e.withoutSnap = filepath.Join(dir, "snap.yaml"), filepath.Join(dir, "nosnap.yaml")
	for file, extra := range map[string]string{
		e.withSnap:    "cache:\n  snapshot_path: " + filepath.Join(dir, "edge.snapshot") + "\n",
		e.withoutSnap: "",
	} {
		if err := os.WriteFile(file, []byte(base+extra), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if pid := int(e.pid.Load()); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			waitGone(t, pid)
		}
	})
	return e
}

// start starts the edge with a config file and waits until it listens.
func (e *fleetEdge) start(t *testing.T, file string) {
	t.Helper()
	_, cmd, logs := startBinary(t, listening, nil, "edge", "--config", file, "--listen", e.listen, "--admin", e.admin, "--backend", e.backend)
	e.pid.Store(int64(cmd.Process.Pid))
	e.logs = append(e.logs, logs)
	// The process is the test's child: reap it when it exits, so that
	// waitGone sees it go.
	go func() { _, _ = cmd.Process.Wait() }()
}

func (e *fleetEdge) healthy(c *http.Client) bool {
	resp, err := c.Get("http://" + e.admin + "/healthz")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == 200
}

func (e *fleetEdge) allLogs() string {
	var b strings.Builder
	for _, l := range e.logs {
		b.WriteString(l())
	}
	return b.String()
}

// TestFleetRollingDeploy: three edges behind a load balancer that follows
// /healthz (as a real one does: a node answering 503 gets no new
// requests), under load, go through a rolling upgrade (SIGUSR2), a rolling
// restart with cache snapshots and one without, one edge at a time. No
// client request fails in any of them; with snapshots the origin is asked
// for nothing again, without them every restarted edge fetches what it is
// asked for again.
func TestFleetRollingDeploy(t *testing.T) {
	var fetched atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, "page ", r.URL.Path)
	}))
	defer o.Close()
	backend := strings.TrimPrefix(o.URL, "http://")
	const pages = 60
	var fleet []*fleetEdge
	for i := range 3 {
		e := newFleetEdge(t, fmt.Sprintf("f%d", i+1), backend)
		e.start(t, e.withSnap)
		fleet = append(fleet, e)
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, e := range fleet {
		eventuallyCLI(t, e.name+" ready", func() bool { return e.healthy(hc) })
		for p := range pages {
			for range 2 {
				resp, err := hc.Get(fmt.Sprintf("http://%s/p%d", e.listen, p))
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}
	if n := fetched.Load(); n != 3*pages {
		t.Fatalf("warming fetched %d pages from the origin, want %d", n, 3*pages)
	}

	// The load balancer: health checks every 20 ms; requests go round
	// robin to the edges whose last check said 200; a connection that
	// fails is tried once on another edge (nginx's proxy_next_upstream).
	up := make([]atomic.Bool, len(fleet))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		c := &http.Client{Timeout: 200 * time.Millisecond}
		for {
			for i, e := range fleet {
				up[i].Store(e.healthy(c))
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	var next atomic.Uint64
	pick := func(not int) int {
		for range 2 * len(fleet) {
			i := int(next.Add(1) % uint64(len(fleet)))
			if i != not && up[i].Load() {
				return i
			}
		}
		return -1
	}
	var ok, failed, retried atomic.Int64
	var firstErr atomic.Value
	for w := range 6 {
		wg.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				path := fmt.Sprintf("/p%d", (w*7+n)%pages)
				var err error
				tried := -1
				for attempt := range 2 {
					i := pick(tried)
					if i < 0 {
						err = fmt.Errorf("no edge up")
						time.Sleep(5 * time.Millisecond)
						continue
					}
					tried = i
					var resp *http.Response
					resp, err = c.Get("http://" + fleet[i].listen + path)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							err = fmt.Errorf("%s on %s: status %d", path, fleet[i].name, resp.StatusCode)
						}
						break
					}
					if attempt == 0 {
						retried.Add(1)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)

	waitBack := func(e *fleetEdge) {
		t.Helper()
		eventuallyCLI(t, e.name+" back in the load balancer", func() bool { return e.healthy(hc) })
		time.Sleep(100 * time.Millisecond) // the balancer's next check
	}
	phase := func(name string, each func(e *fleetEdge)) (origin, requests int64) {
		t.Helper()
		f0, r0 := fetched.Load(), ok.Load()+failed.Load()
		for _, e := range fleet {
			each(e)
			waitBack(e)
		}
		origin, requests = fetched.Load()-f0, ok.Load()+failed.Load()-r0
		t.Logf("%s: %d client requests, %d origin fetches", name, requests, origin)
		return origin, requests
	}
	upgrade := func(e *fleetEdge) {
		old := int(e.pid.Load())
		if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		waitGone(t, old)
		b, _ := os.ReadFile(e.pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid == 0 || pid == old {
			t.Fatalf("%s: pid file says %d after the upgrade (old %d)\n%s", e.name, pid, old, e.allLogs())
		}
		e.pid.Store(int64(pid))
	}
	restart := func(file string) func(e *fleetEdge) {
		return func(e *fleetEdge) {
			pid := int(e.pid.Load())
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			waitGone(t, pid)
			e.start(t, file)
		}
	}
	upgradeOrigin, _ := phase("rolling upgrade (SIGUSR2)", upgrade)
	snapOrigin, _ := phase("rolling restart with snapshots", func(e *fleetEdge) { restart(e.withSnap)(e) })
	// The same restart with a config without cache.snapshot_path: the
	// old process writes its snapshot (its config says so), the new one
	// loads nothing.
	noSnapOrigin, _ := phase("rolling restart without snapshots", func(e *fleetEdge) { restart(e.withoutSnap)(e) })
	close(stop)
	wg.Wait()

	t.Logf("%d client requests through the deploys, %d failed, %d retried on another edge after a connection failed; origin fetches: upgrade %d, restart with snapshots %d, restart without %d",
		ok.Load()+failed.Load(), failed.Load(), retried.Load(), upgradeOrigin, snapOrigin, noSnapOrigin)
	if failed.Load() > 0 {
		var logs strings.Builder
		for _, e := range fleet {
			logs.WriteString(e.allLogs())
		}
		t.Errorf("%d client requests failed; first: %v\n%s", failed.Load(), firstErr.Load(), logs.String())
	}
	if upgradeOrigin != 0 || snapOrigin != 0 {
		t.Errorf("with snapshots the origin was asked %d times during the upgrade and %d during the restart, want none", upgradeOrigin, snapOrigin)
	}
	if noSnapOrigin < pages {
		t.Errorf("without snapshots the restarted edges fetched only %d pages again: the load does not reach them", noSnapOrigin)
	}
}
