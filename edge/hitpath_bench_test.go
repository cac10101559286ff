package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/config"
)

// hitCtx returns a request context for GET path, with the given request
// headers, ready to be handled again and again. Its last response is
// reset when the test ends, before the edge stops: a stored body it holds
// is released, as fasthttp does once a response is written.
func hitCtx(tb testing.TB, path string, headers ...string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI(path)
	req.Header.SetHost("example.com")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	// Parse it from the wire, as the server does, so that raw headers exist.
	var parsed fasthttp.Request
	if err := parsed.Read(bufio.NewReader(strings.NewReader(req.String()))); err != nil {
		panic(err)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&parsed, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 12345}, nil)
	tb.Cleanup(ctx.Response.Reset)
	return ctx
}

// primedEdge returns an edge whose cache holds /page (size bytes of HTML).
func primedEdge(tb testing.TB, size int, accessLog string) (*testEdge, *fasthttp.RequestCtx) {
	return primedEdgeConfig(tb, size, func(c *config.Config) { c.Log.Access = accessLog })
}

func primedEdgeConfig(tb testing.TB, size int, mutate func(*config.Config)) (*testEdge, *fasthttp.RequestCtx) {
	tb.Helper()
	body := strings.Repeat("<p>news text</p>\n", size/17+1)[:size]
	o := startOrigin(tb, fixed(body, "Cache-Control", "max-age=3600", "Content-Type", "text/html; charset=utf-8", "ETag", `"abc"`))
	c := testConfig(o.addr())
	mutate(&c)
	e := startEdge(tb, c)
	ctx := hitCtx(tb, "/page")
	e.handle(ctx)
	if ctx.Response.StatusCode() != http.StatusOK {
		tb.Fatalf("priming: status %d", ctx.Response.StatusCode())
	}
	e.settle()
	return e, ctx
}

// serveHit handles ctx as a new request on the same context.
func serveHit(e *testEdge, ctx *fasthttp.RequestCtx) {
	ctx.Response.Reset()
	e.handle(ctx)
}

// BenchmarkHit is the handler's cost for a hit, called directly. Such
// contexts do not come from the server loop, so they never keep a header
// (offerHitHeader): this is the long way, every time. BenchmarkHitConn
// measures hits as a server serves them, with the kept header.
func BenchmarkHit(b *testing.B) {
	for _, size := range []int{2 << 10, 40 << 10} {
		for _, enc := range []string{"gzip", "identity"} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, enc), func(b *testing.B) {
				e, _ := primedEdge(b, size, "off")
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					ctx := hitCtx(b, "/page", "Accept-Encoding", enc)
					for pb.Next() {
						serveHit(e, ctx)
						if ctx.Response.Header.Peek("X-Cache")[0] != 'H' {
							panic("not a hit")
						}
					}
				})
			})
		}
	}
}

// BenchmarkHitConn serves hits through the edge's whole fasthttp server
// loop (request parsing, the handler, response writing) over an in-memory
// connection, beside a bare fasthttp server returning the same bytes
// through the same loop: the CPU side of "make bench-hit", without the
// sockets. edge-ns/bare-ns is the ratio to quote (one run, interleaved).
// The access log is on (the default; to /dev/null) or off.
func BenchmarkHitConn(b *testing.B) {
	for _, size := range []int{2 << 10, 40 << 10} {
		for _, enc := range []string{"gzip", "identity"} {
			for _, log := range []string{"on", "off"} {
				b.Run(fmt.Sprintf("%dKiB/%s/log-%s", size>>10, enc, log), func(b *testing.B) {
					hitConn(b, size, enc, log)
				})
			}
		}
	}
}

func hitConn(b *testing.B, size int, enc, log string) {
	access := "off"
	if log == "on" {
		access = "/dev/null"
	}
	e, _ := primedEdge(b, size, access)
	req := []byte("GET /page HTTP/1.1\r\nHost: example.com\r\nUser-Agent: wrk\r\nAccept-Encoding: " + enc + "\r\n\r\n")
	edge := serveLoop(e)
	for range 3 { // the hits that make the kept header
		edge.send(req)
	}
	if !strings.Contains(string(edge.last), "\r\nX-Cache: HIT\r\n") || e.hitHeaderSets() == 0 {
		b.Fatalf("not a hit from a kept header:\n%s", edge.last)
	}
	bare := bareLoop(b, edge.last)
	interleave(b, "edge", func() { edge.send(req) }, "bare", func() { bare.send(req) })
}

// interleave times x and y alternately in one loop (the machine is shared
// and noisy: only ratios measured side by side mean anything) and reports
// each one's nanoseconds and y's time over x's, the ratio to quote.
func interleave(b *testing.B, xName string, x func(), yName string, y func()) {
	b.ReportAllocs()
	var tx, ty time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		x()
		t1 := time.Now()
		y()
		tx += t1.Sub(t0)
		ty += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tx.Nanoseconds())/n, xName+"-ns")
	b.ReportMetric(float64(ty.Nanoseconds())/n, yName+"-ns")
	b.ReportMetric(float64(ty)/float64(tx), yName+"/"+xName)
}

// bareLoop is a bare fasthttp server answering every request with the
// body and type of an edge response, through a loopConn.
func bareLoop(tb testing.TB, edgeAnswer []byte) *loopConn {
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(bytes.NewReader(edgeAnswer))); err != nil {
		tb.Fatal(err)
	}
	body := append([]byte(nil), resp.Body()...)
	ce := append([]byte(nil), resp.Header.ContentEncoding()...)
	s := &fasthttp.Server{Name: "barefast", Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.SetContentType("text/html; charset=utf-8")
		ctx.Response.Header.Set("Cache-Control", "public, max-age=3600")
		ctx.Response.Header.Set("Vary", "Accept-Encoding")
		if len(ce) > 0 {
			ctx.Response.Header.SetContentEncodingBytes(ce)
		}
		ctx.SetBody(body)
	}}
	c := newLoopConn()
	go func() { _ = s.ServeConn(c) }()
	tb.Cleanup(c.close)
	return c
}
