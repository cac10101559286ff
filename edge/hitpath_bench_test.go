package edge

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/lakka-cache/lakka/config"
)

// hitCtx returns a request context for GET path, with the given request
// headers, ready to be handled again and again.
func hitCtx(path string, headers ...string) *fasthttp.RequestCtx {
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
	ctx := hitCtx("/page")
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

func BenchmarkHit(b *testing.B) {
	for _, size := range []int{2 << 10, 40 << 10} {
		for _, enc := range []string{"gzip", "identity"} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, enc), func(b *testing.B) {
				e, _ := primedEdge(b, size, "off")
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					ctx := hitCtx("/page", "Accept-Encoding", enc)
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
