// Command barefast is the ceiling for "make bench-hit": a bare fasthttp
// server that answers every request with the same bytes from memory, gzip
// ones to clients that accept gzip. It also serves as the origin behind the
// edge in that benchmark, so both return identical pages.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to serve on")
	flag.Parse()
	pages := map[string][2][]byte{}
	for _, size := range []int{2 << 10, 40 << 10} {
		body := page(size)
		var gz bytes.Buffer
		w, _ := gzip.NewWriterLevel(&gz, 6)
		_, _ = w.Write(body)
		_ = w.Close()
		pages[fmt.Sprintf("/%dk", size>>10)] = [2][]byte{body, gz.Bytes()}
	}
	h := func(ctx *fasthttp.RequestCtx) {
		p, ok := pages[string(ctx.Path())]
		if !ok {
			ctx.Error("not found", fasthttp.StatusNotFound)
			return
		}
		ctx.Response.Header.SetContentType("text/html; charset=utf-8")
		ctx.Response.Header.Set("Cache-Control", "public, max-age=3600")
		ctx.Response.Header.Set("Vary", "Accept-Encoding")
		if bytes.Contains(ctx.Request.Header.Peek("Accept-Encoding"), []byte("gzip")) {
			ctx.Response.Header.Set("Content-Encoding", "gzip")
			ctx.SetBody(p[1])
			return
		}
		ctx.SetBody(p[0])
	}
	s := &fasthttp.Server{Handler: h, Name: "barefast"}
	fmt.Fprintln(os.Stderr, "barefast listening on", *listen)
	log.Fatal(s.ListenAndServe(*listen))
}

// page returns size bytes of news-like HTML.
func page(size int) []byte {
	var b strings.Builder
	b.WriteString("<!doctype html><html><head><title>Breaking news</title></head><body>\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "<p>Paragraph %d of the story: the council met on Tuesday and agreed on item %d.</p>\n", i, i*7%13)
	}
	return []byte(b.String()[:size])
}
