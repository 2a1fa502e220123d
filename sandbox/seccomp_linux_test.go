package sandbox

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData builds a struct seccomp_data as x/net/bpf's VM reads it:
// the VM loads 32-bit words big-endian, the kernel native-endian, so each
// word is stored big-endian here to make the VM see the native value.
func seccompData(arch, nr uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))     // low half (little-endian layout)
		binary.BigEndian.PutUint32(b[20+8*i:], uint32(a>>32)) // high half
	}
	return b
}

func TestSeccompProgram(t *testing.T) {
	if auditArch == 0 {
		t.Skip("no seccomp filter for this architecture")
	}
	const (
		allow  = unix.SECCOMP_RET_ALLOW
		kill   = unix.SECCOMP_RET_KILL_PROCESS
		eperm  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		enosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	)
	native := uint32(auditArch)
	cases := []struct {
		name string
		opts seccompOptions
		data []byte
		want uint32
	}{
		{"getpid", seccompOptions{}, seccompData(native, unix.SYS_GETPID), allow},
		{"foreign arch (i386 keyctl)", seccompOptions{}, seccompData(unix.AUDIT_ARCH_I386, 288), kill},
		{"foreign arch (i386 getpid)", seccompOptions{}, seccompData(unix.AUDIT_ARCH_I386, 20), kill},
		{"ptrace", seccompOptions{}, seccompData(native, unix.SYS_PTRACE), eperm},
		{"keyctl", seccompOptions{}, seccompData(native, unix.SYS_KEYCTL), eperm},
		{"mount", seccompOptions{}, seccompData(native, unix.SYS_MOUNT), eperm},
		{"open_tree", seccompOptions{}, seccompData(native, unix.SYS_OPEN_TREE), eperm},
		{"io_uring_setup", seccompOptions{}, seccompData(native, unix.SYS_IO_URING_SETUP), eperm},
		{"pidfd_getfd", seccompOptions{}, seccompData(native, unix.SYS_PIDFD_GETFD), eperm},
		{"clone thread", seccompOptions{}, seccompData(native, unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_THREAD), allow},
		{"clone newuser", seccompOptions{}, seccompData(native, unix.SYS_CLONE, unix.CLONE_NEWUSER), eperm},
		{"clone newnet", seccompOptions{}, seccompData(native, unix.SYS_CLONE, unix.CLONE_NEWNET|0x11), eperm},
		{"clone3", seccompOptions{}, seccompData(native, unix.SYS_CLONE3), enosys},
		{"unshare newns", seccompOptions{}, seccompData(native, unix.SYS_UNSHARE, unix.CLONE_NEWNS), eperm},
		{"unshare files", seccompOptions{}, seccompData(native, unix.SYS_UNSHARE, unix.CLONE_FILES), allow},
		{"ioctl TIOCSTI", seccompOptions{}, seccompData(native, unix.SYS_IOCTL, 0, unix.TIOCSTI), eperm},
		{"ioctl TIOCSTI high bits", seccompOptions{}, seccompData(native, unix.SYS_IOCTL, 0, 0x1_0000_0000|unix.TIOCSTI), eperm},
		{"ioctl TIOCLINUX", seccompOptions{}, seccompData(native, unix.SYS_IOCTL, 0, unix.TIOCLINUX), eperm},
		{"ioctl TIOCSETD", seccompOptions{}, seccompData(native, unix.SYS_IOCTL, 0, unix.TIOCSETD), eperm},
		{"ioctl TIOCCONS", seccompOptions{}, seccompData(native, unix.SYS_IOCTL, 0, unix.TIOCCONS), eperm},
		{"ioctl TIOCEXCL", seccompOptions{}, seccompData(native, unix.SYS_IOCTL, 0, unix.TIOCEXCL), eperm},
		{"ioctl TCXONC", seccompOptions{}, seccompData(native, unix.SYS_IOCTL, 0, unix.TCXONC), eperm},
		{"ioctl TIOCNXCL", seccompOptions{}, seccompData(native, unix.SYS_IOCTL, 0, unix.TIOCNXCL), allow},
		{"ioctl TCSETS", seccompOptions{}, seccompData(native, unix.SYS_IOCTL, 0, unix.TCSETS), allow},
		{"ioctl TIOCGWINSZ", seccompOptions{}, seccompData(native, unix.SYS_IOCTL, 0, unix.TIOCGWINSZ), allow},
		{"socket unix", seccompOptions{}, seccompData(native, unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_STREAM, 0), allow},
		{"socket inet6", seccompOptions{}, seccompData(native, unix.SYS_SOCKET, unix.AF_INET6, unix.SOCK_DGRAM, 0), allow},
		{"socket vsock", seccompOptions{}, seccompData(native, unix.SYS_SOCKET, unix.AF_VSOCK, unix.SOCK_STREAM, 0), eperm},
		{"socket packet", seccompOptions{}, seccompData(native, unix.SYS_SOCKET, unix.AF_PACKET, unix.SOCK_RAW, 0), eperm},
		{"socket netlink route", seccompOptions{}, seccompData(native, unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE), allow},
		{"socket netlink audit", seccompOptions{}, seccompData(native, unix.SYS_SOCKET, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT), eperm},
		{"socket mptcp allowed", seccompOptions{}, seccompData(native, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_MPTCP), allow},
		{"socket mptcp denied", seccompOptions{DenyMPTCP: true}, seccompData(native, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_MPTCP), eperm},
		{"socket tcp with DenyMPTCP", seccompOptions{DenyMPTCP: true}, seccompData(native, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM, 0), allow},
		{"socketpair unix", seccompOptions{}, seccompData(native, unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_STREAM, 0), allow},
		{"socketpair vsock", seccompOptions{}, seccompData(native, unix.SYS_SOCKETPAIR, unix.AF_VSOCK, unix.SOCK_STREAM, 0), eperm},
	}
	if x32Bit != 0 {
		cases = append(cases, struct {
			name string
			opts seccompOptions
			data []byte
			want uint32
		}{"x32 getpid", seccompOptions{}, seccompData(native, x32Bit|39), kill})
	}
	run := func(prog []bpf.Instruction, data []byte) uint32 {
		t.Helper()
		if _, err := bpf.Assemble(prog); err != nil {
			t.Fatal(err)
		}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		got, err := vm.Run(data)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(got)
	}
	base, err := seccompBaseInstructions()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		late, err := seccompLateInstructions(c.opts)
		if err != nil {
			t.Fatal(err)
		}
		// The kernel runs both parts, the latest installed first, and
		// keeps the answer of highest precedence: the lowest action as a
		// signed number (KILL_PROCESS is negative), the first on a tie.
		got := run(late, c.data)
		if b := run(base, c.data); int32(b&0xffff0000) < int32(got&0xffff0000) {
			got = b
		}
		if got != c.want {
			t.Errorf("%s: filter returned %#x, want %#x", c.name, got, c.want)
		}
	}
	// The init builds its mounts after the base part is installed.
	for _, nr := range lateDenied {
		if got := run(base, seccompData(native, uint32(nr))); got != allow {
			t.Errorf("the base part answers %#x to syscall %d, which the init makes after boot", got, nr)
		}
		late, _ := seccompLateInstructions(seccompOptions{})
		if got := run(late, seccompData(native, uint32(nr))); got != eperm {
			t.Errorf("the late part answers %#x to syscall %d", got, nr)
		}
	}
}
