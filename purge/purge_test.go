package purge

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestContractExample decodes the purge body that docs/CONTRACTS.md shows
// (strictly: an unknown field fails) and encodes it back: if the document
// and the type stop matching, this fails.
func TestContractExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/CONTRACTS.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)## Edge purge API.*?```json\n(.*?)```").FindSubmatch(doc)
	if blocks == nil {
		t.Fatal("docs/CONTRACTS.md has no JSON example under \"## Edge purge API\"")
	}
	example := strings.TrimSpace(string(blocks[1]))
	m, err := Decode(strings.NewReader(example))
	if err != nil {
		t.Fatalf("the documented example does not decode: %v", err)
	}
	want := Message{
		ID:       "origin-1/1234",
		Tags:     []string{"article:42", "front"},
		URLs:     []string{"http://www.example.com/news/42", "/front"},
		Soft:     true,
		IssuedAt: time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC),
		Issuer:   "origin-1",
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("decoded example (-want +got):\n%s", diff)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var got, wantJSON map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(example), &wantJSON); err != nil {
		t.Fatal(err)
	}
	delete(wantJSON, "all") // false: omitted when encoded
	if diff := cmp.Diff(wantJSON, got); diff != "" {
		t.Errorf("the message encodes differently from the document (-doc +encoded):\n%s", diff)
	}
}

func TestDecode(t *testing.T) {
	for _, c := range []struct {
		body string
		want string // error substring, "" for success
	}{
		{`{"tags":["a"]}`, ""},
		{`{"all":true,"soft":true}`, ""},
		{`{"urls":["/x"],"issuer":"lakka purge"}`, ""},
		{`{}`, "nothing to purge"},
		{`{"tags":[]}`, "nothing to purge"},
		{`{"tag":["a"]}`, `unknown field "tag"`},
		{`{"tags":"a"}`, "bad JSON body"},
		{`{"tags":[""]}`, "tags[0]: empty"},
		{`{"urls":["/a",""]}`, "urls[1]: empty"},
		{`{"tags":["a"]`, "bad JSON body"},
		{`{"tags":["` + strings.Repeat("a", MaxBodyBytes) + `"]}`, "bad JSON body"},
		{`{"tags":[` + strings.Repeat(`"a",`, MaxItems) + `"a"]}`, "too many"},
	} {
		_, err := Decode(strings.NewReader(c.body))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%.60s: %v", c.body, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%.60s: got %v, want an error containing %q", c.body, err, c.want)
		}
	}
}

// TestSend posts to a real HTTP server standing in for an edge: the body
// it receives decodes to the message sent, the token arrives, and refusals
// come back as *StatusError with the edge's message.
func TestSend(t *testing.T) {
	var got Message
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != APIPath || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer secret" {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "missing or wrong bearer token"})
			return
		}
		m, err := Decode(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		got = m
		_ = json.NewEncoder(w).Encode(Result{Purged: 3, Soft: m.Soft})
	}))
	defer srv.Close()
	ctx := context.Background()
	m := Message{ID: "o/1", Tags: []string{"front"}, Soft: true, Issuer: "o"}
	for _, admin := range []string{srv.URL, strings.TrimPrefix(srv.URL, "http://"), srv.URL + "/"} {
		r, err := Send(ctx, srv.Client(), admin, "secret", m)
		if err != nil {
			t.Fatalf("%s: %v", admin, err)
		}
		if r != (Result{Purged: 3, Soft: true}) {
			t.Errorf("%s: result %+v", admin, r)
		}
		if diff := cmp.Diff(m, got); diff != "" {
			t.Errorf("%s: the edge received (-sent +received):\n%s", admin, diff)
		}
	}
	_, err := Send(ctx, srv.Client(), srv.URL, "wrong", m)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || se.Message != "missing or wrong bearer token" {
		t.Errorf("wrong token: got %v", err)
	}
	_, err = Send(ctx, srv.Client(), srv.URL, "secret", Message{})
	if !errors.As(err, &se) || se.Status != http.StatusBadRequest || !strings.Contains(se.Message, "nothing to purge") {
		t.Errorf("empty message: got %v", err)
	}
	srv.Close()
	if _, err := Send(ctx, srv.Client(), srv.URL, "secret", m); err == nil || errors.As(err, &se) {
		t.Errorf("unreachable edge: got %v, want a transport error", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"tags":["a"],"soft":true}`, `{"all":true}`, `{"urls":["/x"],"id":"a/1","issued_at":"2026-12-07T09:30:00Z"}`, `{`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		if err := m.Check(); err != nil {
			t.Fatalf("Decode accepted a message Check refuses: %v", err)
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Decode(strings.NewReader(string(out)))
		if err != nil {
			t.Fatalf("a decoded message does not decode again: %v\n%s", err, out)
		}
		if diff := cmp.Diff(m, again, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
