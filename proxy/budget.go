package proxy

import "sync/atomic"

// Budget is a number of descriptors that sessions share: the daemon's
// open-file limit, less what the daemon keeps for itself. A client
// connection takes [FDsPerConn], an idle upstream connection kept for
// reuse one. A session whose connection
// would overdraw it closes that connection at once, as over its own
// [Config.MaxConns]: running out of descriptors fails every accept and
// dial of the daemon, every session's alike.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// FDsPerConn is what one client connection costs the daemon: itself, the
// upstream connection it carries, and the two pipes io.Copy splices a
// tunnel's bytes through, one per direction (counted as two: a second
// red team counted six descriptors per idle tunnel, against the two the
// budget charged, and ran the daemon out of them under its own limit).
const FDsPerConn = 6

// NewBudget returns a budget of n descriptors.
func NewBudget(n int) *Budget { return &Budget{limit: int64(n)} }

// Used returns the number of descriptors taken now.
func (b *Budget) Used() int { return int(b.used.Load()) }

// take takes n descriptors, and reports whether there were enough. A nil
// budget has no limit.
func (b *Budget) take(n int64) bool {
	if b == nil {
		return true
	}
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		return false
	}
	return true
}

// give returns n descriptors taken.
func (b *Budget) give(n int64) {
	if b != nil {
		b.used.Add(-n)
	}
}
