package cachepolicy

// RouteMatch is the matching part of a configured route.
type RouteMatch struct {
	// Host is a lower-case host name without port; "*.example.com" matches
	// every subdomain of example.com (not example.com itself); empty
	// matches every host.
	Host string
	// PathPrefix matches the start of the normalised target; empty matches
	// every path.
	PathPrefix string
}

// MatchRoute returns the index of the first route matching a normalised
// host (without port) and target, or -1. It does not allocate.
func MatchRoute(routes []RouteMatch, host, target []byte) int {
	for i := range routes {
		r := &routes[i]
		if r.Host != "" && !matchHost(r.Host, host) {
			continue
		}
		if len(target) < len(r.PathPrefix) || string(target[:len(r.PathPrefix)]) != r.PathPrefix {
			continue
		}
		return i
	}
	return -1
}

// HostWithoutPort strips a ":port" suffix from a normalised host.
func HostWithoutPort(host []byte) []byte {
	if len(host) > 0 && host[len(host)-1] == ']' {
		return host
	}
	if i := lastIndexByte(host, ':'); i >= 0 && (len(host) == 0 || host[0] != '[' || host[i-1] == ']') {
		return host[:i]
	}
	return host
}

func matchHost(pattern string, host []byte) bool {
	if len(pattern) > 2 && pattern[0] == '*' && pattern[1] == '.' {
		suffix := pattern[1:] // ".example.com"
		return len(host) > len(suffix) && string(host[len(host)-len(suffix):]) == suffix
	}
	return string(host) == pattern
}
