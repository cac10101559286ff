package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPurgeRelay(t *testing.T) {
	type purge struct{ method, path, xkey, soft string }
	var mu sync.Mutex
	var got []purge
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, purge{r.Method, r.URL.RequestURI(), r.Header.Get("xkey"), r.Header.Get("xkey-soft")})
		mu.Unlock()
		if r.Header.Get("xkey") != "" {
			w.Header().Set("X-Purged", "3")
		}
	}))
	defer peer.Close()

	fo := newFakeOrigin(t, "otok")
	origin, err := NewOrigin(fo.srv.URL, "otok", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a, err := origin.Publish(context.Background(), ArticleInput{Section: 2, Title: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kind string
		want []purge
		body string
	}{
		{"varnish", []purge{{"PURGE", "/", "article:101 front section:2 section:99 other", "1"}, {"PURGE", "/news/42", "", ""}}, `{"purged":4,"soft":true}`},
		// The fake origin knows article 42 (its URL) and section 2.
		{"nginx", []purge{{"PURGE", "/news/42", "", ""}, {"PURGE", "/news/world/101-breaking", "", ""}, {"PURGE", "/", "", ""}, {"PURGE", "/news/world/", "", ""}}, `{"purged":4,"soft":true}`},
	} {
		got = nil
		r, err := NewPurgeRelay("127.0.0.1:0", c.kind, peer.URL, "tok", origin, nil)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- r.Serve() }()
		post := func(token, body string) (int, string) {
			req, _ := http.NewRequest(http.MethodPost, "http://"+r.Addr()+"/api/purge", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b strings.Builder
			buf := make([]byte, 512)
			n, _ := resp.Body.Read(buf)
			b.Write(buf[:n])
			return resp.StatusCode, strings.TrimSpace(b.String())
		}
		if code, _ := post("wrong", `{"tags":["x"]}`); code != http.StatusUnauthorized {
			t.Errorf("%s: wrong token: %d", c.kind, code)
		}
		if code, _ := post("tok", `{"tags":`); code != http.StatusBadRequest {
			t.Errorf("%s: bad body: %d", c.kind, code)
		}
		code, body := post("tok", `{"tags":["article:`+strconv.FormatInt(a.ID, 10)+`","front","section:2","section:99","other"],"urls":["http://www.example.com/news/42"],"soft":true}`)
		if code != 200 || body != c.body {
			t.Errorf("%s: answer %d %s, want %s", c.kind, code, body, c.body)
		}
		mu.Lock()
		if len(got) != len(c.want) {
			t.Errorf("%s: peer got %+v, want %+v", c.kind, got, c.want)
		} else {
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("%s: purge %d %+v, want %+v", c.kind, i, got[i], c.want[i])
				}
			}
		}
		mu.Unlock()
		if err := r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-served; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewPurgeRelay("127.0.0.1:0", "squid", peer.URL, "", nil, nil); err == nil {
		t.Error("unknown peer: no error")
	}
}
