package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestExampleMatchesDefault(t *testing.T) {
	b, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(example.yaml) = %v", err)
	}
	if d := cmp.Diff(Default(), got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("example.yaml differs from Default() (-default +example):\n%s", d)
	}
}

// TestExampleDocumentsEveryKey walks the Config type and checks that each
// key appears in example.yaml, uncommented or in a commented example.
func TestExampleDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var walk func(rt reflect.Type, path string)
	seen := map[reflect.Type]bool{} // Condition holds a Condition (not:)
	walk = func(rt reflect.Type, path string) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || rt == durationType || seen[rt] {
			return
		}
		seen[rt] = true
		for i := range rt.NumField() {
			f := rt.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" {
				continue
			}
			p := joinPath(path, name)
			if !strings.Contains(text, name+":") {
				t.Errorf("example.yaml does not document %s", p)
			}
			walk(f.Type, p)
		}
	}
	walk(reflect.TypeFor[Config](), "")
}

func TestParse(t *testing.T) {
	d := func(s string) *time.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return &v
	}
	f := func(name, yaml string, want func(*Config)) {
		t.Helper()
		got, err := Parse([]byte(yaml))
		if err != nil {
			t.Errorf("%s: Parse() = %v", name, err)
			return
		}
		exp := Default()
		want(&exp)
		if diff := cmp.Diff(exp, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", name, diff)
		}
	}
	f("empty", "", func(*Config) {})
	f("comment only", "# nothing\n", func(*Config) {})
	f("sizes", "cache:\n  size_bytes: 1GiB\n  max_object_bytes: 1048576\n", func(c *Config) {
		c.Cache.SizeBytes = GiB
		c.Cache.MaxObjectBytes = MiB
	})
	f("backends", "backends:\n  servers:\n    - address: 10.0.0.1:80\n    - name: b\n      address: 10.0.0.2:80\n", func(c *Config) {
		c.Backends.Servers = []Backend{{Address: "10.0.0.1:80"}, {Name: "b", Address: "10.0.0.2:80"}}
	})
	f("route", "routes:\n  - path_prefix: /static/\n    ttl: 720h\n    ignore_cookies: true\n", func(c *Config) {
		c.Routes = []Route{{PathPrefix: "/static/", TTL: d("720h"), IgnoreCookies: true}}
	})
	f("null keeps default", "cache:\n  grace: null\n", func(*Config) {})
	f("durations", "cache:\n  grace: 1m30s\n  keep: 24h\n", func(c *Config) {
		c.Cache.Grace = 90 * time.Second
		c.Cache.Keep = 24 * time.Hour
	})
	f("anchors", "edge:\n  read_timeout: &a 5s\n  write_timeout: *a\n", func(c *Config) {
		c.Edge.ReadTimeout = 5 * time.Second
		c.Edge.WriteTimeout = 5 * time.Second
	})
}

