package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

func TestBenchFlagErrors(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "one.json")
	os.WriteFile(one, []byte(`{}`), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "spike", "--origin", "http://127.0.0.1:1"}, "--target is required"},
		{[]string{"bench", "spike", "--target", "http://127.0.0.1:1"}, "--origin is required"},
		{[]string{"bench", "spike", "--target", "127.0.0.1:1", "--origin", "http://127.0.0.1:1"}, "--target: want a URL"},
		{[]string{"bench", "spike", "--target", "http://127.0.0.1:1", "--origin", "http://127.0.0.1:1", "--rate", "0"}, "--rate"},
		{[]string{"bench", "spike", "--target", "http://127.0.0.1:1", "--origin", "http://127.0.0.1:1", "--spike-x", "0.5"}, "--spike-x"},
		{[]string{"bench", "spike", "--target", "http://127.0.0.1:1", "--origin", "http://127.0.0.1:1", "--front-share", "2"}, "--front-share"},
		{[]string{"bench", "spike", "--target", "http://127.0.0.1:1", "--origin", "http://127.0.0.1:1", "--connections", "0"}, "--connections"},
		{[]string{"bench", "spike", "--target", "http://127.0.0.1:1", "--origin", "http://127.0.0.1:1", "--duration", "0s"}, "--duration"},
		{[]string{"bench", "spike", "--target", "http://127.0.0.1:1", "--origin", "http://127.0.0.1:1", "--urls", filepath.Join(dir, "nope")}, "--urls"},
		{[]string{"bench", "spike", "--target", "http://192.0.2.1:80", "--origin", "http://127.0.0.1:1"}, "--allow-remote"},
		{[]string{"bench", "spike", "--target", "http://127.0.0.1:1", "--origin", "http://192.0.2.1:80"}, "--origin: http://192.0.2.1:80 is not on loopback"},
		{[]string{"bench", "spike", "--target", "http://127.0.0.1:1", "--origin", "http://127.0.0.1:1", "--log-level", "loud"}, "--log-level"},
		{[]string{"bench", "spike", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"bench", "spike", "extra"}, "takes no arguments"},
		{[]string{"bench", "replay", "--target", "http://127.0.0.1:1"}, "--trace is required"},
		{[]string{"bench", "replay", "--target", "http://127.0.0.1:1", "--trace", "x", "--speed", "2", "--max"}, "--speed and --max"},
		{[]string{"bench", "replay", "--target", "http://127.0.0.1:1", "--trace", "x", "--speed", "-1"}, "--speed"},
		{[]string{"bench", "replay", "--target", "http://127.0.0.1:1", "--trace", filepath.Join(dir, "nope")}, "--trace"},
		{[]string{"bench", "compare", one}, "at least two reports"},
		{[]string{"bench", "compare", "--names", "a", one, one}, "--names"},
		{[]string{"bench", "target", "--body-bytes", "-1"}, "--body-bytes"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("lakka %s: exit %d, stderr %q; want 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
	// A report that is not one: exit 1, with the file named.
	code, _, stderr := runCLI(t, "bench", "compare", one, one)
	if code != 1 || !strings.Contains(stderr, "one.json") {
		t.Errorf("compare of bad reports: exit %d, %q", code, stderr)
	}
}

// TestBenchReplayAndCompare replays a fixture trace against a test server
// with the binary, writes reports, and compares them.
func TestBenchReplayAndCompare(t *testing.T) {
	var n atomic.Int64
	var hosts atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		hosts.Store(r.Host)
		w.Header().Set("X-Cache", "HIT")
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	trace := filepath.Join("..", "..", "bench", "testdata", "lakka-combined.log")
	dir := t.TempDir()
	for _, run := range []struct {
		out  string
		args []string
	}{
		{"a", []string{"--max"}},
		{"b", []string{"--speed", "100", "--host", "www.example.com", "--path-prefix", "/news/"}},
	} {
		args := append([]string{"bench", "replay", "--trace", trace, "--target", srv.URL, "--out", filepath.Join(dir, run.out), "--label", run.out}, run.args...)
		code, stdout, stderr := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("lakka %v: exit %d\n%s%s", args, code, stdout, stderr)
		}
		for _, want := range []string{"trace lines", "unparseable 1", "latency p99 ms", "report.html"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("replay %s: output lacks %q:\n%s", run.out, want, stdout)
			}
		}
		if stderr != "" {
			t.Errorf("replay %s: stderr not quiet: %q", run.out, stderr)
		}
	}
	// Run a: the 6 parsed GETs; run b: the 2 under /news/, with the host rewritten.
	if got := n.Load(); got != 8 {
		t.Errorf("server saw %d requests, want 8", got)
	}
	if h := hosts.Load(); h != "www.example.com" {
		t.Errorf("host %v, want the rewritten one", h)
	}
	var rep struct {
		Requests int64 `json:"requests"`
		Trace    struct {
			Unparseable int64 `json:"unparseable"`
			Filtered    int64 `json:"filtered"`
		} `json:"trace"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "b", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Requests != 2 || rep.Trace.Unparseable != 1 || rep.Trace.Filtered != 4 {
		t.Errorf("report b: %+v", rep)
	}
	code, stdout, stderr := runCLI(t, "bench", "compare", filepath.Join(dir, "a"), filepath.Join(dir, "b", "report.json"))
	if code != 0 {
		t.Fatalf("compare: exit %d %s", code, stderr)
	}
	if !regexp.MustCompile(`requests\s+6\s+2`).MatchString(stdout) {
		t.Errorf("compare table:\n%s", stdout)
	}
}

// TestBenchNoAnswer: a replay against a target nobody listens on prints
// its report, then fails with exit status 1 and says why.
func TestBenchNoAnswer(t *testing.T) {
	target := "http://127.0.0.1:1" // a privileged port nobody serves
	trace := filepath.Join("..", "..", "bench", "testdata", "lakka-combined.log")
	code, stdout, stderr := runCLI(t, "bench", "replay", "--trace", trace, "--target", target, "--max")
	if code != 1 || !strings.Contains(stderr, "no request got an answer (connect errors 6") || !strings.Contains(stdout, "latency p99 ms") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr: %s", code, stdout, stderr)
	}
}

// TestBenchTarget starts the trivial target, asks it once, and stops it
// with SIGTERM.
func TestBenchTarget(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("signals")
	}
	cmd := exec.Command(lakkaBinary(t), "bench", "target", "--listen", "127.0.0.1:0", "--body-bytes", "10")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`listening on (http://\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no address in %q", line)
	}
	resp, err := http.Get(m[1] + "any/path")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("X-Cache") != "HIT" || len(body) != 10 {
		t.Errorf("answer %q, X-Cache %q", body, resp.Header.Get("X-Cache"))
	}
	stopBinary(t, cmd, func() string { return "" })
}

