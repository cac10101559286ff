package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/origin/pgtest"
)

func TestOriginHelp(t *testing.T) {
	for _, c := range [][]string{{"origin"}, {"origin", "migrate"}} {
		code, out, _ := runCLI(t, append(c, "--help")...)
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "lakka origin") {
			t.Errorf("lakka %v --help: exit %d, no example in %q", c, code, out)
		}
	}
}

func TestOriginFlagErrors(t *testing.T) {
	f := func(want string, args ...string) {
		t.Helper()
		code, _, errs := runCLI(t, args...)
		if code != 2 || !strings.Contains(errs, want) {
			t.Errorf("lakka %v: exit %d, stderr %q; want 2 and %q", args, code, errs, want)
		}
	}
	f("takes no arguments", "origin", "extra")
	f("unknown flag: --bogus", "origin", "--bogus")
	f("--seed must not be negative", "origin", "--seed", "-1")
	f(`--listen "nohostport"`, "origin", "--listen", "nohostport")
	f(`--edge-admin "nope"`, "origin", "--edge-admin", "nope")
	f("invalid argument", "origin", "--seed", "many")
	f("needs a database", "origin", "migrate")
	dir := t.TempDir()
	bad := dir + "/bad.yaml"
	if err := os.WriteFile(bad, []byte("origin:\n  purge_retry_min: 1m\n  purge_retry_max: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, "origin", "--config", bad)
	if code == 0 || !strings.Contains(errs, "origin.purge_retry_max") {
		t.Errorf("bad config file: exit %d, stderr %q", code, errs)
	}
}

func TestOriginMigrateCommand(t *testing.T) {
	url := pgtest.URL(t)
	code, out, errs := runCLI(t, "origin", "migrate", "--database-url", url)
	if code != 0 || !strings.Contains(out, "applied 0001_content") {
		t.Fatalf("first migrate: exit %d, %q %q", code, out, errs)
	}
	cmd := exec.Command(lakkaBinary(t), "origin", "migrate")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url)
	b, err := cmd.Output()
	if err != nil || string(b) != "migrations: up to date\n" {
		t.Errorf("second migrate (DATABASE_URL): %q, %v", b, err)
	}
}

var originListening = regexp.MustCompile(`msg="origin listening" addr=(\S+)`)

// startBinary runs the lakka binary with args (and env added to the
// environment), waits for a log line matching re and returns re's
// submatches in it, the command and a reader of its log so far.
func startBinary(t *testing.T, re *regexp.Regexp, env []string, args ...string) ([]string, *exec.Cmd, func() string) {
	t.Helper()
	cmd := exec.Command(lakkaBinary(t), args...)
	cmd.Env = append(append(os.Environ(), "GORACE=halt_on_error=1"), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			if err := cmd.Process.Kill(); err != nil {
				t.Log(err)
			}
		}
	})
	var (
		mu   sync.Mutex
		logs bytes.Buffer
	)
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil && len(found) == 0 {
				found <- m[1:]
			}
		}
	}()
	read := func() string {
		mu.Lock()
		defer mu.Unlock()
		return logs.String()
	}
	select {
	case m := <-found:
		return m, cmd, read
	case <-time.After(60 * time.Second):
		t.Fatalf("lakka %v did not log %s:\n%s", args, re, read())
		return nil, nil, nil
	}
}

// stopBinary sends SIGTERM and expects exit 0.
func stopBinary(t *testing.T, cmd *exec.Cmd, logs func() string) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, logs())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", logs())
	}
}

func httpDo(t *testing.T, method, url, body string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestOriginBinary runs the real binary (built with -race under -race) on
// both stores: it seeds, serves pages and the API, and exits 0 on SIGTERM
// after writing the buffered view counts.
func TestOriginBinary(t *testing.T) {
	for _, store := range []string{"memory", "postgres"} {
		t.Run(store, func(t *testing.T) {
			args := []string{"origin", "--listen", "127.0.0.1:0", "--seed", "200"}
			if store == "postgres" {
				args = append(args, "--database-url", pgtest.URL(t))
			}
			m, cmd, logs := startBinary(t, originListening, []string{"LAKKA_ORIGIN_TOKEN=bin-token"}, args...)
			base := "http://" + m[0]
			for path, want := range map[string]int{"/": 200, "/news/": 200, "/healthz": 200, "/sitemap.xml": 200, "/nope/": 404} {
				if resp, _ := httpDo(t, "GET", base+path, ""); resp.StatusCode != want {
					t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
				}
			}
			resp, body := httpDo(t, "PUT", base+"/api/articles/5", `{"title":"Changed by the test"}`, "Authorization", "Bearer bin-token")
			if resp.StatusCode != 200 || !strings.Contains(body, `"version":2`) {
				t.Fatalf("PUT: %d %s", resp.StatusCode, body)
			}
			if resp, _ := httpDo(t, "POST", base+"/views/5", ""); resp.StatusCode != http.StatusNoContent {
				t.Errorf("view beacon: %d", resp.StatusCode)
			}
			if _, body := httpDo(t, "GET", base+"/metrics", ""); !strings.Contains(body, `lakka_origin_http_requests_total{kind="front"} 1`) {
				t.Errorf("metrics lack the front page request:\n%.2000s", body)
			}
			stopBinary(t, cmd, logs)
			if l := logs(); !strings.Contains(l, "origin stopped") || !strings.Contains(l, "store seeded") {
				t.Errorf("log:\n%s", l)
			}
		})
	}
}

// TestOriginNotifiesSystemd: under a service manager (NOTIFY_SOCKET, here
// a socket of the test's own) the origin sends READY=1 once it serves and
// STOPPING=1 when SIGTERM starts the shutdown, then exits 0; a Type=notify
// unit (packaging/lakka-origin.service) relies on both.
func TestOriginNotifiesSystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	next := func(want string) {
		t.Helper()
		buf := make([]byte, 4096)
		if err := l.SetReadDeadline(time.Now().Add(15 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, err := l.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if got := string(buf[:n]); !strings.HasPrefix(got, want) {
			t.Fatalf("notified %q, want %q first", got, want)
		}
	}
	m, cmd, logs := startBinary(t, originListening, []string{"NOTIFY_SOCKET=" + sock}, "origin", "--listen", "127.0.0.1:0", "--seed", "20")
	next("READY=1")
	if resp, _ := httpDo(t, "GET", "http://"+m[0]+"/healthz", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz after READY=1: %d", resp.StatusCode)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	next("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, logs())
	}
	if !strings.Contains(logs(), "origin stopped") {
		t.Errorf("no clean stop in the log:\n%s", logs())
	}
}