func TestParseErrorsNameTheKey(t *testing.T) {
	f := func(yaml string, wants ...string) {
		t.Helper()
		_, err := Parse([]byte(yaml))
		if err == nil {
			t.Errorf("Parse(%q) = nil error, want one naming %q", yaml, wants)
			return
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Parse(%q) = %q, want it to contain %q", yaml, err, w)
			}
		}
	}
	f("edge:\n  lisen: :80\n", "edge.lisen: unknown key", `did you mean "listen"`)
	f("nope: 1\n", "nope: unknown key")
	f("cache:\n  size_bytes: lots\n", "cache.size_bytes:", "not a number of bytes")
	f("cache:\n  grace: soon\n", "cache.grace:", "not a duration")
	f("cache:\n  grace: -1s\n", "cache.grace: must not be negative")
	f("edge:\n  max_connections: many\n", "edge.max_connections:")
	f("edge:\n  listen: nohostport\n", `edge.listen: "nohostport" is not host:port`)
	f("edge:\n  listen: 127.0.0.1:9\n  admin: 127.0.0.1:9\n", "edge.admin: must differ")
	f("backends:\n  servers:\n    - address: a:1\n    - address: bad\n", "backends.servers[1].address")
	f("backends:\n  servers:\n    - address: a:1\n    - address: a:1\n", "backends.servers[1].name")
	f("backends:\n  director: random\n", "backends.director")
	f("backends:\n  probe:\n    enabled: true\n    window: 4\n    threshold: 5\n", "backends.probe.threshold")
	f("routes:\n  - path_prefix: static\n", "routes[0].path_prefix")
	f("routes:\n  - host: Example.COM\n", "routes[0].host")
	f("routes:\n  - pass: true\n    ttl: 1m\n", "routes[0].pass")
	f("routes:\n  - min_ttl: 2m\n    max_ttl: 1m\n", "routes[0].min_ttl")
	f("routes:\n  - bogus: 1\n", "routes[0].bogus: unknown key")
	f("purge:\n  allow_networks: [10.0.0.0/33]\n", "purge.allow_networks[0]")
	f("key:\n  strip_query: ['[']\n", "key.strip_query[0]")
	f("compression:\n  gzip_level: 11\n", "compression.gzip_level")
	f("compression:\n  types: [TEXT/HTML]\n", "compression.types[0]")
	f("compression:\n  types: [text/html, image/png]\n", "compression.types[1]", "compressed already")
	f("compression:\n  types: [image/*]\n", "compression.types[0]", "compressed already")
	f("compression:\n  types: [video/mp4, application/zip, font/woff2]\n", "compression.types[0]", "compression.types[1]", "compression.types[2]")
	f("log:\n  level: loud\n", "log.level")
	f("cache:\n  size_bytes: 64MiB\n  max_object_bytes: 40MiB\n", "cache.max_object_bytes")
	f("cache:\n  max_object_bytes: 8MiB\n  inflight_bytes: 10MiB\n", "cache.inflight_bytes")
	f("cache:\n  inflight_wait: -1s\n", "cache.inflight_wait")
	f("edge:\n  node_id: a.b\n", "edge.node_id")
	f("edge:\n  zone: a b\n", "edge.zone")
	f("purge:\n  bus:\n    url: http://127.0.0.1:4222\n", "purge.bus.url")
	f("purge:\n  bus:\n    stream: a.b\n", "purge.bus.stream")
	f("purge:\n  bus:\n    subject: lakka.*\n", "purge.bus.subject")
	f("purge:\n  bus:\n    members_bucket: \"\"\n", "purge.bus.members_bucket")
	f("purge:\n  bus:\n    replicas: 0\n", "purge.bus.replicas")
	f("purge:\n  bus:\n    max_age: 1m\n    duplicate_window: 2m\n", "purge.bus.duplicate_window")
	f("purge:\n  bus:\n    user: u\n", "purge.bus.user")
	f("purge:\n  bus:\n    cert_file: c.pem\n", "purge.bus.cert_file")
	f("origin:\n  purge_retry_min: 1m\n  purge_retry_max: 1s\n", "origin.purge_retry_max: must not be less than")
	f("origin:\n  purge_max_backlog: 0\n", "origin.purge_max_backlog")
	f("origin:\n  token: 'a b'\n", "origin.token: must not contain whitespace")
	f("origin:\n  purge_timeout: 0s\n", "origin.purge_timeout")
	f("edge: [1, 2]\n", "edge: want a mapping")
	f("cache:\n  grace: 1s\n  grace: 2s\n", "cache.grace: duplicate key")
	f("edge: {\n", "invalid YAML")
	f("a: 1\n---\nb: 2\n", "more than one document")
	// Every problem is reported, not only the first.
	f("edge:\n  lisen: x\ncache:\n  grace: -1s\n", "edge.lisen", "cache.grace")
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "lakka.yaml")
	if err := os.WriteFile(p, []byte("cache:\n  grace: 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cache.Grace != time.Minute {
		t.Errorf("grace = %s, want 1m", c.Cache.Grace)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("LoadFile(missing) = %v, want an error naming the file", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("edge:\n  bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(bad); err == nil || !strings.Contains(err.Error(), "bad.yaml") || !strings.Contains(err.Error(), "edge.bogus") {
		t.Errorf("LoadFile(bad) = %v, want the file and key named", err)
	}
}

func TestByteSize(t *testing.T) {
	f := func(in string, want ByteSize, ok bool) {
		t.Helper()
		got, err := ParseByteSize(in)
		if (err == nil) != ok {
			t.Errorf("ParseByteSize(%q) error = %v, want ok=%v", in, err, ok)
			return
		}
		if ok && got != want {
			t.Errorf("ParseByteSize(%q) = %d, want %d", in, got, want)
		}
	}
	f("0", 0, true)
	f("4096", 4096, true)
	f("4KiB", 4096, true)
	f("4 kib", 4096, true)
	f("1.5MiB", 3*MiB/2, true)
	f("2MB", 2000000, true)
	f("1GiB", GiB, true)
	f("10B", 10, true)
	f("-1", 0, false)
	f("", 0, false)
	f("lots", 0, false)
	f("99999999999999999999GiB", 0, false)
	f("NaN", 0, false)
	for _, b := range []ByteSize{0, 1, 1023, KiB, 3 * KiB, MiB, 5 * GiB} {
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Errorf("round trip %d: %q -> %d, %v", b, b.String(), back, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("example.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("edge:\n  listen: :80\n"))
	f.Add([]byte("routes:\n  - ttl: 1m\n    host: '*.a.b'\n"))
	f.Add([]byte("cache: &x\n  grace: *x\n"))
	f.Add([]byte("cache:\n  size_bytes: 1.5GiB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
	})
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"0", "4KiB", "1.5 MB", "-3", "1e30", "9223372036854775807", "GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseByteSize(s)
		if err == nil && v < 0 {
			t.Fatalf("ParseByteSize(%q) = %d, negative", s, v)
		}
	})
}

// TestPoolsAndRuleMaps: maps (pools, header maps of rules) are decoded as
// strictly as the rest; pools are validated with their key paths.
func TestPoolsAndRuleMaps(t *testing.T) {
	c, err := Parse([]byte(`
pools:
  canary:
    director: fallback
    servers: [{address: 127.0.0.1:8001}]
rules:
  - name: dl
    do: {set_headers: {X-Dark-Launch: live-widget}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Pools["canary"]; p.Director != "fallback" || len(p.Servers) != 1 || c.Rules[0].Do.SetHeaders["X-Dark-Launch"] != "live-widget" {
		t.Fatalf("parsed %+v %+v", c.Pools, c.Rules)
	}
	if got := c.PoolNames(); strings.Join(got, ",") != "default,canary" {
		t.Errorf("PoolNames %v", got)
	}
	for src, want := range map[string]string{
		"pools: {canary: {servers: [{address: x}], colour: red}}":                "pools.canary.colour: unknown key",
		"pools: {canary: {servers: [{address: 127.0.0.1:1}]}, canary: {}}":       "pools.canary: duplicate key",
		"rules: [{name: a, do: {set_headers: {X: [1, 2]}}}]":                     "rules[0].do.set_headers.X: want a single value",
		"pools: {Default: {servers: [{address: 127.0.0.1:1}]}}":                  "pools.Default: a pool name is",
		"pools: {default: {servers: [{address: 127.0.0.1:1}]}}":                  "pools.default: a pool name is",
		"pools: {canary: {director: random, servers: [{address: 127.0.0.1:1}]}}": "pools.canary.director: must be round_robin or fallback",
		"pools: {canary: {}}":     "pools.canary.servers: a pool needs at least one server",
		"sticky: {cookie: 'a b'}": "sticky.cookie: must be a cookie name",
	} {
		c, err := Parse([]byte(src))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", src, err, want)
		}
	}
}

func TestClusterValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no node id", func(c *Config) { c.Edge.NodeID = "" }, "edge.node_id: required with cluster.listen"},
		{"no zone", func(c *Config) { c.Edge.Zone = "" }, "edge.zone: required with cluster.listen"},
		{"no members", func(c *Config) { c.Cluster.Peers = nil }, "cluster.peers: required without purge.bus.url"},
		{"duplicate id", func(c *Config) {
			c.Cluster.Peers = append(c.Cluster.Peers, Peer{ID: "a1", Zone: "a", Address: "127.0.0.1:7009"})
		}, `cluster.peers[1].id: "a1" appears twice`},
		{"bad address", func(c *Config) { c.Cluster.Peers[0].Address = "nowhere" }, "cluster.peers[0].address"},
		{"unknown shield", func(c *Config) { c.Cluster.ShieldZone = "z" }, `cluster.shield_zone: "z" is not the zone`},
		{"wildcard with the bus", func(c *Config) {
			c.Cluster.Peers = nil
			c.Purge.Bus.URL = "nats://127.0.0.1:4222"
			c.Cluster.Listen = "0.0.0.0:7001"
		}, "cluster.listen: \"0.0.0.0:7001\" listens on every address"},
		{"share", func(c *Config) { c.Cluster.HotShare = 95 }, "cluster.hot_share"},
		{"peers without listen", func(c *Config) { c.Cluster.Listen = "" }, "cluster.listen: required when cluster.peers"},
	} {
		c := Default()
		c.Edge.NodeID, c.Edge.Zone = "a1", "a"
		c.Cluster.Listen = "127.0.0.1:7001"
		c.Cluster.Peers = []Peer{{ID: "a2", Zone: "a", Address: "127.0.0.1:7002"}}
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	c := Default()
	c.Edge.NodeID, c.Edge.Zone = "a1", "a"
	c.Cluster.Listen = "10.0.0.1:7001"
	c.Purge.Bus.URL = "nats://127.0.0.1:4222"
	if err := c.Validate(); err != nil {
		t.Errorf("a cluster on the bus: %v", err)
	}
}
