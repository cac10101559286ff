package edge

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTooLargeBodyIsStreamed checks that a body over cache.max_object_bytes
// reaches the client while the origin is still sending it: the edge relays
// it with bounded memory instead of buffering it whole.
func TestTooLargeBodyIsStreamed(t *testing.T) {
	release := make(chan struct{})
	chunk := strings.Repeat("x", 64<<10)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "max-age=60")
		for range 32 { // 2 MiB: over the 1 MiB object limit of testConfig
			io.WriteString(w, chunk)
		}
		w.(http.Flusher).Flush()
		<-release
		for range 16 {
			io.WriteString(w, chunk)
		}
	})
	e := startEdge(t, testConfig(o.addr()))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/big", nil)
	resp, err := client.Do(req)
	if err != nil {
		close(release)
		t.Fatalf("GET: %v (the edge buffered the body?)", err)
	}
	defer resp.Body.Close()
	n, err := io.CopyN(io.Discard, resp.Body, 3<<19) // 1.5 MiB
	close(release)
	if err != nil {
		t.Fatalf("read the first %d bytes while the origin waits: %v", n, err)
	}
	rest, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n+rest != 3<<20 {
		t.Errorf("body: %d bytes, err %v; want %d", n+rest, err, 3<<20)
	}
}
