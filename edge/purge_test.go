package edge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lakka-cache/lakka/config"
)

const (
	testToken      = "s3cret-token"
	testAdminToken = "adm1n-token"
)

// taggedOrigin serves /page/N with Surrogate-Key "page:N section:(N%2) front"
// and a version that changes when bump is called.
func taggedOrigin(t *testing.T, cacheControl string) (*origin, *atomic.Int64) {
	var version atomic.Int64
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.URL.Path, "/page/%d", &n)
		w.Header().Set("Cache-Control", cacheControl)
		w.Header().Set("Surrogate-Key", fmt.Sprintf("page:%d section:%d front", n, n%2))
		w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, version.Load()))
		fmt.Fprintf(w, "page %d v%d", n, version.Load())
	})
	return o, &version
}

func purgeConfig(o *origin) config.Config {
	c := testConfig(o.addr())
	c.Purge.Token = testToken
	return c
}

// purgeAPI posts a purge and returns the status and decoded answer.
func (te *testEdge) purgeAPI(token, body string) (int, map[string]any) {
	te.t.Helper()
	headers := []string{"Content-Type", "application/json"}
	if token != "" {
		headers = append(headers, "Authorization", "Bearer "+token)
	}
	r := doURL(te.t, http.MethodPost, "http://"+te.AdminAddr()+"/api/purge", body, headers...)
	var out map[string]any
	_ = json.Unmarshal([]byte(r.body), &out)
	return r.status, out
}

func TestPurgeByTagURLAndAll(t *testing.T) {
	o, _ := taggedOrigin(t, "max-age=600")
	e := startEdge(t, purgeConfig(o))
	warm := func() {
		for i := range 4 {
			e.get(fmt.Sprintf("/page/%d", i))
		}
		e.settle()
	}
	cached := func() (n int) {
		for i := range 4 {
			if e.get(fmt.Sprintf("/page/%d", i)).get("X-Cache") == "HIT" {
				n++
			}
		}
		return n
	}
	f := func(body string, wantPurged float64, wantCachedAfter int) {
		t.Helper()
		warm()
		status, out := e.purgeAPI(testToken, body)
		if status != 200 || out["purged"] != wantPurged {
			t.Errorf("purge %s: %d %v, want 200 purged=%v", body, status, out, wantPurged)
		}
		if n := cached(); n != wantCachedAfter {
			t.Errorf("purge %s: %d pages still cached, want %d", body, n, wantCachedAfter)
		}
	}
	f(`{"tags":["page:1"]}`, 1, 3)
	f(`{"tags":["section:0"]}`, 2, 2)
	f(`{"tags":["section:0","page:0"]}`, 2, 2) // counted once each
	f(`{"tags":["front"]}`, 4, 0)
	f(`{"tags":["nothing"]}`, 0, 4)
	f(`{"urls":["/page/2"]}`, 1, 3)
	f(`{"urls":["http://`+e.Addr()+`/page/3"]}`, 1, 3)
	f(`{"urls":["http://elsewhere.example/page/3"]}`, 0, 4)
	f(`{"all":true}`, 4, 0)
	// Idempotent: the same purge again affects what was fetched since.
	warm()
	e.purgeAPI(testToken, `{"tags":["page:1"]}`)
	if status, out := e.purgeAPI(testToken, `{"tags":["page:1"]}`); status != 200 || out["purged"] != 0.0 {
		t.Errorf("repeated purge: %d %v", status, out)
	}
}

func TestPurgeURLAllVariants(t *testing.T) {
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprint(w, r.Header.Get("Accept-Language"))
	})
	e := startEdge(t, purgeConfig(o))
	for _, l := range []string{"fi", "sv", "en"} {
		e.get("/v", "Accept-Language", l)
	}
	e.settle()
	if status, out := e.purgeAPI(testToken, `{"urls":["/v"]}`); status != 200 || out["purged"] != 3.0 {
		t.Errorf("purge: %d %v, want 3 variants", status, out)
	}
	for _, l := range []string{"fi", "sv", "en"} {
		if r := e.get("/v", "Accept-Language", l); r.get("X-Cache") == "HIT" {
			t.Errorf("variant %s survived the purge", l)
		}
	}
}

