package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/internal/natstest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// lakkaBinary builds the lakka binary once per test run, with -race when
// the tests run with it.
func lakkaBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lakka-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "lakka")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, ".")
		cmd := exec.Command("go", args...)
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		t.Fatalf("build lakka: %v", buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// runCLI runs the command in-process and returns its exit status, stdout
// and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(lakkaBinary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func TestVersionAndHelp(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "lakka ") {
		t.Errorf("version: %d %q", code, out)
	}
	for _, c := range [][]string{{}, {"edge"}, {"config"}, {"config", "check"}, {"config", "default"}, {"version"}} {
		code, out, _ := runCLI(t, append(c, "--help")...)
		if code != 0 || !strings.Contains(out, "Example") && !strings.Contains(out, "Examples:") {
			t.Errorf("lakka %v --help: exit %d, no example in %q", c, code, out)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("cache:\n  size_bytes: 1GiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("cache:\n  sise_bytes: 1GiB\n  grace: soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCLI(t, "config", "check", good); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("good config: %d %q", code, out)
	}
	code, _, errs := runCLI(t, "config", "check", bad)
	if code != 1 || !strings.Contains(errs, "cache.sise_bytes: unknown key") || !strings.Contains(errs, "cache.grace") {
		t.Errorf("bad config: exit %d, stderr %q", code, errs)
	}
	if code, _, _ := runCLI(t, "config", "check"); code != 2 {
		t.Errorf("config check without FILE: exit %d, want 2", code)
	}
	// The default config printed is valid and complete.
	_, def, _ := runCLI(t, "config", "default")
	p := filepath.Join(dir, "default.yaml")
	if err := os.WriteFile(p, []byte(def), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, "config", "check", p); code != 0 {
		t.Errorf("config default does not check: %s", errs)
	}
}

func TestEdgeFlagErrors(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		code, _, errs := runCLI(t, append([]string{"edge"}, args...)...)
		if code != 2 || !strings.Contains(errs, want) {
			t.Errorf("edge %v: exit %d, stderr %q, want 2 and %q", args, code, errs, want)
		}
	}
	f("--cache-size", "--backend", "127.0.0.1:1", "--cache-size", "lots")
	f("unknown flag: --bogus", "--bogus")
	f("backends.servers", "--listen", "127.0.0.1:0")
	f("edge.listen", "--listen", "nope", "--backend", "127.0.0.1:1")
}

var listening = regexp.MustCompile(`msg="edge listening" addr=(\S+) admin=(\S+)`)

// TestEdgeBinary runs the real binary (built with -race under -race): it
// serves through to an origin, caches, and exits 0 on SIGTERM after
// draining.
func TestEdgeBinary(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("signals")
	}
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "from origin")
	}))
	defer o.Close()
	a, cmd, logs := startBinary(t, listening, []string{"LAKKA_ADMIN_TOKEN=" + testAdminToken}, "edge", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--backend", strings.TrimPrefix(o.URL, "http://"), "--cache-size", "32MiB")
	get := func(url string) (int, string, string) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(url, a[1]) {
			req.Header.Set("Authorization", "Bearer "+testAdminToken) // the admin token from the environment
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Cache"), string(b)
	}
	if s, x, b := get("http://" + a[0] + "/"); s != 200 || x != "MISS" || b != "from origin" {
		t.Errorf("first: %d %s %q", s, x, b)
	}
	if s, x, _ := get("http://" + a[0] + "/"); s != 200 || x != "HIT" {
		t.Errorf("second: %d %s", s, x)
	}
	if s, _, b := get("http://" + a[1] + "/metrics"); s != 200 || !strings.Contains(b, "lakka_edge_requests_total") {
		t.Errorf("metrics: %d", s)
	}
	stopBinary(t, cmd, logs)
}

