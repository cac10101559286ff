package surrogate_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lakka-cache/lakka/origin/surrogate"
)

func TestCacheControl(t *testing.T) {
	f := func(in surrogate.Freshness, want string) {
		t.Helper()
		if got := in.CacheControl(); got != want {
			t.Errorf("%+v.CacheControl() = %q, want %q", in, got, want)
		}
	}
	f(surrogate.Freshness{}, "public, max-age=0")
	f(surrogate.Freshness{MaxAge: 5 * time.Minute, StaleWhileRevalidate: time.Minute, StaleIfError: 24 * time.Hour},
		"public, max-age=300, stale-while-revalidate=60, stale-if-error=86400")
	f(surrogate.Freshness{MaxAge: 1500 * time.Millisecond, StaleIfError: time.Second}, "public, max-age=1, stale-if-error=1")
	f(surrogate.Freshness{MaxAge: -time.Second, StaleWhileRevalidate: -1}, "public, max-age=0")
}

func TestSetEdgeMaxAgeAndPrivate(t *testing.T) {
	h := http.Header{}
	surrogate.SetEdgeMaxAge(h, time.Hour)
	if got, want := h.Get(surrogate.ControlHeader), "max-age=3600"; got != want {
		t.Errorf("Surrogate-Control = %q, want %q", got, want)
	}
	if err := surrogate.AddKeys(h, "a"); err != nil {
		t.Fatal(err)
	}
	surrogate.SetPrivate(h)
	if got, want := h.Get("Cache-Control"), "private, no-store"; got != want {
		t.Errorf("Cache-Control = %q, want %q", got, want)
	}
	if h.Get(surrogate.KeyHeader) != "" || h.Get(surrogate.ControlHeader) != "" {
		t.Errorf("SetPrivate kept edge headers: %v", h)
	}
}

func TestKey(t *testing.T) {
	if got, want := surrogate.Key("article", 42), "article:42"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
}

func TestValidKey(t *testing.T) {
	f := func(k string, want bool) {
		t.Helper()
		if got := surrogate.ValidKey(k); got != want {
			t.Errorf("ValidKey(%q) = %v, want %v", k, got, want)
		}
	}
	f("article:42", true)
	f("most-read", true)
	f("a/b?c=d", true)
	f(strings.Repeat("x", surrogate.MaxKeyBytes), true)
	f(strings.Repeat("x", surrogate.MaxKeyBytes+1), false)
	f("", false)
	f("a b", false)
	f("a,b", false)
	f(`"a"`, false)
	f("a\tb", false)
	f("a\r\nSet-Cookie: x", false)
	f("ä", false)
	f("a\x7f", false)
}

func TestKeysAndAddKeys(t *testing.T) {
	f := func(lines []string, add []string, want string) {
		t.Helper()
		h := http.Header{}
		for _, l := range lines {
			h.Add(surrogate.KeyHeader, l)
		}
		if err := surrogate.AddKeys(h, add...); err != nil {
			t.Errorf("AddKeys(%q, %q) = %v", lines, add, err)
			return
		}
		if got := h.Values(surrogate.KeyHeader); len(got) > 1 {
			t.Errorf("AddKeys(%q, %q) left %d header lines", lines, add, len(got))
		}
		if got := h.Get(surrogate.KeyHeader); got != want {
			t.Errorf("AddKeys(%q, %q): header %q, want %q", lines, add, got, want)
		}
	}
	f(nil, nil, "")
	f(nil, []string{"a"}, "a")
	f(nil, []string{"a", "b", "a"}, "a b")
	f([]string{"x y"}, []string{"y", "z"}, "x y z")
	f([]string{"x,  y", "\tz"}, []string{"w"}, "x y z w")
	f([]string{"  "}, nil, "")

	h := http.Header{surrogate.KeyHeader: {"keep"}}
	if err := surrogate.AddKeys(h, "ok", "not ok"); err == nil || !strings.Contains(err.Error(), `"not ok"`) {
		t.Errorf("AddKeys(invalid) = %v, want an error naming the key", err)
	}
	if got := h.Get(surrogate.KeyHeader); got != "keep" {
		t.Errorf("AddKeys(invalid) changed the header to %q", got)
	}
}

func TestShareable(t *testing.T) {
	f := func(cc string, want bool) {
		t.Helper()
		h := http.Header{}
		if cc != "" {
			h.Set("Cache-Control", cc)
		}
		if got := surrogate.Shareable(h); got != want {
			t.Errorf("Shareable(%q) = %v, want %v", cc, got, want)
		}
	}
	f("", true)
	f("public, max-age=60", true)
	f("max-age=60, Private", false)
	f("no-store", false)
	f(`no-cache="Set-Cookie"`, false)
	f("s-maxage=10", true)
}

