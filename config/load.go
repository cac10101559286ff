package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes bounds a configuration file.
const MaxFileBytes = 4 << 20

// maxDepth bounds nesting while decoding; Config is far shallower.
const maxDepth = 16

// LoadFile reads the YAML file at path over Default() and validates the
// result ("lakka config check"). Errors name the file and the key path.
func LoadFile(path string) (Config, error) {
	b, err := readBounded(path)
	if err != nil {
		return Config{}, err
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", path, err)
	}
	return c, nil
}

// ReadFile reads the YAML file at path over Default() strictly (unknown
// keys and values of the wrong type are errors naming the key path) but
// does not validate: a command applies its flags and environment first,
// then validates once (Validate, ValidateEdge).
func ReadFile(path string) (Config, error) {
	b, err := readBounded(path)
	if err != nil {
		return Config{}, err
	}
	c := Default()
	if err := Decode(b, &c); err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", path, err)
	}
	return c, nil
}

// readBounded reads at most MaxFileBytes of the file at path.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("config: %s: larger than %d bytes", path, MaxFileBytes)
	}
	return b, nil
}

// Parse reads YAML over Default() and validates the result. Unknown keys,
// values of the wrong type and invalid values are all errors naming the key
// path; every problem is reported, joined.
func Parse(b []byte) (Config, error) {
	c := Default()
	// Validate even after a decode error: keys that failed keep their
	// defaults, and the user sees every problem at once.
	if err := errors.Join(Decode(b, &c), c.Validate()); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Decode reads YAML into c, keeping the values of absent keys. It does not
// validate.
func Decode(b []byte, c *Config) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil // only comments
	} else if err != nil {
		return fmt.Errorf("invalid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return errors.New("invalid YAML: more than one document")
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("invalid YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	var errs []error
	decodeNode(doc.Content[0], reflect.ValueOf(c).Elem(), "", 0, &errs)
	return errors.Join(errs...)
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	unmarshalType = reflect.TypeFor[yaml.Unmarshaler]()
)

// decodeNode decodes n into v strictly, appending one error per problem with
// its key path. Structs are walked by their yaml tags so that an unknown key
// is reported with its full path; leaves are decoded by yaml itself.
func decodeNode(n *yaml.Node, v reflect.Value, path string, depth int, errs *[]error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if depth > maxDepth {
		// The Config type is far shallower: this is an alias loop.
		*errs = append(*errs, fmt.Errorf("%s: nested too deeply (line %d)", path, n.Line))
		return
	}
	fail := func(format string, args ...any) {
		p := path
		if p == "" {
			p = "(top level)"
		}
		*errs = append(*errs, fmt.Errorf("%s: %s (line %d)", p, fmt.Sprintf(format, args...), n.Line))
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		// An explicit null leaves the default in place, except for pointers,
		// which it clears.
		if v.Kind() == reflect.Pointer {
			v.SetZero()
		}
		return
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalType) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			fail("%s", yamlMessage(err))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		decodeNode(n, nv.Elem(), path, depth+1, errs)
		v.Set(nv)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			fail("want a mapping of keys, got %s", kindName(n))
			return
		}
		fields := yamlFields(v.Type())
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			name := k.Value
			sub := joinPath(path, name)
			if seen[name] {
				*errs = append(*errs, fmt.Errorf("%s: duplicate key (line %d)", sub, k.Line))
				continue
			}
			seen[name] = true
			idx, ok := fields[name]
			if !ok {
				msg := fmt.Sprintf("%s: unknown key (line %d)", sub, k.Line)
				if s := suggest(name, fields); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
				*errs = append(*errs, errors.New(msg))
				continue
			}
			decodeNode(val, v.Field(idx), sub, depth+1, errs)
		}
	case reflect.Map:
		// Maps with string keys (header names, pool names): each value is
		// decoded strictly under its key's path.
		if n.Kind != yaml.MappingNode {
			fail("want a mapping, got %s", kindName(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			sub := joinPath(path, k.Value)
			key := reflect.New(v.Type().Key()).Elem()
			if key.Kind() != reflect.String || k.Kind != yaml.ScalarNode {
				*errs = append(*errs, fmt.Errorf("%s: want a name as the key (line %d)", sub, k.Line))
				continue
			}
			key.SetString(k.Value)
			if m.MapIndex(key).IsValid() {
				*errs = append(*errs, fmt.Errorf("%s: duplicate key (line %d)", sub, k.Line))
				continue
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			decodeNode(val, elem, sub, depth+1, errs)
			m.SetMapIndex(key, elem)
		}
		v.Set(m)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			fail("want a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			decodeNode(item, s.Index(i), path+"["+strconv.Itoa(i)+"]", depth+1, errs)
		}
		v.Set(s)
	default:
		if n.Kind != yaml.ScalarNode {
			fail("want a single value, got %s", kindName(n))
			return
		}
		if v.Type() == durationType {
			d, err := time.ParseDuration(n.Value)
			if err != nil {
				fail("%q is not a duration (use e.g. 500ms, 10s, 5m, 24h)", n.Value)
				return
			}
			v.SetInt(int64(d))
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			fail("%s", yamlMessage(err))
		}
	}
}

// yamlFields maps yaml tag names to field indexes.
func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		m[name] = i
	}
	return m
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// yamlMessage strips yaml's "yaml: unmarshal errors:\n  line N:" framing,
// since the caller adds the key path and line.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "line ") {
			msg = msg[i+2:]
		}
		return msg
	}
	return err.Error()
}

// suggest returns the known key closest to name, if it is close.
func suggest(name string, fields map[string]int) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	best, bestD := "", 3
	for _, k := range keys {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