// TestBenchSpikeEdgeOrigin runs a short spike against a real lakka edge in
// front of a real lakka origin, on loopback, and checks the report: the
// bench, the edge's caching and the origin's purges work together.
func TestBenchSpikeEdgeOrigin(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("signals")
	}
	if code, _, _ := runCLI(t, "origin", "--help"); code != 0 {
		t.Skip("lakka origin is not in this build yet")
	}
	env := []string{"LAKKA_ORIGIN_TOKEN=bench-test-origin", "LAKKA_PURGE_TOKEN=bench-test-purge"}
	// The origin needs the edge's admin address and the edge the origin's:
	// a forwarder on a free port stands in for the edge's admin listener
	// until the edge is up.
	var admin atomic.Value
	fwd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, _ := admin.Load().(string)
		if a == "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+a+r.URL.RequestURI(), r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer fwd.Close()

	o, originCmd, originLogs := startBinary(t, regexp.MustCompile(`msg="origin listening" addr=(\S+)`), env,
		"origin", "--listen", "127.0.0.1:0", "--seed", "60", "--edge-admin", strings.TrimPrefix(fwd.URL, "http://"))
	e, edgeCmd, edgeLogs := startBinary(t, listening, env,
		"edge", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--backend", o[0], "--cache-size", "64MiB")
	admin.Store(e[1])

	out := t.TempDir()
	args := []string{"bench", "spike", "--target", "http://" + e[0], "--origin", "http://" + o[0],
		"--duration", "5s", "--rate", "100", "--spike-at", "1s", "--ramp", "1s", "--spike-x", "5",
		"--edit-every", "800ms", "--connections", "16", "--seed", "3", "--out", out}
	cmd := exec.Command(lakkaBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("lakka %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Requests int64 `json:"requests"`
		Errors   struct {
			Total int64 `json:"total"`
		} `json:"errors"`
		HitRatio       *float64 `json:"hit_ratio"`
		OriginRequests *float64 `json:"origin_requests"`
		Freshness      struct {
			Edits int      `json:"edits"`
			Seen  int      `json:"seen"`
			Max   *float64 `json:"max"`
		} `json:"freshness_lag_ms"`
		Spike *struct {
			ArticleID int64 `json:"article_id"`
		} `json:"spike"`
		Series []json.RawMessage `json:"series"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %d requests, hit ratio %v, origin requests %v, edits %d/%d",
		rep.Requests, deref(rep.HitRatio), deref(rep.OriginRequests), rep.Freshness.Seen, rep.Freshness.Edits)
	if rep.Requests < 500 || rep.Errors.Total != 0 {
		t.Errorf("%d requests, %d errors\n%s", rep.Requests, rep.Errors.Total, b)
	}
	if rep.HitRatio == nil || *rep.HitRatio < 0.5 {
		t.Errorf("hit ratio %v: the edge does not cache", deref(rep.HitRatio))
	}
	if rep.OriginRequests == nil || *rep.OriginRequests <= 0 || *rep.OriginRequests >= float64(rep.Requests) {
		t.Errorf("origin requests %v of %d", deref(rep.OriginRequests), rep.Requests)
	}
	if rep.Spike == nil || rep.Spike.ArticleID == 0 {
		t.Error("no spike article")
	}
	// Edits at 1.8, 2.6, 3.4 and 4.2 s; each must reach readers through the
	// origin's purge of the edge, well within the run.
	if rep.Freshness.Edits < 4 || rep.Freshness.Seen != rep.Freshness.Edits || rep.Freshness.Max == nil || *rep.Freshness.Max > 3000 {
		t.Errorf("freshness %+v (max %v)", rep.Freshness, deref(rep.Freshness.Max))
	}
	if len(rep.Series) < 5 {
		t.Errorf("series of %d seconds", len(rep.Series))
	}
	stopBinary(t, edgeCmd, edgeLogs)
	stopBinary(t, originCmd, originLogs)
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}