func TestMiddleware(t *testing.T) {
	def := &surrogate.Freshness{MaxAge: time.Minute}
	type result struct {
		status int
		cc     string
		keys   string
	}
	f := func(name, method string, o surrogate.Options, handler http.HandlerFunc, want result) {
		t.Helper()
		h, err := surrogate.Middleware(handler, o)
		if err != nil {
			t.Fatalf("%s: Middleware: %v", name, err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/x", nil))
		got := result{rec.Code, rec.Header().Get("Cache-Control"), rec.Header().Get(surrogate.KeyHeader)}
		if got != want {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	tagged := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			surrogate.SetFreshness(w.Header(), surrogate.Freshness{MaxAge: time.Hour})
			if err := surrogate.AddKeys(w.Header(), "article:1"); err != nil {
				t.Error(err)
			}
			w.WriteHeader(status)
		}
	}
	site := surrogate.Options{Keys: []string{"site"}}
	f("tagged page keeps its headers", "GET", site, tagged(200), result{200, "public, max-age=3600", "article:1 site"})
	f("error is not content", "GET", site, tagged(503), result{503, "no-store", ""})
	f("404 stays shareable", "GET", site, tagged(404), result{404, "public, max-age=3600", "article:1 site"})
	f("cookie makes it private", "GET", site, func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "x"})
		tagged(200)(w, r)
	}, result{200, "private, no-store", ""})
	f("cookie on a private response stays", "GET", site, func(w http.ResponseWriter, _ *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "x"})
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(200)
	}, result{200, "no-store", ""})
	f("default freshness on implicit 200", "GET", surrogate.Options{Default: def, Keys: []string{"site"}}, func(w http.ResponseWriter, _ *http.Request) {
		if _, err := io.WriteString(w, "hi"); err != nil {
			t.Error(err)
		}
	}, result{200, "public, max-age=60", "site"})
	f("no default for POST", "POST", surrogate.Options{Default: def}, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(303)
	}, result{303, "", ""})
	f("no default without Default", "GET", surrogate.Options{}, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(200)
	}, result{200, "", ""})

	if _, err := surrogate.Middleware(http.NotFoundHandler(), surrogate.Options{Keys: []string{"two words"}}); err == nil {
		t.Error("Middleware accepted an invalid key")
	}
}

func TestMiddlewareFlushAndController(t *testing.T) {
	h, err := surrogate.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush through the middleware: %v", err)
		}
	}), surrogate.Options{Keys: []string{"site"}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !rec.Flushed || rec.Header().Get(surrogate.KeyHeader) != "" {
		t.Errorf("flushed=%v keys=%q, want flushed and no keys on a no-store response", rec.Flushed, rec.Header().Get(surrogate.KeyHeader))
	}
}

// Example shows a handler of a Go origin tagging an article page and
// announcing its freshness, behind the middleware that keeps errors and
// cookies out of the shared cache.
func Example() {
	article := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Everything the page shows: the article and its section.
		if err := surrogate.AddKeys(w.Header(), surrogate.Key("article", 42), surrogate.Key("section", 7)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		surrogate.SetFreshness(w.Header(), surrogate.Freshness{
			MaxAge:               5 * time.Minute,
			StaleWhileRevalidate: time.Minute,
			StaleIfError:         24 * time.Hour,
		})
		fmt.Fprintln(w, "<h1>Storm closes the coast road</h1>")
	})
	h, err := surrogate.Middleware(article, surrogate.Options{Keys: []string{"site"}})
	if err != nil {
		panic(err)
	}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/news/42-storm", nil))
	fmt.Println("Surrogate-Key:", rec.Header().Get("Surrogate-Key"))
	fmt.Println("Cache-Control:", rec.Header().Get("Cache-Control"))
	// Output:
	// Surrogate-Key: article:42 section:7 site
	// Cache-Control: public, max-age=300, stale-while-revalidate=60, stale-if-error=86400
}

// FuzzAddKeys checks that assembling Surrogate-Key from any existing header
// and any keys either fails without touching the header or yields one line
// of valid, distinct tags that contains every added key.
func FuzzAddKeys(f *testing.F) {
	f.Add("article:1 section:2", "front\nmost-read")
	f.Add("a,b,,c\t", "a\nb")
	f.Add("", "x y")
	f.Add("\x00", "")
	f.Fuzz(func(t *testing.T, existing, add string) {
		h := http.Header{}
		h.Set(surrogate.KeyHeader, existing)
		before := h.Get(surrogate.KeyHeader)
		var keys []string
		if add != "" {
			keys = strings.Split(add, "\n")
		}
		err := surrogate.AddKeys(h, keys...)
		if err != nil {
			if got := h.Get(surrogate.KeyHeader); got != before {
				t.Fatalf("failed AddKeys changed the header from %q to %q", before, got)
			}
			return
		}
		got := surrogate.Keys(h)
		for _, k := range keys {
			if !slices.Contains(got, k) {
				t.Fatalf("key %q missing from %q", k, got)
			}
		}
		seen := map[string]bool{}
		for _, k := range got {
			if seen[k] {
				t.Fatalf("duplicate key %q in %q", k, got)
			}
			seen[k] = true
			if strings.ContainsAny(k, " \t,") {
				t.Fatalf("key %q contains a separator", k)
			}
		}
		if len(got) > 0 && h.Get(surrogate.KeyHeader) != strings.Join(got, " ") {
			t.Fatalf("header %q is not the keys %q joined", h.Get(surrogate.KeyHeader), got)
		}
	})
}
