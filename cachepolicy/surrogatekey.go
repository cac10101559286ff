package cachepolicy

import (
	"slices"
	"strings"
)

// Limits on Surrogate-Key, so that one response cannot bloat the tag index.
const (
	MaxTags      = 256
	MaxTagLength = 256
)

// ParseSurrogateKeys appends the tags of Surrogate-Key (Fastly) or xkey
// (Varnish) field values to tags: space-separated tokens (commas are
// accepted as separators too, for xkey), de-duplicated and sorted. Tokens
// longer than MaxTagLength, or with control characters or non-ASCII bytes,
// are skipped; at most MaxTags are kept. It reports how many were skipped.
func ParseSurrogateKeys(tags []string, values ...[]byte) ([]string, int) {
	skipped := 0
	for _, v := range values {
		i := 0
		for i < len(v) {
			for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == ',') {
				i++
			}
			start := i
			for i < len(v) && v[i] != ' ' && v[i] != '\t' && v[i] != ',' {
				i++
			}
			tok := v[start:i]
			if len(tok) == 0 {
				continue
			}
			if len(tok) > MaxTagLength || !printable(tok) {
				skipped++
				continue
			}
			if len(tags) >= MaxTags {
				// Full, counting duplicates: drop them and look again. A
				// repeat of a kept tag is not skipped.
				slices.Sort(tags)
				tags = slices.Compact(tags)
				if len(tags) >= MaxTags {
					if _, found := slices.BinarySearchFunc(tags, tok, compareTag); !found {
						skipped++
					}
					continue
				}
			}
			tags = append(tags, string(tok))
		}
	}
	slices.Sort(tags)
	return slices.Compact(tags), skipped
}

func compareTag(tag string, tok []byte) int { return strings.Compare(tag, string(tok)) }

func printable(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
