package sandbox

import (
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// monoNow is CLOCK_MONOTONIC in nanoseconds: comparable between the client
// and the init (time.Now's monotonic reading is per process).
func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// stamp records a named point in time for -d's timing line.
type stamp struct {
	Name string
	At   int64
}

func fmtStamps(st []stamp) string {
	if len(st) == 0 {
		return ""
	}
	s := "timing:"
	for i := 1; i < len(st); i++ {
		s += fmt.Sprintf(" %s +%.2fms", st[i].Name, float64(st[i].At-st[i-1].At)/1e6)
	}
	return s
}

// timeline collects the client's and the init's stamps of one sandbox
// (both read CLOCK_MONOTONIC) for -d's timeline.
type timeline struct {
	mu     sync.Mutex
	stamps []stamp
}

func (t *timeline) add(st ...stamp) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.stamps = append(t.stamps, st...)
	t.mu.Unlock()
}

func (t *timeline) mark(name string) { t.add(stamp{name, monoNow()}) }

// String lists the stamps in time order, each with its time since the one
// before.
func (t *timeline) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := append([]stamp{}, t.stamps...)
	sort.SliceStable(st, func(i, j int) bool { return st[i].At < st[j].At })
	return fmtStamps(st)
}
