package bench

import (
	"fmt"
	"net"

	"github.com/valyala/fasthttp"
)

// TrivialTarget is an HTTP server that answers every request with the same
// small body and "X-Cache: HIT", as fast as fasthttp can. It measures the
// bench's own ceiling: a run against it is limited by the bench, not by
// the target (give each its own core).
type TrivialTarget struct {
	srv *fasthttp.Server
	ln  net.Listener
}

// NewTrivialTarget listens on addr ("127.0.0.1:0" picks a port) and
// answers with a body of bodyBytes bytes.
func NewTrivialTarget(addr string, bodyBytes int) (*TrivialTarget, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: trivial target: %w", err)
	}
	body := make([]byte, max(bodyBytes, 0))
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	srv := &fasthttp.Server{
		Name: "lakka-bench-target",
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
			ctx.Response.Header.Set("X-Cache", "HIT")
			ctx.Response.SetBodyRaw(body)
		},
		NoDefaultDate: true,
	}
	return &TrivialTarget{srv: srv, ln: ln}, nil
}

// Addr is the address the target listens on.
func (t *TrivialTarget) Addr() string { return t.ln.Addr().String() }

// Serve serves until Close; it returns nil after Close.
func (t *TrivialTarget) Serve() error {
	if err := t.srv.Serve(t.ln); err != nil {
		return fmt.Errorf("bench: trivial target: %w", err)
	}
	return nil
}

// Close stops the target.
func (t *TrivialTarget) Close() error { return t.srv.Shutdown() }
