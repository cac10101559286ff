package config

import "testing"

func TestBudget(t *testing.T) {
	for _, c := range []struct {
		size, limit ByteSize
		want        Budget
	}{
		// 256 MiB: an eighth, a 64th, and 2% of the other 230,686,720 bytes
		// for the window.
		{256 * MiB, 0, Budget{Store: 226_072_986, Window: 4_613_734, Identity: 33_554_432, Headers: 4_194_304, Bodies: 16 << 20, MemoryLimit: 2*256<<20 + 64<<20}},
		// 16 MiB: the window's 1 MiB floor is above 2%.
		{16 * MiB, 0, Budget{Store: 13_369_344, Window: 1 << 20, Identity: 2 << 20, Headers: 256 << 10, Bodies: 16 << 20, MemoryLimit: 96 << 20}},
		// 1 MiB: a quarter is below the 1 MiB floor.
		{1 * MiB, 0, Budget{Store: 675_840, Window: 225_280, Identity: 131_072, Headers: 16_384, Bodies: 16 << 20, MemoryLimit: 66 << 20}},
		// An explicit memory limit is taken as it is.
		{64 * MiB, 1 * GiB, Budget{Store: 56_518_247, Window: 1_153_433, Identity: 8 << 20, Headers: 1 << 20, Bodies: 16 << 20, MemoryLimit: 1 << 30}},
		// 1 GiB: a sixteenth is above twice the 8 MiB max_object_bytes.
		{1 * GiB, 0, Budget{Store: 904_291_943, Window: 18_454_937, Identity: 128 << 20, Headers: 16 << 20, Bodies: 64 << 20, MemoryLimit: 2*1024<<20 + 64<<20}},
	} {
		cfg := Default()
		cfg.Cache.SizeBytes = c.size
		cfg.Edge.MemoryLimitBytes = c.limit
		got := cfg.Budget()
		if got != c.want {
			t.Errorf("size %s: got %+v, want %+v", c.size, got, c.want)
		}
		if sum := got.Store + got.Window + got.Identity + got.Headers; sum != int64(c.size) {
			t.Errorf("size %s: the parts add up to %d", c.size, sum)
		}
	}
}
