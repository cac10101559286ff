package edge

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/config"
)

// newsroomRules sets c up with config/examples/newsroom.yaml's rules,
// sticky cookie and canary pool (on c's backend), plus extra rules.
func newsroomRules(tb testing.TB, c *config.Config, extra []config.Rule) {
	tb.Helper()
	n, err := config.LoadFile("../config/examples/newsroom.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	c.Rules = append(n.Rules, extra...)
	c.Sticky = n.Sticky
	c.Edge.NodeID = n.Edge.NodeID
	c.Pools = map[string]config.Pool{"canary": {Servers: c.Backends.Servers}}
}

// manyRules returns n rules that a request for example.com/page does not
// match, the way a large site's rules look: most name other hosts, the
// rest other path prefixes, a few regular expressions.
func manyRules(n int) []config.Rule {
	var out []config.Rule
	for i := range n {
		r := config.Rule{Name: fmt.Sprintf("r%d", i), Do: config.Actions{Pass: true}}
		switch {
		case i%4 != 3:
			r.When.Host = []string{fmt.Sprintf("site%d.example.net", i)}
			r.When.PathPrefix = []string{"/admin"}
		case i%20 == 19:
			r.When.PathRegex = fmt.Sprintf(`^/legacy%d/`, i)
		default:
			r.When.PathPrefix = []string{fmt.Sprintf("/section%d/", i)}
		}
		out = append(out, r)
	}
	return out
}

// newsroomHitCtx is a returning desktop reader's request for /page.
func newsroomHitCtx(tb testing.TB) *fasthttp.RequestCtx {
	return hitCtx(tb, "/page", "Accept-Encoding", "gzip", "Cookie", "lakka_bucket=50; _ga=GA1.2.3",
		"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
}

// BenchmarkHitRules: the handler's cost for a hit with the newsroom rules
// and with 200 rules, interleaved in one loop with the same hit on an
// edge without rules; plain/rules is the ratio to quote (at least 0.9 for
// the newsroom, 0.8 for 200 rules).
func BenchmarkHitRules(b *testing.B) {
	for _, set := range ruleSets() {
		b.Run(set.name, func(b *testing.B) {
			ruled, _ := primedEdgeConfig(b, 2<<10, func(c *config.Config) { newsroomRules(b, c, set.extra) })
			serveHit(ruled, newsroomHitCtx(b)) // the miss: the key has the device class
			ruled.settle()
			// A context that only sees hits: a miss's forwarding parses the
			// request's cookies, which a server's new request never has.
			rctx := newsroomHitCtx(b)
			plain, _ := primedEdge(b, 2<<10, "off")
			// The same request without the bucket cookie, which only an
			// edge with rules strips.
			pctx := hitCtx(b, "/page", "Accept-Encoding", "gzip", "Cookie", "_ga=GA1.2.3",
				"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
			for range 100 {
				serveHit(ruled, rctx)
				serveHit(plain, pctx)
			}
			if string(rctx.Response.Header.Peek("X-Cache")) != "HIT" || string(pctx.Response.Header.Peek("X-Cache")) != "HIT" {
				b.Fatalf("not hits: %s, %s", rctx.Response.Header.Peek("X-Cache"), pctx.Response.Header.Peek("X-Cache"))
			}
			interleave(b, "rules", func() { serveHit(ruled, rctx) }, "plain", func() { serveHit(plain, pctx) })
		})
	}
}

// BenchmarkHitRulesConn is BenchmarkHitRules through the edge's whole
// server loop (parsing, the handler, writing), as hits are served:
// plain/rules is the ratio to quote.
func BenchmarkHitRulesConn(b *testing.B) {
	for _, set := range ruleSets() {
		b.Run(set.name, func(b *testing.B) {
			ruled, plain, rreq, preq := ruledAndPlain(b, set.extra)
			rl, pl := serveLoop(ruled), serveLoop(plain)
			for range 100 {
				rl.send(rreq)
				pl.send(preq)
			}
			if !strings.Contains(string(rl.last), "\r\nX-Cache: HIT\r\n") || !strings.Contains(string(pl.last), "\r\nX-Cache: HIT\r\n") {
				b.Fatalf("not hits:\n%s\n%s", rl.last, pl.last)
			}
			interleave(b, "rules", func() { rl.send(rreq) }, "plain", func() { pl.send(preq) })
		})
	}
}

// BenchmarkHitRulesTCP is BenchmarkHitRulesConn over real loopback TCP
// connections to the two edges' listeners (one keep-alive connection
// each, a request at a time), the system calls included as a client sees
// them: plain/rules is the ratio of requests per second.
func BenchmarkHitRulesTCP(b *testing.B) {
	for _, set := range ruleSets() {
		b.Run(set.name, func(b *testing.B) {
			ruled, plain, rreq, preq := ruledAndPlain(b, set.extra)
			rc, pc := tcpClient(b, ruled.Addr()), tcpClient(b, plain.Addr())
			for range 100 {
				rc.do(rreq)
				pc.do(preq)
			}
			if rc.resp.Header.Peek("X-Cache")[0] != 'H' || pc.resp.Header.Peek("X-Cache")[0] != 'H' {
				b.Fatalf("not hits: %s, %s", rc.resp.Header.Peek("X-Cache"), pc.resp.Header.Peek("X-Cache"))
			}
			interleave(b, "rules", func() { rc.do(rreq) }, "plain", func() { pc.do(preq) })
		})
	}
}

// tcpConn is a client's keep-alive connection to an edge.
type tcpConn struct {
	tb   testing.TB
	c    net.Conn
	br   *bufio.Reader
	resp fasthttp.Response
}

func tcpClient(tb testing.TB, addr string) *tcpConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return &tcpConn{tb: tb, c: c, br: bufio.NewReaderSize(c, 64<<10)}
}

// do sends req and reads the whole response.
func (t *tcpConn) do(req []byte) {
	if _, err := t.c.Write(req); err != nil {
		t.tb.Fatal(err)
	}
	t.resp.Reset()
	if err := t.resp.Read(t.br); err != nil {
		t.tb.Fatal(err)
	}
}

// ruleSets are the rule sets the benchmarks load: the newsroom's, and
// with 200 more.
func ruleSets() []struct {
	name  string
	extra []config.Rule
} {
	return []struct {
		name  string
		extra []config.Rule
	}{{"newsroom", nil}, {"newsroom+200", manyRules(200)}}
}

// ruledAndPlain starts an edge with the newsroom's rules plus extra and
// one without rules, both holding /page, and the raw request of a
// returning desktop reader for each (the bucket cookie only an edge with
// rules strips is left out of the other's).
func ruledAndPlain(b *testing.B, extra []config.Rule) (ruled, plain *testEdge, rreq, preq []byte) {
	ruled, _ = primedEdgeConfig(b, 2<<10, func(c *config.Config) { newsroomRules(b, c, extra) })
	plain, _ = primedEdge(b, 2<<10, "off")
	const ua = "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n"
	rreq = []byte("GET /page HTTP/1.1\r\nHost: example.com\r\n" + ua + "Accept-Encoding: gzip\r\nCookie: lakka_bucket=50; _ga=GA1.2.3\r\n\r\n")
	preq = []byte("GET /page HTTP/1.1\r\nHost: example.com\r\n" + ua + "Accept-Encoding: gzip\r\nCookie: _ga=GA1.2.3\r\n\r\n")
	return ruled, plain, rreq, preq
}
