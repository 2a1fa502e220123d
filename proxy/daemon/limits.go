package daemon

import (
	"golang.org/x/sys/unix"

	"github.com/fence-dev/fence/proxy"
)

// defaultMaxConns is a session's connection limit when the daemon's
// descriptors allow it ([proxy.Config.MaxConns]).
const defaultMaxConns = 4096

// openFileLimit returns the daemon's limit on open descriptors. The Go
// runtime has already raised the soft limit to (one below) the hard one at
// start; raising it here would also hand the higher limit to the
// processes the daemon starts, which Go keeps from them.
func openFileLimit() uint64 {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 1024 // the usual default: what the daemon can count on
	}
	return uint64(l.Cur) // int64 on some systems; RLIM_INFINITY is huge either way
}

// descriptorBudget shares out an open-file limit: an eighth of it (at
// least 256, at most half) stays with the daemon (its control socket and
// leases, two listeners and a directory per session, records, warm inits),
// and the rest is the sessions' connections' budget ([proxy.Budget]). One
// session may have as many connections open as take half of it
// ([proxy.FDsPerConn] each), so that one session flooding the proxy leaves
// the other half to the others; and no more than maxConns (0 means
// defaultMaxConns).
func descriptorBudget(limit uint64, maxConns int) (budget, perSession int) {
	reserve := max(limit/8, min(256, limit/2))
	budget = int(min(limit-reserve, 1<<30))
	if maxConns == 0 {
		maxConns = defaultMaxConns
	}
	return budget, max(1, min(maxConns, budget/(2*proxy.FDsPerConn)))
}
