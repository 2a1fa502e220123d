package sandbox

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fence-dev/fence/sandbox/sandboxtest"
)

// TestBindByPath runs the fallback of bindExact for kernels without
// mount_setattr (before 5.12), which this kernel would never take: in a
// user and mount namespace of its own (the test binary again, as
// bindHelper), a read-only bind of one directory onto another, and a
// writable one.
func TestBindByPath(t *testing.T) {
	if os.Getenv("FENCE_TEST_BIND_HELPER") == "1" {
		bindHelper(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBindByPath$", "-test.v")
	cmd.Env = append(os.Environ(), "FENCE_TEST_BIND_HELPER=1")
	cmd.SysProcAttr = userMountNS()
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			sandboxtest.Require(t, false, "no user namespace for the helper: "+err.Error())
		}
		t.Fatalf("helper: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// userMountNS starts a child in a user namespace of its own, as root
// there (the caller's uid and gid mapped), and a mount namespace.
func userMountNS() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
}

func bindHelper(t *testing.T) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp("", "fence-bind-")
	if err != nil {
		t.Fatal(err)
	}
	src, ro, rw := filepath.Join(base, "src"), filepath.Join(base, "ro"), filepath.Join(base, "rw")
	t.Cleanup(func() {
		// The mounts first: t.TempDir's removal would meet them.
		unix.Unmount(ro, unix.MNT_DETACH)
		unix.Unmount(rw, unix.MNT_DETACH)
		os.RemoveAll(base)
	})
	for _, d := range []string{src, ro, rw} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(p string) int {
		fd, _, err := openExact(unix.AT_FDCWD, p, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	s := open(src)
	if err := bindByPath(s, open(ro), true, false); err != nil {
		t.Fatalf("read-only bind: %v", err)
	}
	if err := bindByPath(s, open(rw), false, false); err != nil {
		t.Fatalf("writable bind: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(ro, "f")); err != nil || string(b) != "content" {
		t.Errorf("read through the read-only bind: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(ro, "g"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write through the read-only bind: %v, want EROFS", err)
	}
	if err := os.WriteFile(filepath.Join(rw, "g"), nil, 0o644); err != nil {
		t.Errorf("write through the writable bind: %v", err)
	}
	if err := os.WriteFile(filepath.Join(src, "h"), nil, 0o644); err != nil {
		t.Errorf("the source itself became read-only: %v", err)
	}
}