func TestExitStatuses(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("edge:\n  admn: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := func(want int, env []string, args ...string) {
		t.Helper()
		cmd := exec.Command(lakkaBinary(t), args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != want {
			t.Errorf("lakka %v: exit %d, want %d\n%s", args, code, want, out)
		}
	}
	f(2, nil, "frobnicate")
	f(2, nil, "edge", "--config", bad, "--backend", "127.0.0.1:1")
	f(2, nil, "origin", "--config", bad)
	f(2, nil, "edge", "--config", filepath.Join(dir, "missing.yaml"), "--backend", "127.0.0.1:1")
	f(1, nil, "config", "check", bad)
	urls := filepath.Join(dir, "urls.txt")
	if err := os.WriteFile(urls, []byte("/\n/a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f(2, []string{"LAKKA_ORIGIN_TOKEN="}, "bench", "spike", "--target", "http://127.0.0.1:1", "--origin", "http://127.0.0.1:1", "--urls", urls, "--duration", "1s", "--spike-at", "0s")
}

// TestEdgeLogrotate: after logrotate moves the access log and sends
// SIGUSR1, the edge writes to a new file at the old path; the lines from
// before stay in the moved one.
func TestEdgeLogrotate(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("signals")
	}
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "from origin")
	}))
	defer o.Close()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	cfg := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(cfg, []byte("log: {access: "+logPath+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, cmd, logs := startBinary(t, listening, nil, "edge", "--config", cfg, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--backend", strings.TrimPrefix(o.URL, "http://"))
	get := func(path string) {
		t.Helper()
		resp, err := http.Get("http://" + a[0] + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// waitFor polls until file holds a line with want.
	waitFor := func(file, want string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			b, _ := os.ReadFile(file)
			if strings.Contains(string(b), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no line with %q after 5 s; it holds:\n%s\nedge log:\n%s", file, want, b, logs())
			}
		}
	}
	get("/before")
	waitFor(logPath, "GET /before ")
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	get("/between") // still written to the moved file
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs(), "access log reopened"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no reopen after SIGUSR1:\n%s", logs())
		}
	}
	get("/after")
	waitFor(logPath, "GET /after ")
	waitFor(rotated, "GET /between ")
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "/before") || strings.Contains(string(b), "/between") {
		t.Errorf("the new file holds lines from before the reopen:\n%s", b)
	}
	stopBinary(t, cmd, logs)
}

// TestEdgeReloadOnSIGHUP: SIGHUP makes the running edge read its file
// again: a new route applies to new requests, the cache stays; a broken
// file keeps the edge running on the previous configuration, and "lakka
// stats" says the reload failed.
func TestEdgeReloadOnSIGHUP(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "page", r.URL.Path)
	}))
	defer o.Close()
	file := filepath.Join(t.TempDir(), "edge.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("backends:\n  servers: [{address: " + strings.TrimPrefix(o.URL, "http://") + "}]\n")
	a, cmd, logs := startBinary(t, listening, []string{"LAKKA_ADMIN_TOKEN=" + testAdminToken}, "edge", "--config", file,
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--cache-size", "32MiB")
	xcache := func(path string) string {
		resp, err := http.Get("http://" + a[0] + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Header.Get("X-Cache")
	}
	xcache("/kept")
	xcache("/live/1")
	if x := xcache("/live/1"); x != "HIT" {
		t.Fatalf("before the reload: %s", x)
	}
	write("backends:\n  servers: [{address: " + strings.TrimPrefix(o.URL, "http://") + "}]\nroutes:\n  - {name: live, path_prefix: /live/, pass: true}\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for xcache("/live/1") != "PASS" {
		if time.Now().After(deadline) {
			t.Fatalf("the new route not applied 5s after SIGHUP\n%s", logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if x := xcache("/kept"); x != "HIT" {
		t.Errorf("the cache after the reload: %s, want HIT", x)
	}
	write("routes: [{path_prefix: nope}]\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(logs(), "configuration not reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed reload logged\n%s", logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if x := xcache("/live/1"); x != "PASS" {
		t.Errorf("after a broken file: %s, want the running configuration's PASS", x)
	}
	t.Setenv("LAKKA_ADMIN_TOKEN", testAdminToken)
	code, out, _ := runCLI(t, "stats", "--admin", a[1], "--count", "1")
	if code != 0 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "routes[0].path_prefix") {
		t.Errorf("stats after a broken reload: exit %d\n%s", code, out)
	}
	stopBinary(t, cmd, logs)
}

// TestEdgeNotifiesSystemd: under a service manager (NOTIFY_SOCKET, here a
// socket of the test's own) the edge sends READY=1 once it serves,
// RELOADING=1 with MONOTONIC_USEC then READY=1 around a SIGHUP reload, and
// STOPPING=1 when SIGTERM starts the drain.
func TestEdgeNotifiesSystemd(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "x") }))
	defer o.Close()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	next := func(want string) string {
		t.Helper()
		buf := make([]byte, 4096)
		if err := l.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, err := l.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		got := string(buf[:n])
		if !strings.HasPrefix(got, want) {
			t.Fatalf("notified %q, want %q first", got, want)
		}
		return got
	}
	_, cmd, logs := startBinary(t, listening, []string{"NOTIFY_SOCKET=" + sock}, "edge", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--backend", strings.TrimPrefix(o.URL, "http://"), "--cache-size", "32MiB")
	next("READY=1")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if got := next("RELOADING=1"); !strings.Contains(got, "\nMONOTONIC_USEC=") {
		t.Errorf("reloading: %q, want MONOTONIC_USEC", got)
	}
	next("READY=1")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	next("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, logs())
	}
}

// TestEdgeUpgrade: SIGUSR2 under load starts the binary again, hands it
// the listening sockets, and the old process exits 0 once the new one
// serves; the PID file names the new process. No request fails and no
// connection is refused meanwhile.
func TestEdgeUpgrade(t *testing.T) {
	var fetched atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "page", r.URL.Path)
	}))
	defer o.Close()
	a, cmd, logs, readPID := startUpgradable(t, strings.TrimPrefix(o.URL, "http://"), "--cache-size", "32MiB")
	deadline := time.Now().Add(10 * time.Second)
	for readPID() != cmd.Process.Pid {
		if time.Now().After(deadline) {
			t.Fatalf("pid file says %d, want %d", readPID(), cmd.Process.Pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var newPID int
	t.Cleanup(func() {
		if newPID > 0 {
			_ = syscall.Kill(newPID, syscall.SIGTERM)
			waitGone(t, newPID)
		}
	})

	// Every page cached before the upgrade: with cache.snapshot_path the
	// new process starts with them, and the origin sees none again.
	get := func(path string) (xcache string, age int) {
		resp, err := http.Get("http://" + a[0] + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		age, _ = strconv.Atoi(resp.Header.Get("Age"))
		return resp.Header.Get("X-Cache"), age
	}
	for p := range 50 {
		get(fmt.Sprintf("/p%d", p))
	}
	time.Sleep(1100 * time.Millisecond) // ristretto's sets land; Age reaches 1
	if x, _ := get("/p7"); x != "HIT" {
		t.Fatalf("/p7 before the upgrade: X-Cache %q", x)
	}
	_, ageBefore := get("/p7")
	fetchedBefore := fetched.Load()

	stop := make(chan struct{})
	// Every request must succeed: pages and /healthz, on keep-alive
	// connections (half the clients) and on a new connection each (the
	// other half, as load balancers' health checks come).
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: i%2 == 1}}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				for _, url := range []string{"http://" + a[0] + fmt.Sprintf("/p%d", (i*1000+n)%50), "http://" + a[1] + "/healthz"} {
					resp, err := c.Get(url)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							err = fmt.Errorf("%s: status %d", url, resp.StatusCode)
						}
					}
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					} else {
						ok.Add(1)
					}
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	// The process, not cmd.Wait: the new process keeps the old one's
	// stdout and stderr open.
	exited := make(chan error, 1)
	go func() {
		st, err := cmd.Process.Wait()
		if err == nil && !st.Success() {
			err = fmt.Errorf("exit status %d", st.ExitCode())
		}
		exited <- err
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("old process: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the old process did not exit 30s after SIGUSR2\n%s", logs())
	}
	newPID = readPID()
	if newPID == 0 || newPID == cmd.Process.Pid {
		t.Fatalf("pid file names %d after the upgrade, want the new process (old %d)\n%s", newPID, cmd.Process.Pid, logs())
	}
	time.Sleep(300 * time.Millisecond) // the new process alone
	close(stop)
	wg.Wait()
	total := ok.Load() + failed.Load()
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed during the upgrade; first: %v\n%s", failed.Load(), total, firstErr.Load(), logs())
	}
	t.Logf("%d requests during the upgrade (half of them /healthz, half on new connections), %d failed; old pid %d, new pid %d", total, failed.Load(), cmd.Process.Pid, newPID)
	if x, age := get("/p7"); x != "HIT" || age < ageBefore {
		t.Errorf("/p7 after the upgrade: X-Cache %q, Age %d (before: %d); want the HIT, its Age still counting\n%s", x, age, ageBefore, logs())
	}
	if n := fetched.Load() - fetchedBefore; n != 0 {
		t.Errorf("the origin was asked %d times during and after the upgrade: the new process did not start with the cache\n%s", n, logs())
	}
	if err := syscall.Kill(newPID, syscall.SIGTERM); err != nil {
		t.Errorf("the new process: %v", err)
	}
	waitGone(t, newPID) // it writes its snapshot into the test's directory
}

