package origin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lakka-cache/lakka/config"
)

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func TestAdminAuth(t *testing.T) {
	st := NewMemoryStore()
	mustSeed(t, st, 5)
	o := newTestOrigin(t, st, nil)
	disabled := newTestOrigin(t, st, func(c *config.Origin) { c.Token = "" })
	f := func(o *testOrigin, method, path string, headers ...string) {
		t.Helper()
		r := o.do(t, method, path, `{"title":"x"}`, headers...)
		if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" || r.header.Get("Cache-Control") != "private, no-store" {
			t.Errorf("%s %s %q: %d %v, want 401", method, path, headers, r.status, r.header)
		}
		if a, err := st.Article(t.Context(), 1); err != nil || a.Version != 1 {
			t.Errorf("unauthorized %s changed article 1: %+v, %v", method, a, err)
		}
	}
	for _, m := range []struct{ method, path string }{
		{"GET", "/api/sections"}, {"GET", "/api/articles/1"}, {"POST", "/api/articles"},
		{"PUT", "/api/articles/1"}, {"DELETE", "/api/articles/1"}, {"GET", "/api/nothing"},
	} {
		f(o, m.method, m.path)
		f(o, m.method, m.path, bearer("wrong")...)
		f(o, m.method, m.path, "Authorization", testToken) // no scheme
		f(o, m.method, m.path, "Authorization", "Basic "+testToken)
		f(disabled, m.method, m.path, bearer("")...)
	}
	if r := o.get(t, "/api/sections", bearer(testToken)...); r.status != 200 {
		t.Errorf("with the token: %d", r.status)
	}
}

func TestAdminAPI(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Store) {
		st := open(t)
		mustSeed(t, st, 30)
		o := newTestOrigin(t, st, nil)
		auth := bearer(testToken)
		call := func(method, path, body string) response {
			t.Helper()
			r := o.do(t, method, path, body, append(auth, "Content-Type", "application/json")...)
			if r.header.Get("Cache-Control") != "private, no-store" {
				t.Errorf("%s %s: Cache-Control %q", method, path, r.header.Get("Cache-Control"))
			}
			return r
		}

		r := call("GET", "/api/sections", "")
		var sections []map[string]any
		if err := json.Unmarshal([]byte(r.body), &sections); err != nil || r.status != 200 || len(sections) != 500 {
			t.Fatalf("GET /api/sections: %d, %d sections, %v", r.status, len(sections), err)
		}
		if !strings.HasPrefix(r.body, `[{"id":1,"parent":null,"slug":"news","path":"/news/","name":"News"},{"id":2,`) ||
			sections[10]["parent"] != float64(1) {
			t.Errorf("sections JSON: %.120s ... %v", r.body, sections[10])
		}

		r = call("POST", "/api/articles", `{"section":81,"title":"Storm closes the coast road","lead":"Gales up to 30 m/s.","body":"First.\n\nSecond."}`)
		var a articleJSON
		if err := json.Unmarshal([]byte(r.body), &a); err != nil || r.status != http.StatusCreated {
			t.Fatalf("POST: %d %s %v", r.status, r.body, err)
		}
		if a.ID != 31 || a.Version != 1 || a.Section != 81 || a.URL != "/news/world/analysis/31-storm-closes-the-coast-road" ||
			a.Slug != "storm-closes-the-coast-road" || a.PublishedAt == "" || r.header.Get("Location") != "/api/articles/31" {
			t.Errorf("created %+v, Location %q", a, r.header.Get("Location"))
		}
		for _, k := range []string{`"id":`, `"section":`, `"slug":`, `"title":`, `"lead":`, `"body":`, `"url":`, `"version":`, `"published_at":`, `"updated_at":`} {
			if !strings.Contains(r.body, k) {
				t.Errorf("article JSON lacks %s: %s", k, r.body)
			}
		}
		page := o.get(t, a.URL)
		if page.status != 200 || page.header.Get("X-Content-Version") != "1" {
			t.Errorf("new article page: %d, version %q", page.status, page.header.Get("X-Content-Version"))
		}

		r = call("PUT", "/api/articles/31", `{"lead":"Gales up to 35 m/s."}`)
		var u articleJSON
		if err := json.Unmarshal([]byte(r.body), &u); err != nil || r.status != 200 || u.Version != 2 || u.Lead != "Gales up to 35 m/s." || u.Title != a.Title {
			t.Fatalf("PUT: %d %s", r.status, r.body)
		}
		page = o.get(t, a.URL)
		if page.header.Get("X-Content-Version") != "2" || !strings.Contains(page.body, "35 m/s") {
			t.Errorf("article page after PUT: version %q", page.header.Get("X-Content-Version"))
		}
		r = call("GET", "/api/articles/31", "")
		var g articleJSON
		if err := json.Unmarshal([]byte(r.body), &g); err != nil || g != u {
			t.Errorf("GET after PUT = %+v, want %+v (%v)", g, u, err)
		}

		// Invalid input: 400 naming the field, nothing written.
		before := len(purgesAfter(t, st, 0))
		bad := func(method, path, body string, status int, field string) {
			t.Helper()
			r := call(method, path, body)
			var e errorBody
			if err := json.Unmarshal([]byte(r.body), &e); err != nil || r.status != status || e.Field != field || e.Error == "" {
				t.Errorf("%s %s %.60q: %d %s; want %d naming field %q", method, path, body, r.status, r.body, status, field)
			}
		}
		bad("POST", "/api/articles", `{"title":"No section","body":"b"}`, 400, "section")
		bad("POST", "/api/articles", `{"section":1,"body":"b"}`, 400, "title")
		bad("POST", "/api/articles", `{"section":1,"title":"t"}`, 400, "body")
		bad("POST", "/api/articles", `{"section":1,"title":"  ","body":"b"}`, 400, "title")
		bad("POST", "/api/articles", `{"section":9999,"title":"t","body":"b"}`, 400, "section")
		bad("POST", "/api/articles", `{"section":-3,"title":"t","body":"b"}`, 400, "section")
		bad("POST", "/api/articles", `{"section":"1","title":"t","body":"b"}`, 400, "section")
		bad("POST", "/api/articles", `{"section":1.5,"title":"t","body":"b"}`, 400, "section")
		bad("POST", "/api/articles", `{"section":1,"title":7,"body":"b"}`, 400, "title")
		bad("POST", "/api/articles", `{"section":1,"title":"t","body":"b","author":"x"}`, 400, "author")
		bad("POST", "/api/articles", `{"section":1,"title":"`+strings.Repeat("x", 201)+`","body":"b"}`, 400, "title")
		bad("POST", "/api/articles", `{"section":1,"title":"t","lead":"a\u0000b","body":"b"}`, 400, "lead")
		bad("POST", "/api/articles", `{"section":1,"title":"t","body":"b"`, 400, "")
		bad("POST", "/api/articles", `{"section":1,"title":"t","body":"b"} {}`, 400, "")
		bad("POST", "/api/articles", `[]`, 400, "")
		bad("POST", "/api/articles", ``, 400, "")
		bad("POST", "/api/articles", `{"section":1,"title":"t","body":"`+strings.Repeat("x", maxAPIBodyBytes)+`"}`, 413, "")
		bad("PUT", "/api/articles/31", `{}`, 400, "")
		bad("PUT", "/api/articles/31", `{"title":""}`, 400, "title")
		bad("PUT", "/api/articles/31", `{"section":424242}`, 400, "section")
		bad("PUT", "/api/articles/31", `{"body":"`+strings.Repeat("x", maxBodyBytes+1)+`"}`, 400, "body")
		if n := len(purgesAfter(t, st, 0)); n != before {
			t.Errorf("invalid requests wrote %d purges", n-before)
		}
		if g, err := st.Article(t.Context(), 31); err != nil || g.Version != 2 {
			t.Errorf("invalid requests changed the article: %+v, %v", g, err)
		}

		// Unknown IDs.
		bad("GET", "/api/articles/9999", "", 404, "")
		bad("GET", "/api/articles/abc", "", 404, "")
		bad("PUT", "/api/articles/9999", `{"title":"t"}`, 404, "")
		bad("DELETE", "/api/articles/9999", "", 404, "")
		bad("GET", "/api/nothing", "", 404, "")

		if r := call("DELETE", "/api/articles/31", ""); r.status != http.StatusNoContent || r.body != "" {
			t.Errorf("DELETE: %d %q", r.status, r.body)
		}
		bad("GET", "/api/articles/31", "", 404, "")
		if p := o.get(t, a.URL); p.status != 404 {
			t.Errorf("article page after DELETE: %d", p.status)
		}
		tags := purgeTags(purgesAfter(t, st, 0))
		if len(tags) != 3 || tags[0][0] != "article:31" || tags[2][len(tags[2])-1] != "sitemap" {
			t.Errorf("purges of create, update, delete: %q", tags)
		}
	})
}

