//go:build linux && !amd64 && !arm64

package sandbox

// The seccomp filter is written for amd64 and arm64; elsewhere it refuses
// to install (auditArch 0), which the init reports as a missing layer.
const (
	auditArch = 0
	x32Bit    = 0
)

var archDeniedSyscalls []uintptr
