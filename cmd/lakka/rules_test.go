package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCheckRules: config check compiles the rules and names the
// rule (index and name) and the field of each error; the newsroom port
// checks clean.
func TestConfigCheckRules(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(file, []byte(`rules:
  - name: probes
    when: {path_regex: "^/(wp-admin"}
    do: {deny: 403}
  - name: canary
    do: {pool: canary}
  - name: late
    phase: deliver
    do: {redirect: {location: /x}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "config", "check", file)
	for _, want := range []string{
		"rules[0] (probes).when.path_regex: error parsing regexp",
		`rules[1] (canary).do.pool: no pool "canary"`,
		"rules[2] (late).do.redirect: is an action of the request phase, not of the deliver phase",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("config check: no %q in\n%s", want, stderr)
		}
	}
	if code != 1 {
		t.Errorf("config check of bad rules: exit %d, want 1", code)
	}
	if code, out, stderr := runCLI(t, "config", "check", "../../config/examples/newsroom.yaml"); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("newsroom.yaml: exit %d\n%s%s", code, out, stderr)
	}
}

// TestConfigExplain: explain prints the rules of every phase, the answer,
// the pool, the key and the lifetimes for a request, without an edge.
func TestConfigExplain(t *testing.T) {
	const cfg = "../../config/examples/newsroom.yaml"
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--url", "https://www.example.fi/a/1?x=2"},
			[]string{"rules[1] canonical-host", "answer:    by the edge: 301, Location: https://example.fi/a/1?x=2", "rules[16] deliver-headers", "first visit: bucket 99, Set-Cookie: lakka_bucket=99"}},
		{[]string{"--url", "http://example.fi/uutiset/42.cfm"},
			[]string{"rules[3] old-articles", "Location: /a/42"}},
		{[]string{"--url", "http://example.fi/", "--cookie", "lakka_bucket=7", "--header", "User-Agent:Mozilla (iPhone)", "--response-header", "Content-Type:text/html", "--response-header", "Cache-Control:max-age=60"},
			[]string{"rules[8] device-class", "rules[11] dark-launch", "key:       example.fi/ + x-device=mobile + x-dark-launch=live-widget",
				"set X-Dark-Launch: live-widget", "rules[14] html-grace", "stored:    yes, ttl 1m0s, grace 6h0m0s", "bucket:    7"}},
		{[]string{"--url", "http://example.fi/a/2", "--client", "10.20.1.1", "--cookie", "lakka_bucket=50"},
			[]string{"rules[9] canary-newsroom", "pool:      canary", "key:       example.fi/a/2 + pool=canary + x-device=desktop"}},
		{[]string{"--url", "http://example.fi/a/2", "--cookie", "sessionid=s", "--cookie", "lakka_bucket=50"},
			[]string{"rules[5] logged-in", "pass to the origin (a rule)"}},
		{[]string{"--url", "http://example.fi/a/3", "--cookie", "csrftoken=t", "--cookie", "_ga=1", "--cookie", "lakka_bucket=50"},
			[]string{"pass to the origin (a cookie (csrftoken=t))", "Cookie: csrftoken=t"}},
		{[]string{"--url", "http://example.fi/s/app--abcdef12.js", "--cookie", "lakka_bucket=50", "--response-header", "Cache-Control:no-cache"},
			[]string{"rules[12] hashed-static (ttl 8760h0m0s; final)", "set Cache-Control: public, max-age=31536000, immutable", "stored:    yes, ttl 8760h0m0s"}},
		{[]string{"--url", "http://example.fi/missing", "--status", "404", "--cookie", "lakka_bucket=50"},
			[]string{"rules[15] not-found-ttl", "ttl 1m0s"}},
	} {
		code, out, stderr := runCLI(t, append([]string{"config", "explain", "--config", cfg}, c.args...)...)
		if code != 0 {
			t.Errorf("%v: exit %d\n%s", c.args, code, stderr)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: no %q in\n%s", c.args, w, out)
			}
		}
	}
	for _, bad := range [][]string{
		{"--url", "/relative"},
		{"--url", "http://example.fi/", "--header", "no-colon"},
		{"--url", "http://example.fi/", "--client", "nowhere"},
	} {
		if code, _, stderr := runCLI(t, append([]string{"config", "explain", "--config", cfg}, bad...)...); code == 0 || !strings.Contains(stderr, "--") {
			t.Errorf("%v: exit %d, stderr %q: want an error naming the flag", bad, code, stderr)
		}
	}
}

// TestEdgeNewsroomPools: the command line works as written, with
// --pool replacing each pool's servers; a pool the file does not name is
// a usage error naming the flag.
func TestEdgeNewsroomPools(t *testing.T) {
	origin := func(name string) string {
		o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, name)
		}))
		t.Cleanup(o.Close)
		return strings.TrimPrefix(o.URL, "http://")
	}
	def, canary := origin("default"), origin("canary")
	a, _, logs := startBinary(t, listening, nil, "edge", "--config", "../../config/examples/newsroom.yaml",
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--pool", "default="+def, "--pool", "canary="+canary)
	get := func(path, cookie string) (string, http.Header) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+a[0]+path, nil)
		req.Host = "example.fi"
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header
	}
	if body, h := get("/lb-health", ""); body != "ok\n" || h.Get("X-Served-By") != "edge-1" {
		t.Errorf("/lb-health: %q, X-Served-By %q\n%s", body, h.Get("X-Served-By"), logs())
	}
	if body, _ := get("/a/1", "lakka_bucket=50"); body != "default" {
		t.Errorf("bucket 50: %q, want the default pool", body)
	}
	if body, _ := get("/a/1", "lakka_bucket=2"); body != "canary" {
		t.Errorf("bucket 2: %q, want the canary pool", body)
	}
	code, _, stderr := runCLI(t, "edge", "--config", "../../config/examples/newsroom.yaml", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--pool", "blue=127.0.0.1:1")
	if code != 2 || !strings.Contains(stderr, `--pool blue=127.0.0.1:1: the configuration has no pool "blue"`) {
		t.Errorf("unknown pool: exit %d, %q", code, stderr)
	}
}
