package daemon

import (
	"testing"

	"github.com/fence-dev/fence/proxy"
)

func TestDescriptorBudget(t *testing.T) {
	for _, c := range []struct {
		limit              uint64
		maxConns           int
		budget, perSession int
	}{
		{^uint64(0), 0, 1 << 30, 4096}, // RLIM_INFINITY
		{1 << 20, 0, 1<<20 - 1<<17, 4096},
		{20000, 0, 17500, 1458},
		{20000, 50, 17500, 50},
		{4096, 0, 3584, 298},
		{1024, 0, 768, 64},
		{256, 0, 128, 10},
		{4, 0, 2, 1},
	} {
		b, p := descriptorBudget(c.limit, c.maxConns)
		if b != c.budget || p != c.perSession {
			t.Errorf("descriptorBudget(%d, %d) = %d, %d; want %d, %d", c.limit, c.maxConns, b, p, c.budget, c.perSession)
		}
		// One session's connections and its idle pool stay within half
		// the budget, with room for the pool.
		if proxy.FDsPerConn*p > b/2 && p > 1 {
			t.Errorf("descriptorBudget(%d): %d connections per session take more than half of %d", c.limit, p, b)
		}
	}
}
