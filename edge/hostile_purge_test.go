package edge

import (
	"testing"
)

// TestPurgeMethodBehindTrustedProxy: behind a load balancer or a local TLS
// terminator (a trusted proxy), every client arrives from the proxy's
// address. The PURGE method must be allowed for the client the proxy
// reports in X-Forwarded-For, not for the proxy: otherwise anyone on the
// internet can purge through it when the proxy's address is in
// purge.allow_networks (the default allows 127.0.0.1).
func TestPurgeMethodBehindTrustedProxy(t *testing.T) {
	o := startOrigin(t, fixed("page", "Cache-Control", "max-age=600"))
	f := func(trusted []string, wantStatus int, headers ...string) {
		t.Helper()
		c := testConfig(o.addr())
		c.Edge.TrustedProxies = trusted
		e := startEdge(t, c)
		if r := e.do("PURGE", "/p", headers...); r.status != wantStatus {
			t.Errorf("trusted %v, %v: PURGE answered %d, want %d", trusted, headers, r.status, wantStatus)
		}
	}
	local := []string{"127.0.0.0/8"}
	f(local, 403, "X-Forwarded-For", "203.0.113.7")
	f(local, 403, "X-Forwarded-For", "127.0.0.1, 203.0.113.7")
	f(local, 403, "X-Forwarded-For", "203.0.113.7", "X-Forwarded-For", "198.51.100.1")
	f(local, 403, "X-Forwarded-For", "not an address")
	f(local, 200, "X-Forwarded-For", "127.0.0.1")
	f(local, 403, "X-Forwarded-For", "203.0.113.7, 127.0.0.1") // through two trusted hops
	f(local, 200, "X-Forwarded-For", "127.0.0.1, 127.0.0.2")   // all trusted: the first
	f(local, 200)                                              // the proxy itself
	// Without trusted proxies X-Forwarded-For is the client's word: ignored.
	f(nil, 200, "X-Forwarded-For", "203.0.113.7")
}
