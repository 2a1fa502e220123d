package sandbox

import (
	"fmt"

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
