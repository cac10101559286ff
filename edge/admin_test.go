package edge

import (
	"net/http"
	"strings"
	"testing"

	"github.com/lakka-cache/lakka/config"
)

// TestAdminSurfaceClosed: every admin endpoint but /healthz is closed by
// default (docs/RELIABILITY.md, promise 14), opens to the admin token or an
// allowed network, /metrics also to its scrape networks, the purge API also
// to the purge token; profiles exist only when configured; each refusal is
// counted.
func TestAdminSurfaceClosed(t *testing.T) {
	o := startOrigin(t, fixed("hello", "Cache-Control", "max-age=60"))
	type probe struct {
		method, path, token string
		want                int
	}
	check := func(name string, c config.Config, probes []probe) *testEdge {
		t.Helper()
		e := startEdge(t, c)
		for _, p := range probes {
			var headers []string
			if p.token != "" {
				headers = []string{"Authorization", "Bearer " + p.token}
			}
			body := ""
			if p.method == http.MethodPost {
				body = `{"all":true}`
				headers = append(headers, "Content-Type", "application/json")
			}
			r := doURL(t, p.method, "http://"+e.AdminAddr()+p.path, body, headers...)
			if r.status != p.want {
				t.Errorf("%s: %s %s (token %q): %d %s, want %d", name, p.method, p.path, p.token, r.status, strings.TrimSpace(r.body), p.want)
			}
			if r.status == http.StatusUnauthorized && r.get("WWW-Authenticate") == "" {
				t.Errorf("%s: %s: 401 without WWW-Authenticate", name, p.path)
			}
		}
		return e
	}
	get, post := http.MethodGet, http.MethodPost

	closed := check("defaults", testConfig(o.addr()), []probe{
		{get, "/healthz", "", 200},
		{get, "/metrics", "", 403},
		{get, "/api/stats", "", 403},
		{get, "/readyz", "", 403},
		{post, "/api/purge", "", 403},
		{get, "/debug/pprof/", "", 404},
	})
	if got := counter(closed.m.adminRefusals.WithLabelValues("closed")); got != 3 {
		t.Errorf("closed refusals counted %v, want 2", got)
	}
	if got := counter(closed.m.purgeRefusals.WithLabelValues("closed")); got != 1 {
		t.Errorf("closed purge refusals counted %v, want 1", got)
	}

	c := testConfig(o.addr())
	c.Admin.Token = testAdminToken
	c.Admin.Pprof = true
	tok := check("admin token", c, []probe{
		{get, "/healthz", "", 200},
		{get, "/metrics", "", 401},
		{get, "/metrics", "wrong", 401},
		{get, "/metrics", testAdminToken, 200},
		{get, "/api/stats", testAdminToken + "x", 401},
		{get, "/api/stats", testAdminToken, 200},
		{get, "/readyz", "", 401},
		{get, "/readyz", testAdminToken, 200},
		{get, "/debug/pprof/", "", 401},
		{get, "/debug/pprof/", testAdminToken, 200},
		{post, "/api/purge", "", 401},
		{post, "/api/purge", testAdminToken, 200},
	})
	if got := counter(tok.m.adminRefusals.WithLabelValues("token")); got != 5 {
		t.Errorf("token refusals counted %v, want 5", got)
	}

	c = testConfig(o.addr())
	c.Admin.MetricsNetworks = []string{"127.0.0.0/8"}
	c.Purge.Token = testToken
	check("scrape network", c, []probe{
		{get, "/metrics", "", 200},
		{get, "/api/stats", "", 403},
		{post, "/api/purge", "", 401},
		{post, "/api/purge", testToken, 200},
	})

	c = testConfig(o.addr())
	c.Admin.AllowNetworks = []string{"127.0.0.0/8", "::1/128"}
	c.Admin.Token = testAdminToken
	check("allowed network", c, []probe{
		{get, "/metrics", "", 200},
		{get, "/api/stats", "", 200},
		{post, "/api/purge", "", 200},
		{get, "/debug/pprof/", "", 404},
	})

	c = testConfig(o.addr())
	c.Admin.AllowNetworks = []string{"10.0.0.0/8"}
	check("other network", c, []probe{
		{get, "/metrics", "", 401},
		{get, "/api/stats", "", 401},
	})
}
