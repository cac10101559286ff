// Package lakka_test enforces the import policy of docs/ARCHITECTURE.md,
// the way Go's go/build/deps_test.go does: each package may import only
// what its row there allows.
package lakka_test

import (
	"go/build"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/lakka-cache/lakka"

// allowed lists, per package prefix, the module packages it may import.
// Third-party imports are checked separately by thirdParty.
var allowed = map[string][]string{
	"config":      {},
	"cachepolicy": {},
	"purge":       {},
	// The rule language: compiled from the configuration, evaluated
	// against views the edge (and lakka config explain) provide.
	"rules": {"config"},
	// The bus is how purges travel over NATS: it knows the message and the
	// configuration, nothing of edges or origins.
	"purge/bus":         {"config", "purge"},
	"internal/natstest": {},
	"edge":              {"cachepolicy", "config", "purge", "rules"},
	// edge's parts with invariants of their own import only downward:
	// cachekey, coding and slab are leaves, store builds on cachekey and
	// slab, and none of them knows edge itself.
	"edge/internal/cachekey": {"cachepolicy"},
	"edge/internal/coding":   {},
	"edge/internal/slab":     {},
	"edge/internal/store":    {"cachepolicy", "config", "edge/internal/cachekey", "edge/internal/slab"},
	"edge/internal/backend":  {"cachepolicy", "config"},
	"origin":                 {"config", "purge"},
	"origin/surrogate":       {},
	"bench":                  {"config", "purge"},
	"cmd/lakka":              {"*"},
	"cmd/barefast":           {},
	// The Debian package's test reads the shipped configuration the way
	// the binary does.
	"packaging": {"config"},
}

// thirdParty lists the non-stdlib modules each package may import.
var thirdParty = map[string][]string{
	"config":                 {"go.yaml.in/yaml/v3"},
	"cachepolicy":            {},
	"rules":                  {},
	"purge":                  {},
	"purge/bus":              {"github.com/nats-io/nats.go"},
	"internal/natstest":      {},
	"origin/surrogate":       {},
	"edge":                   {"github.com/valyala/fasthttp", "github.com/klauspost/compress", "github.com/prometheus/client_golang", "github.com/prometheus/client_model"},
	"edge/internal/cachekey": {"github.com/valyala/fasthttp"},
	"edge/internal/coding":   {"github.com/klauspost/compress"},
	"edge/internal/slab":     {},
	"edge/internal/store":    {"github.com/dgraph-io/ristretto/v2", "github.com/prometheus/client_golang", "github.com/valyala/fasthttp"},
	"edge/internal/backend":  {"github.com/valyala/fasthttp", "github.com/prometheus/client_golang", "golang.org/x/sync"},
	"origin":                 {"github.com/jackc/pgx/v5", "github.com/prometheus/client_golang"},
	"bench":                  {"github.com/HdrHistogram/hdrhistogram-go", "github.com/valyala/fasthttp", "github.com/prometheus/client_golang", "github.com/prometheus/common", "github.com/prometheus/client_model"},
	"cmd/lakka":              {"*"},
	"cmd/barefast":           {"github.com/valyala/fasthttp", "github.com/klauspost/compress"},
	"packaging":              {},
}

func rule(m map[string][]string, rel string) ([]string, bool) {
	best := ""
	for k := range m {
		if (rel == k || strings.HasPrefix(rel, k+"/")) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return nil, false
	}
	return m[best], true
}

func permitted(list []string, imp string) bool {
	for _, a := range list {
		if a == "*" || imp == a || strings.HasPrefix(imp, a+"/") {
			return true
		}
	}
	return false
}

func TestImportPolicy(t *testing.T) {
	out, err := exec.Command("go", "list", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		if rel == "" {
			continue
		}
		p, err := build.Import(pkg, ".", 0)
		if err != nil {
			t.Fatalf("import %s: %v", pkg, err)
		}
		mods, ok := rule(allowed, rel)
		if !ok {
			t.Errorf("%s: no import rule; add it to deps_test.go and docs/ARCHITECTURE.md's table", rel)
			continue
		}
		third, _ := rule(thirdParty, rel)
		for _, imp := range p.Imports {
			switch {
			case strings.HasPrefix(imp, module+"/"):
				dep := strings.TrimPrefix(imp, module+"/")
				if strings.HasPrefix(dep, rel+"/") || permitted(mods, dep) {
					continue
				}
				t.Errorf("%s imports %s: not allowed by the layout", rel, dep)
			case !strings.Contains(strings.SplitN(imp, "/", 2)[0], "."):
				// standard library
			default:
				if !permitted(third, imp) {
					t.Errorf("%s imports %s: third-party import not in its allow list", rel, imp)
				}
			}
		}
	}
}
