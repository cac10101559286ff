package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lakka-cache/lakka/config"
	"github.com/lakka-cache/lakka/edge"
)

// startTestEdge runs an in-process edge on loopback with the given token.
// testAdminToken is the admin token of the edges tests start.
const testAdminToken = "test-admin-token"

func startTestEdge(t *testing.T, backend, token string) *edge.Server {
	t.Helper()
	c := config.Default()
	c.Edge.Listen, c.Edge.Admin = "127.0.0.1:0", "127.0.0.1:0"
	c.Edge.DrainDelay = 0
	c.Log.Access = "off"
	c.Purge.Token = token
	c.Admin.Token = testAdminToken
	c.Cache.SizeBytes = 16 << 20
	c.Cache.MaxObjectBytes = 1 << 20
	c.Backends.Servers = []config.Backend{{Address: backend}}
	s, err := edge.New(c, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		<-done
	})
	return s
}

func xcache(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("X-Cache")
}

func TestPurgeSeveralEdges(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "article:42 front")
		fmt.Fprint(w, "story")
	}))
	defer o.Close()
	backend := strings.TrimPrefix(o.URL, "http://")
	a := startTestEdge(t, backend, "tok")
	b := startTestEdge(t, backend, "tok")
	for _, s := range []*edge.Server{a, b} {
		xcache(t, "http://"+s.Addr()+"/story")
	}
	cmd := exec.Command(lakkaBinary(t), "purge", "--admin", a.AdminAddr(), "--admin", b.AdminAddr(), "--tag", "article:42", "--soft")
	cmd.Env = append(cmd.Environ(), "LAKKA_PURGE_TOKEN=tok")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("purge: %v\n%s", err, out)
	}
	for _, s := range []*edge.Server{a, b} {
		if !strings.Contains(string(out), s.AdminAddr()) || strings.Count(string(out), "purged=1 soft=true") != 2 {
			t.Errorf("report does not show %s purged:\n%s", s.AdminAddr(), out)
		}
		if x := xcache(t, "http://"+s.Addr()+"/story"); x == "HIT" {
			t.Errorf("%s still serves the purged object as fresh", s.Addr())
		}
	}

	// An edge that refuses the token is reported, and the exit status says so.
	c := startTestEdge(t, backend, "other")
	cmd = exec.Command(lakkaBinary(t), "purge", "--admin", a.AdminAddr(), "--admin", c.AdminAddr(), "--tag", "front")
	cmd.Env = append(cmd.Environ(), "LAKKA_PURGE_TOKEN=tok")
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("one edge refusing: %v, want exit 1\n%s", err, out)
	}
	if !strings.Contains(string(out), c.AdminAddr()+"  FAILED") || !strings.Contains(string(out), "401") {
		t.Errorf("refusal not reported:\n%s", out)
	}
	// Usage errors name the flag.
	for _, args := range [][]string{{"purge", "--tag", "x"}, {"purge", "--admin", a.AdminAddr()}} {
		cmd = exec.Command(lakkaBinary(t), args...)
		cmd.Env = append(cmd.Environ(), "LAKKA_PURGE_TOKEN=tok")
		out, err = cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit 2\n%s", args, err, out)
		}
	}
}

func TestStatsOnce(t *testing.T) {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, "x")
	}))
	defer o.Close()
	s := startTestEdge(t, strings.TrimPrefix(o.URL, "http://"), "tok")
	xcache(t, "http://"+s.Addr()+"/")
	xcache(t, "http://"+s.Addr()+"/")
	// Without the admin token the edge refuses, and stats says which
	// variable to set.
	code, _, errs := runCLI(t, "stats", "--admin", s.AdminAddr(), "--count", "1")
	if code != 1 || !strings.Contains(errs, "LAKKA_ADMIN_TOKEN") {
		t.Errorf("stats without the admin token: exit %d: %s", code, errs)
	}
	t.Setenv("LAKKA_ADMIN_TOKEN", testAdminToken)
	code, out, errs := runCLI(t, "stats", "--admin", s.AdminAddr(), "--count", "2", "--interval", "10ms")
	if code != 0 {
		t.Fatalf("stats: exit %d: %s", code, errs)
	}
	for _, want := range []string{"requests", "hit ratio", "50.0%", "origin fetches", strings.TrimPrefix(o.URL, "http://"), "healthy"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats output lacks %q:\n%s", want, out)
		}
	}
	if code, _, errs := runCLI(t, "stats"); code != 2 || !strings.Contains(errs, "--admin") {
		t.Errorf("stats without --admin: %d %q", code, errs)
	}
}
