package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// mountEntry is one line of /proc/PID/mountinfo, its fields as the kernel
// writes them (paths octal-escaped: see unescapeMountinfo):
//
//	ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
type mountEntry struct {
	ID, Parent, Dev, Root, Point, Options string
	Optional                              []string
	FSType, Source, Super                 string
}

// readMountinfo reads the mount table of pid ("self" or a number). A line
// it cannot parse is reported as an error, after every line it could.
func readMountinfo(pid string) ([]mountEntry, error) {
	b, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil {
		return nil, err
	}
	var entries []mountEntry
	var bad error
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		a, z := strings.Fields(pre), strings.Fields(post)
		if !ok || len(a) < 6 || len(z) != 3 {
			if bad == nil {
				bad = fmt.Errorf("/proc/%s/mountinfo: bad line %q", pid, line)
			}
			continue
		}
		entries = append(entries, mountEntry{ID: a[0], Parent: a[1], Dev: a[2], Root: a[3], Point: a[4], Options: a[5],
			Optional: a[6:], FSType: z[0], Source: z[1], Super: z[2]})
	}
	return entries, bad
}

// unescapeMountinfo decodes the octal escapes (\040 for space) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
