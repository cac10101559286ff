package rules

import (
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/lakka-cache/lakka/config"
)

// FuzzCompile: no rule list, regular expressions and templates included,
// makes Compile or an evaluation panic.
func FuzzCompile(f *testing.F) {
	f.Add(`[{name: a, when: {path_regex: '^/uutiset/([0-9]+)\.cfm'}, do: {redirect: {status: 301, location: "/a/${1}"}}}]`)
	f.Add(`[{name: a, when: {host: ["*.example.fi"], not: {cookie: [{name: s}]}}, do: {set_headers: {X: "${header:User-Agent}${cookie:c}${bucket}${host}${path}${node}"}}}]`)
	f.Add(`[{name: a, do: {rewrite_path: {regex: '(a)(b)?', replace: '/${2}${1}${9}'}}}]`)
	f.Add(`[{name: a, phase: deliver, when: {status: [200], response_header: [{name: X, regex: "."}]}, do: {set_cookie: "b=${bucket}"}}]`)
	f.Add(`[{name: a, do: {classify: {header: User-Agent, into: X-D, classes: [{name: m, regex: "(?i)mobile"}]}, key: [X-D]}}]`)
	f.Fuzz(func(t *testing.T, src string) {
		var rs []config.Rule
		if yaml.Unmarshal([]byte(src), &rs) != nil {
			return
		}
		s, err := Compile(rs, Options{Pools: []string{"default"}, Node: "n"})
		if err != nil {
			return
		}
		var res Result
		for _, p := range []string{"/", "/uutiset/1.cfm?x", "/ab", "/a/b?c=d"} {
			r := req(p)
			r.headers["User-Agent"] = "Mobile"
			r.cookies["c"] = "v"
			s.Request(r, &res)
			s.Response(r, &fakeResp{status: 200, headers: map[string]string{"X": "y"}}, &res)
			s.Deliver(r, &fakeResp{status: 404}, &res)
		}
	})
}
