package config

// Budget is how an edge divides cache.size_bytes among its users of memory,
// and the Go memory limit it runs under. This is the one place that decides
// it (docs/ARCHITECTURE.md, "The size budget"); the store and the command
// only read it.
type Budget struct {
	// Store is ristretto's budget: stored objects (bodies, headers, keys,
	// tags and per-object bookkeeping, see the store's entry overhead).
	Store int64
	// Window is the admission window in front of ristretto (new objects
	// wait there until ristretto has counted their accesses).
	Window int64
	// Identity holds decoded copies of gzip-stored bodies for clients
	// without gzip: an eighth.
	Identity int64
	// Headers holds the whole response headers of hot objects' hits: a
	// 64th (about 1.2 KiB per object and encoding served).
	Headers int64
	// Bodies bounds origin bodies held in the heap at once, outside the
	// cache size: cache.inflight_bytes, or by default twice
	// cache.max_object_bytes or a sixteenth of the cache, whichever is
	// larger (a storable body counts twice: as read and compressed).
	Bodies int64
	// MemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT):
	// edge.memory_limit_bytes, or twice the cache plus 64 MiB.
	MemoryLimit int64
}

// FetchFloor is the floor of the adaptive fetch limit: min_fetches, or 2
// (at most max_fetches) when it is 0.
func (b *Backends) FetchFloor() int {
	if b.MinFetches > 0 {
		return b.MinFetches
	}
	return min(2, b.MaxFetches)
}

// FetchStart is where the adaptive fetch limit starts: initial_fetches, or
// 20 within the floor and max_fetches when it is 0.
func (b *Backends) FetchStart() int {
	if b.InitialFetches > 0 {
		return b.InitialFetches
	}
	return max(min(20, b.MaxFetches), b.FetchFloor())
}

// windowShare is the admission window's part of what the pools leave:
// 1/50 (W-TinyLFU keeps 1%; a news site brings new hot objects every
// minute), at least 1 MiB or a quarter, whichever is smaller.
const windowShare = 50

// Budget divides c.Cache.SizeBytes: Store+Window+Identity+Headers is
// exactly the cache size. Bodies is beside it.
func (c *Config) Budget() Budget {
	size := int64(c.Cache.SizeBytes)
	b := Budget{Identity: size / 8, Headers: size / 64}
	rest := size - b.Identity - b.Headers
	b.Window = max(rest/windowShare, min(1<<20, rest/4))
	b.Store = rest - b.Window
	b.Bodies = int64(c.Cache.InflightBytes)
	if b.Bodies == 0 {
		b.Bodies = max(2*int64(c.Cache.MaxObjectBytes), size/16)
	}
	b.MemoryLimit = int64(c.Edge.MemoryLimitBytes)
	if b.MemoryLimit == 0 {
		b.MemoryLimit = 2*size + 64<<20
	}
	return b
}