func TestPurgeAuth(t *testing.T) {
	o, _ := taggedOrigin(t, "max-age=600")
	e := startEdge(t, purgeConfig(o))
	e.get("/page/1")
	e.settle()
	f := func(token, body string, want int) {
		t.Helper()
		if status, out := e.purgeAPI(token, body); status != want {
			t.Errorf("token %q body %s: %d %v, want %d", token, body, status, out, want)
		}
	}
	f("", `{"all":true}`, 401)
	f("wrong", `{"all":true}`, 401)
	f(testToken+"x", `{"all":true}`, 401)
	if r := e.get("/page/1"); r.get("X-Cache") != "HIT" {
		t.Errorf("refused purges purged: %q", r.get("X-Cache"))
	}
	f(testToken, `not json`, 400)
	f(testToken, `{"tags":["a b"]}`, 400)
	f(testToken, `{"bogus":1}`, 400)
	f(testToken, `{}`, 400)
	f(testToken, `{"urls":["ftp://x/y"]}`, 400)
	// Without a token configured, the API is off.
	c := testConfig(o.addr())
	e2 := startEdge(t, c)
	if status, _ := e2.purgeAPI("anything", `{"all":true}`); status != http.StatusForbidden {
		t.Errorf("no token configured: %d, want 403", status)
	}
	// The admin token opens the purge API too.
	c.Admin.Token = testAdminToken
	e3 := startEdge(t, c)
	if status, out := e3.purgeAPI(testAdminToken, `{"all":true}`); status != 200 {
		t.Errorf("admin token: %d %v, want 200", status, out)
	}
	if status, _ := e3.purgeAPI(testToken, `{"all":true}`); status != http.StatusUnauthorized {
		t.Errorf("a purge token the edge does not have: %d, want 401", status)
	}
}

func TestPurgeMethod(t *testing.T) {
	o, _ := taggedOrigin(t, "max-age=600")
	e := startEdge(t, purgeConfig(o))
	e.get("/page/1")
	e.settle()
	r := e.do("PURGE", "/page/1")
	if r.status != 200 || !strings.Contains(r.body, `"purged":1`) {
		t.Errorf("PURGE from loopback: %d %q", r.status, r.body)
	}
	// Answered by the edge itself: nothing forwarded (RFC 9211).
	if got := r.get("Cache-Status"); got != "lakka; detail=purge" || r.get("X-Cache") != "PURGE" {
		t.Errorf("PURGE: Cache-Status %q, X-Cache %q", got, r.get("X-Cache"))
	}
	if r := e.get("/page/1"); r.get("X-Cache") == "HIT" {
		t.Errorf("PURGE did not purge")
	}
	c := purgeConfig(o)
	c.Purge.AllowNetworks = []string{"10.0.0.0/8"}
	e2 := startEdge(t, c)
	e2.get("/page/1")
	e2.settle()
	if r := e2.do("PURGE", "/page/1"); r.status != http.StatusForbidden {
		t.Errorf("PURGE from a network not allowed: %d, want 403", r.status)
	}
	if r := e2.get("/page/1"); r.get("X-Cache") != "HIT" {
		t.Errorf("refused PURGE purged")
	}
}

// TestSoftPurgeServesStaleWithOneRefresh: after a soft purge, readers get
// the stale page at once while exactly one refresh fetches the new one.
func TestSoftPurgeServesStaleWithOneRefresh(t *testing.T) {
	release := make(chan struct{})
	var version atomic.Int64
	var hits atomic.Int64
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) > 1 {
			<-release // the refresh waits until the readers are done
		}
		w.Header().Set("Cache-Control", "max-age=600, stale-while-revalidate=60")
		w.Header().Set("Surrogate-Key", "front")
		fmt.Fprintf(w, "v%d", version.Load())
	})
	e := startEdge(t, purgeConfig(o))
	e.get("/")
	e.settle()
	version.Store(1)
	if status, out := e.purgeAPI(testToken, `{"tags":["front"],"soft":true}`); status != 200 || out["purged"] != 1.0 {
		t.Fatalf("soft purge: %d %v", status, out)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.get("/")
			if r.body != "v0" || r.get("X-Cache") != "STALE" {
				t.Errorf("during refresh: %q %q, want v0 STALE", r.body, r.get("X-Cache"))
			}
		}()
	}
	wg.Wait()
	close(release)
	eventually(t, "the refresh", func() bool { return e.get("/").body == "v1" })
	if n := hits.Load(); n != 2 {
		t.Errorf("origin fetches = %d, want 2 (the first and one refresh)", n)
	}
}

