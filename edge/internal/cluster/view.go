// Package cluster decides which edge owns a cache key: rendezvous
// (highest-random-weight) hashing over the live members of a zone, so
// that every edge with the same member list picks the same owner, and a
// member joining or leaving moves only the keys it wins or held (about
// 1/n of them).
package cluster

import (
	"slices"
	"strings"
)

// Member is an edge of the cluster.
type Member struct {
	ID, Zone string
	// Addr is its peer listener (host:port).
	Addr string
	// seed is the hash of ID that scores keys for this member.
	seed uint64
}

// View is an immutable member list, by zone.
type View struct {
	zones map[string][]Member // each sorted by ID
	n     int
}

// NewView builds a view of members (duplicate ids: the first counts).
func NewView(members []Member) *View {
	v := &View{zones: make(map[string][]Member)}
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		if m.ID == "" || seen[m.ID] {
			continue
		}
		seen[m.ID] = true
		m.seed = hashString(m.ID)
		v.zones[m.Zone] = append(v.zones[m.Zone], m)
		v.n++
	}
	for _, ms := range v.zones {
		slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	}
	return v
}

// Without returns the view without member id.
func (v *View) Without(id string) *View {
	var ms []Member
	for _, z := range v.zones {
		for _, m := range z {
			if m.ID != id {
				ms = append(ms, m)
			}
		}
	}
	return NewView(ms)
}

// Len is the number of members.
func (v *View) Len() int { return v.n }

// Zone returns the members of zone, sorted by id (the view's own slice:
// read only).
func (v *View) Zone(zone string) []Member { return v.zones[zone] }

// Zones returns the zones, sorted.
func (v *View) Zones() []string {
	out := make([]string, 0, len(v.zones))
	for z := range v.zones {
		out = append(out, z)
	}
	slices.Sort(out)
	return out
}

// Member returns the member with id.
func (v *View) Member(id string) (Member, bool) {
	for _, ms := range v.zones {
		for _, m := range ms {
			if m.ID == id {
				return m, true
			}
		}
	}
	return Member{}, false
}

// Equal reports whether v and w hold the same members at the same
// addresses.
func (v *View) Equal(w *View) bool {
	if v == nil || w == nil {
		return v == w
	}
	if v.n != w.n || len(v.zones) != len(w.zones) {
		return false
	}
	for z, ms := range v.zones {
		if !slices.EqualFunc(ms, w.zones[z], func(a, b Member) bool { return a.ID == b.ID && a.Addr == b.Addr }) {
			return false
		}
	}
	return true
}

// KeyHash is the hash of a cache key that ownership is decided on.
func KeyHash(key []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range key {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// FNV-1a, 64 bits.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// Owner returns the owner of the key with hash kh among zone's members;
// ok is false when the zone has none.
func (v *View) Owner(zone string, kh uint64) (m Member, ok bool) {
	best := uint64(0)
	for _, c := range v.zones[zone] {
		if s := score(c.seed, kh); !ok || s > best || (s == best && c.ID < m.ID) {
			m, best, ok = c, s, true
		}
	}
	return m, ok
}

// score is the weight of member seed for key hash kh: a 64-bit mix of
// both (splitmix64's finaliser), the same on every edge.
func score(seed, kh uint64) uint64 {
	x := seed ^ (kh * 0x9e3779b97f4a7c15)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func hashString(s string) uint64 { return KeyHash([]byte(s)) }
