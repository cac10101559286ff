package cachepolicy

import "testing"

func TestMatchRoute(t *testing.T) {
	routes := []RouteMatch{
		{Host: "static.example.com", PathPrefix: "/assets/"},
		{Host: "*.example.com"},
		{PathPrefix: "/api/"},
		{Host: "example.com", PathPrefix: "/"},
	}
	tests := []struct {
		host, target string
		want         int
	}{
		{"static.example.com", "/assets/app.3f2a.js", 0},
		{"static.example.com", "/assets/", 0},
		{"static.example.com", "/assets", 1},
		{"static.example.com", "/other", 1},
		{"a.example.com", "/x", 1},
		{"a.b.example.com", "/x", 1},
		{"example.com", "/api/v1", 2},
		{"example.com", "/x", 3},
		{"example.com", "/", 3},
		{"other.com", "/api/", 2},
		{"other.com", "/api", -1},
		{"other.com", "/x", -1},
		{"badexample.com", "/x", -1},
		{".example.com", "/x", -1}, // no label before the suffix
		{"a.example.com.evil", "/x", -1},
		{"EXAMPLE.com", "/x", -1}, // hosts are normalised before matching
		{"", "", -1},
	}
	for _, tt := range tests {
		if got := MatchRoute(routes, []byte(tt.host), []byte(tt.target)); got != tt.want {
			t.Errorf("MatchRoute(%q, %q): got %d, want %d", tt.host, tt.target, got, tt.want)
		}
	}
	f := func(routes []RouteMatch, host, target string, want int) {
		t.Helper()
		if got := MatchRoute(routes, []byte(host), []byte(target)); got != want {
			t.Errorf("MatchRoute(%+v, %q, %q): got %d, want %d", routes, host, target, got, want)
		}
	}
	f(nil, "example.com", "/", -1)
	f([]RouteMatch{{}}, "", "", 0)
	f([]RouteMatch{{}}, "example.com", "/x", 0)
	f([]RouteMatch{{Host: "*."}}, "a.", "/", -1)
	f([]RouteMatch{{Host: "*."}}, "*.", "/", 0)
	f([]RouteMatch{{Host: "*.com"}}, "a.com", "/", 0)
	f([]RouteMatch{{PathPrefix: "/a/b"}}, "h", "/a", -1)
	f([]RouteMatch{{PathPrefix: "/a"}, {PathPrefix: "/a/b"}}, "h", "/a/b", 0)
}