// TestPurgeDuringFetchWins: a purge that lands while a fetch is in flight
// wins: the fetched (older) object reaches the waiting client but is not
// stored as fresh (docs/RELIABILITY.md, promise 7).
func TestPurgeDuringFetchWins(t *testing.T) {
	for _, soft := range []bool{false, true} {
		t.Run(fmt.Sprintf("soft=%t", soft), func(t *testing.T) {
			entered := make(chan struct{}, 1)
			release := make(chan struct{})
			var n atomic.Int64
			o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				v := n.Add(1)
				if v == 1 {
					entered <- struct{}{}
					<-release
				}
				w.Header().Set("Cache-Control", "max-age=600")
				w.Header().Set("Surrogate-Key", "story")
				fmt.Fprintf(w, "v%d", v)
			})
			e := startEdge(t, purgeConfig(o))
			got := make(chan response, 1)
			go func() { got <- e.get("/story") }()
			<-entered
			body := `{"tags":["story"],"soft":` + fmt.Sprint(soft) + `}`
			if status, _ := e.purgeAPI(testToken, body); status != 200 {
				t.Fatalf("purge: %d", status)
			}
			close(release)
			if r := <-got; r.body != "v1" {
				t.Errorf("waiting client got %q, want the fetched v1", r.body)
			}
			e.settle()
			r := e.get("/story")
			if r.get("X-Cache") == "HIT" || r.body == "v1" && r.get("X-Cache") != "STALE" {
				t.Errorf("after the purge: %q %q; the pre-purge fetch came back as fresh", r.body, r.get("X-Cache"))
			}
		})
	}
}

// TestTagIndexConsistentUnderPressure fills the cache far past its size
// with tagged objects: evictions and rejections must leave no dangling
// entries in the tag index.
func TestTagIndexConsistentUnderPressure(t *testing.T) {
	body := strings.Repeat("x", 20<<10)
	o := startOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Surrogate-Key", "all "+r.URL.Path[1:])
		fmt.Fprint(w, body)
	})
	c := purgeConfig(o)
	c.Cache.SizeBytes = 2 << 20
	c.Cache.MaxObjectBytes = 256 << 10
	e := startEdge(t, c)
	for i := range 600 {
		e.get(fmt.Sprintf("/obj%d", i))
	}
	e.settle()
	if b := e.store.Stats().Bytes; b > int64(c.Cache.SizeBytes) {
		t.Errorf("store holds %d bytes, budget %d", b, c.Cache.SizeBytes)
	}
	// Every object the store still holds is indexed under its own tag and
	// "all", and nothing else is: the purge of "all" then counts exactly
	// them (an entry left in the index after eviction would be counted
	// too).
	live := 0
	for i := range 600 {
		if e.stored(appendTestKey(e, fmt.Sprintf("/obj%d", i))) != nil {
			live++
		}
	}
	tags := e.store.Stats().Tags
	if live == 0 || tags != live+1 {
		t.Errorf("index: %d live objects, %d tags; want tags = objects + 1 (\"all\")", live, tags)
	}
	if status, out := e.purgeAPI(testToken, `{"tags":["all"]}`); status != 200 || out["purged"] != float64(live) {
		t.Errorf("purge all tagged: %d %v, want %d", status, out, live)
	}
}

func TestPurgeAnswersCarryCacheHeaders(t *testing.T) {
	o, _ := taggedOrigin(t, "max-age=600")
	e := startEdge(t, purgeConfig(o))
	e.get("/page/1")
	r := e.do("PURGE", "/page/1")
	if r.get("X-Cache") != "PURGE" || r.get("Cache-Status") == "" || r.get("Date") == "" {
		t.Errorf("PURGE answer: X-Cache %q Cache-Status %q Date %q", r.get("X-Cache"), r.get("Cache-Status"), r.get("Date"))
	}
	// A hard purge does not count objects an earlier hard purge removed.
	e.get("/page/2")
	e.settle()
	e.purgeAPI(testToken, `{"tags":["front"]}`)
	e.get("/page/2")
	e.settle()
	if status, out := e.purgeAPI(testToken, `{"tags":["front"]}`); status != 200 || out["purged"] != 1.0 {
		t.Errorf("second purge: %d %v, want 1 (only the object fetched since)", status, out)
	}
}