// waitGone waits until process pid has exited (it is not a child of the
// test: an upgraded edge), up to 20 seconds.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if _, rest, ok := strings.Cut(string(b), ") "); ok && strings.HasPrefix(rest, "Z") {
				return // exited, not yet reaped
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs 20s after SIGTERM", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startUpgradable starts the edge binary in front of backend on fixed
// free ports (the new process of an upgrade finds its sockets among the
// old one's by address, and two ":0" would look the same), with a PID
// file and no drain delay; readPID reads the PID file (0 before it is
// written).
func startUpgradable(t *testing.T, backend string, args ...string) (addrs []string, cmd *exec.Cmd, logs func() string, readPID func() int) {
	t.Helper()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "edge.pid")
	file := filepath.Join(dir, "edge.yaml")
	snapshot := filepath.Join(dir, "edge.snapshot")
	if err := os.WriteFile(file, []byte("edge:\n  pid_file: "+pidFile+"\n  drain_delay: 0s\ncache:\n  snapshot_path: "+snapshot+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen, admin := fmt.Sprintf("127.0.0.1:%d", natstest.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", natstest.FreePort(t))
	addrs, cmd, logs = startBinary(t, listening, nil, append([]string{"edge", "--config", file, "--listen", listen, "--admin", admin, "--backend", backend}, args...)...)
	readPID = func() int {
		b, _ := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	}
	return addrs, cmd, logs, readPID
}
