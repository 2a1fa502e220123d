//go:build !linux

package sandbox

// ConfinementKind is "" here: confinement by something outside fence
// changes nothing on this platform (see the Linux one).
func ConfinementKind() string { return "" }

// InotifyLimitHint is "" here: there is no inotify (see the Linux one).
func InotifyLimitHint(err error) string { return "" }