// FuzzDecodeArticleRequest checks the admin API's JSON parser: any input
// either decodes or fails with an *InvalidError whose field is a known
// field, empty, or an unknown field the input named; and what decodes
// re-encodes to an equivalent request.
func FuzzDecodeArticleRequest(f *testing.F) {
	for _, s := range []string{
		`{"section":7,"title":"t","lead":"l","body":"b"}`, `{"title":null}`, `{"section":"7"}`, `{"x":1}`,
		`[]`, `{`, ``, `{} {}`, `{"title":"\u00e4\ud800"}`, `{"section":1e3}`, `{"Title":"case"}`, `  {"body":""}  `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeArticleRequest(bytes.NewReader(b))
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v (%T) is not an *InvalidError", err, err)
			}
			switch ie.Field {
			case "", "section", "title", "lead", "body":
			default:
				if !strings.HasPrefix(ie.Msg, "unknown field") {
					t.Fatalf("error names field %q: %v", ie.Field, ie)
				}
			}
			if ie.Msg == "" {
				t.Fatal("empty message")
			}
			return
		}
		out, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeArticleRequest(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
		if fmt.Sprint(deref(back)) != fmt.Sprint(deref(req)) {
			t.Fatalf("round trip: %v then %v", deref(req), deref(back))
		}
	})
}

func deref(r articleRequest) []any {
	var out []any
	if r.Section != nil {
		out = append(out, *r.Section)
	}
	for _, s := range []*string{r.Title, r.Lead, r.Body} {
		if s != nil {
			out = append(out, *s)
		} else {
			out = append(out, nil)
		}
	}
	return out
}
