package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	// stage is where the init builds the new root. It is mounted over the
	// host's /tmp in the init's private mount namespace; the host never
	// sees it.
	stage   = "/tmp"
	newRoot = stage + "/root"
	// markerSource names the sandbox's /dev tmpfs. [Inside] looks for it
	// in /proc/self/mountinfo: a sandboxed process can neither unmount nor
	// hide it.
	markerSource = "fence-sandbox"
)

// stagedRoot is the part of the new root that does not depend on the
// policy: the staging tmpfs over /tmp, the host's / bound read-only at
// newRoot, and the sandbox's own /tmp, /dev and /proc on it. A warm init
// stages it while it waits for its client (bootState.stage).
type stagedRoot struct {
	// hostTmp is the host's /tmp (O_PATH), opened before the staging
	// tmpfs covered it: the policy's paths below it are opened through it.
	hostTmp int
	filled  bool     // newRoot holds the read-only host tree and its /tmp, /dev, /proc
	debug   []string // what -d says of it
}

// stageRoot makes / a slave mount (nothing the init mounts reaches the
// host) and mounts the staging tmpfs with newRoot in it, keeping the
// host's /tmp reachable.
func stageRoot() (*stagedRoot, error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return nil, failf("", "make / a slave mount: %w", err)
	}
	hostTmp, err := unix.Open(stage, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, failf("fence builds the sandbox's root over the host's /tmp, which must be a directory, not a symbolic link",
			"open the host's %s: %w", stage, err)
	}
	r := &stagedRoot{hostTmp: hostTmp}
	if err := unix.Mount("fence-stage", stage, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		return nil, failf("", "mount the staging tmpfs: %w", err)
	}
	// Unbindable: a recursive bind of a host tree that contains /tmp (/
	// itself, or /tmp as the working directory or an allowWrite entry)
	// skips the stage, instead of copying it, and the new root being
	// built in it, into the sandbox (where /tmp/root would be the host
	// without its protections and masks).
	if err := unix.Mount("", stage, "", unix.MS_UNBINDABLE, ""); err != nil {
		return nil, failf("", "make the staging tmpfs unbindable: %w", err)
	}
	if err := os.Mkdir(newRoot, 0o755); err != nil {
		return nil, failf("", "%w", err)
	}
	// Nothing can be bound from the stage: the empty file and directory
	// bound over masked paths live on a tmpfs of its own in it, read-only
	// for every mount of it (a bind is cheaper than a tmpfs per mask).
	masks := filepath.Dir(emptyFile)
	if err := os.Mkdir(masks, 0o755); err != nil {
		return nil, failf("", "%w", err)
	}
	if err := unix.Mount("fence-masks", masks, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=4k"); err != nil {
		return nil, failf("", "mount the masks' tmpfs: %w", err)
	}
	if err := os.WriteFile(emptyFile, nil, 0o444); err != nil {
		return nil, failf("", "%w", err)
	}
	if err := unix.Mkdir(emptyDir, 0o555); err != nil {
		return nil, failf("", "create %s: %w", emptyDir, err)
	}
	// Without MS_BIND: the tmpfs itself, not this mount, is read-only.
	if err := unix.Mount("", masks, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return nil, failf("", "make the masks' tmpfs read-only: %w", err)
	}
	return r, nil
}

// emptyFile and emptyDir are bound over masked files and directories.
const (
	emptyFile = stage + "/masks/empty"
	emptyDir  = stage + "/masks/dir"
)

// hostSource is a host path opened (O_PATH) before it is bound into the
// new root.
type hostSource struct {
	path string
	fd   int
	dir  bool
}

// open opens host path p, refusing symlinks anywhere on the way (see
// openExact). Paths under the host's /tmp are opened below it: the staging
// tmpfs covers them.
func (r *stagedRoot) open(p string) (hostSource, error) {
	dir, rel, resolve := unix.AT_FDCWD, p, uint64(0)
	if within(p, stage) {
		dir, rel, resolve = r.hostTmp, r.belowTmp(p), unix.RESOLVE_BENEATH
	}
	fd, isDir, err := openExact(dir, rel, resolve)
	if err != nil {
		return hostSource{}, fmt.Errorf("open %q: %w", p, err)
	}
	return hostSource{path: p, fd: fd, dir: isDir}, nil
}

// errSwapped is a symlink where fence resolved none: the plan's paths were
// resolved when it was made, so something changed the tree since (another
// session renaming a directory and putting a link in its place; ATTACKS.md
// F-21). A mount that followed it would protect the decoy and leave the
// real directory open once it is put back.
var errSwapped = errors.New("a symbolic link is on the way, where there was none when fence made its plan: something changed the tree while the sandbox was being set up")

// openExact opens p (relative to dir) as O_PATH without following a
// symlink anywhere, the last component included; resolve adds openat2
// flags. It also says whether p is a directory.
func openExact(dir int, p string, resolve uint64) (fd int, isDir bool, err error) {
	fd, err = unix.Openat2(dir, p, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: resolve | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ELOOP) {
		return -1, false, errSwapped
	}
	if err != nil {
		return -1, false, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, false, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		// O_NOFOLLOW|O_PATH opens a final symlink itself, and a bind
		// onto it would go through.
		unix.Close(fd)
		return -1, false, errSwapped
	case unix.S_IFDIR:
		isDir = true
	}
	return fd, isDir, nil
}

// bindExact binds the tree at src onto dst, both O_PATH descriptors from
// openExact: cloned detached (open_tree), made read-only there
// (mount_setattr) and attached (move_mount), so no path is looked up
// between the checks and the mount, and the read-only flag lands on this
// mount and no other. rec includes the mounts below src.
func bindExact(src, dst int, readOnly, rec bool) error {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_EMPTY_PATH)
	attrFlags := unix.AT_EMPTY_PATH
	if rec {
		flags |= unix.AT_RECURSIVE
		attrFlags |= unix.AT_RECURSIVE
	}
	tree, err := unix.OpenTree(src, "", flags)
	if errors.Is(err, unix.ENOSYS) {
		return bindByPath(src, dst, readOnly, rec)
	}
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	if readOnly {
		err := unix.MountSetattr(tree, "", uint(attrFlags), &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
		if errors.Is(err, unix.ENOSYS) {
			return bindByPath(src, dst, readOnly, rec)
		}
		if err != nil {
			return err
		}
	}
	return unix.MoveMount(tree, "", dst, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

// bindByPath is bindExact for kernels before 5.12 (no mount_setattr): the
// bind goes onto dst's dentry through /proc/self/fd, and the read-only
// remount onto the new mount, found again and checked to be the root of a
// mount of the same inode.
func bindByPath(src, dst int, readOnly, rec bool) error {
	flags := uintptr(unix.MS_BIND)
	if rec {
		flags |= unix.MS_REC
	}
	if err := unix.Mount(fdPath(src), fdPath(dst), "", flags, ""); err != nil {
		return err
	}
	if !readOnly {
		return nil
	}
	// A magic link names the dentry under the new mount: the mount's
	// root is reached by its path.
	path, err := os.Readlink(fdPath(dst))
	if err != nil {
		return err
	}
	top, _, err := openExact(unix.AT_FDCWD, path, 0)
	if err != nil {
		return err
	}
	defer unix.Close(top)
	var want, got unix.Statx_t
	if err := unix.Statx(src, "", unix.AT_EMPTY_PATH, unix.STATX_INO, &want); err != nil {
		return err
	}
	if err := unix.Statx(top, "", unix.AT_EMPTY_PATH, unix.STATX_INO, &got); err != nil {
		return err
	}
	if got.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && got.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 ||
		got.Ino != want.Ino || got.Dev_major != want.Dev_major || got.Dev_minor != want.Dev_minor {
		return errSwapped
	}
	return remountReadOnly(fdPath(top))
}

// openHost opens host path p as open(2) would, below the host's /tmp when
// p is there and r covered it; r may be nil (nothing staged yet).
func (r *stagedRoot) openHost(p string, flags int) (int, error) {
	if r != nil && within(p, stage) {
		return unix.Openat(r.hostTmp, r.belowTmp(p), flags, 0)
	}
	return unix.Open(p, flags, 0)
}

// belowTmp is p (below the host's /tmp) relative to it.
func (r *stagedRoot) belowTmp(p string) string {
	if rel := strings.TrimPrefix(strings.TrimPrefix(p, stage), "/"); rel != "" {
		return rel
	}
	return "."
}

// fill binds the host tree at newRoot, read-only, or writable from
// writableRoot (allowWrite = ["/"]; -1 for none), and mounts the sandbox's
// own /tmp, /dev and /proc on it. A tree filled before is detached first.
func (r *stagedRoot) fill(writableRoot int) error {
	if r.filled {
		if err := unix.Unmount(newRoot, unix.MNT_DETACH); err != nil {
			return failf("", "detach the staged root: %w", err)
		}
		r.filled, r.debug = false, nil
	}
	if err := unix.Mount("/", newRoot, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return failf("", "bind / into the new root: %w", err)
	}
	// One mount_setattr(AT_RECURSIVE) makes the whole tree read-only
	// (Linux 5.12+); older kernels get one remount per mount.
	err := unix.MountSetattr(unix.AT_FDCWD, newRoot, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	if err != nil {
		if err := remountTreeReadOnly(newRoot); err != nil {
			return failf("", "make the host read-only: %w", err)
		}
	}
	r.debug = append(r.debug, "mount: / read-only (recursive bind, every submount remounted ro)")

	// allowWrite = ["/"]: the host tree read-write, before the sandbox's
	// own /tmp, /dev and /proc go on top of it (a later bind of / would
	// hide them and expose the host's devices).
	if writableRoot >= 0 {
		if err := unix.Mount(fdPath(writableRoot), newRoot, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return failf("", "bind / writable: %w", err)
		}
		r.debug = append(r.debug, "mount: / writable (allowWrite)")
	}

	// Private /tmp.
	if err := unix.Mount("fence-tmp", newRoot+"/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return failf("", "mount the private /tmp: %w", err)
	}
	r.debug = append(r.debug, "mount: /tmp private tmpfs")
	if err := buildDev(); err != nil {
		return failf("", "build /dev: %w", err)
	}
	r.debug = append(r.debug, "mount: /dev minimal (null zero full random urandom tty, own devpts, shm)")
	if err := unix.Mount("proc", newRoot+"/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return failf("fence needs a fully visible /proc to mount its own; inside a container, run it with --privileged or without masked /proc paths",
			"mount /proc: %w", err)
	}
	r.debug = append(r.debug, "mount: /proc fresh for the pid namespace")
	// keyctl is denied, so the user's keys cannot be read or used inside,
	// but /proc/keys would list their names ("aws:prod-deploy-token") and
	// /proc/key-users how many there are: /dev/null goes over both.
	for _, f := range []string{"/proc/keys", "/proc/key-users"} {
		err := unix.Mount(newRoot+"/dev/null", newRoot+f, "", unix.MS_BIND, "")
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return failf("", "hide %s: %w", f, err)
		}
	}
	r.filled = true
	return nil
}

// buildRoot carries out the mount plan on r (staged now when nil) and
// pivots into the new root.
func buildRoot(st *initState, mp *mountPlan, r *stagedRoot) error {
	if r == nil {
		var err error
		if r, err = stageRoot(); err != nil {
			return err
		}
	}
	defer unix.Close(r.hostTmp)
	var expose, writable []hostSource
	for _, p := range mp.Expose {
		s, err := r.open(p)
		if err != nil {
			return failf("", "expose %v", err)
		}
		expose = append(expose, s)
	}
	writableRoot := -1
	for _, p := range mp.Writable {
		s, err := r.open(p)
		if err != nil {
			return failf("", "allowWrite %v", err)
		}
		if p == "/" {
			writableRoot = s.fd
			defer unix.Close(s.fd)
			continue
		}
		writable = append(writable, s)
	}
	var session []hostSource
	for _, p := range mp.Session {
		s, err := r.open(p)
		if err != nil {
			return failf("", "shell file %v", err)
		}
		session = append(session, s)
	}
	if !r.filled || writableRoot >= 0 {
		if err := r.fill(writableRoot); err != nil {
			return err
		}
	}
	st.debug = append(st.debug, r.debug...)

	bindFD := func(s hostSource, readOnly bool) error {
		target := newRoot + s.path
		if err := ensureTarget(target, s.dir); err != nil {
			return err
		}
		dst, _, err := openExact(unix.AT_FDCWD, target, 0)
		if err != nil {
			return fmt.Errorf("bind %q: %w", s.path, err)
		}
		defer unix.Close(dst)
		if err := bindExact(s.fd, dst, readOnly, true); err != nil {
			return fmt.Errorf("bind %q: %w", s.path, err)
		}
		return nil
	}
	for _, s := range expose {
		if err := bindFD(s, true); err != nil {
			return failf("", "%w", err)
		}
		st.debugf("mount: %s read-only (hidden by the private /tmp otherwise)", s.path)
	}
	for _, s := range writable {
		if err := bindFD(s, false); err != nil {
			return failf("", "%w", err)
		}
		st.debugf("mount: %s writable (allowWrite)", s.path)
	}
	for _, s := range append(expose, writable...) {
		unix.Close(s.fd)
	}
	protect := func(below []string) error {
		for _, p := range mp.Pins {
			if !withinAny(p, below) {
				continue
			}
			if err := selfBind(p, false, true); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue
				}
				return failf("", "pin %q: %w", p, err)
			}
			st.debugf("mount: %s pinned (mount point, cannot be renamed)", p)
		}
		for _, p := range mp.ReadOnly {
			if !withinAny(p, below) {
				continue
			}
			if err := selfBind(p, true, false); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue
				}
				return failf("", "protect %q: %w", p, err)
			}
			st.debugf("mount: %s read-only (protected)", p)
		}
		return nil
	}
	if err := protect([]string{"/"}); err != nil {
		return err
	}
	// The session's own shell files lie in the protected shell directory,
	// whose read-only bind just covered them: bind them again on top, and
	// what is protected below them once more on top of that.
	for _, s := range session {
		if err := bindFD(s, false); err != nil {
			return failf("", "%w", err)
		}
		unix.Close(s.fd)
		st.debugf("mount: %s writable (this shell's own, in the protected shell directory)", s.path)
	}
	if len(session) > 0 {
		if err := protect(mp.Session); err != nil {
			return err
		}
	}
	for _, m := range []struct {
		paths []string
		with  string
		what  string
	}{{mp.MaskDirs, emptyDir, "empty directory"}, {mp.MaskFiles, emptyFile, "empty file"}} {
		for _, p := range m.paths {
			if err := mask(p, m.with); err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue
				}
				return failf("", "mask %q: %w", p, err)
			}
			st.debugf("mount: %s masked (%s)", p, m.what)
		}
	}

	if err := unix.Chdir(newRoot); err != nil {
		return failf("", "%w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return failf("", "pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return failf("", "detach the old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return failf("", "%w", err)
	}
	return nil
}

// withinAny reports whether p is one of dirs or below one of them.
func withinAny(p string, dirs []string) bool {
	for _, d := range dirs {
		if within(p, d) {
			return true
		}
	}
	return false
}

// buildDev mounts a minimal /dev in the new root.
func buildDev() error {
	dev := newRoot + "/dev"
	if err := unix.Mount(markerSource, dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return err
	}
	for _, name := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		t := dev + "/" + name
		if err := os.WriteFile(t, nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+name, t, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", name, err)
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(dev+"/"+d, 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("devpts", dev+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620"); err != nil {
		return fmt.Errorf("mount devpts: %w", err)
	}
	if err := unix.Mount("fence-shm", dev+"/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	for link, target := range map[string]string{
		"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
	} {
		if err := os.Symlink(target, dev+"/"+link); err != nil {
			return err
		}
	}
	return unix.Mount("", dev, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, "")
}

// selfBind binds a path of the new root onto itself, read-only or not;
// rec keeps the mounts below it.
func selfBind(p string, readOnly, rec bool) error {
	fd, _, err := openExact(unix.AT_FDCWD, newRoot+p, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return bindExact(fd, fd, readOnly, rec)
}

// mask binds with (the empty directory or file) over path p of the new
// root, onto the dentry openExact found.
func mask(p, with string) error {
	fd, _, err := openExact(unix.AT_FDCWD, newRoot+p, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Mount(with, fdPath(fd), "", unix.MS_BIND, "")
}

// ensureTarget creates a mount point in the new root when it is missing
// (only possible on the sandbox's own tmpfs mounts).
func ensureTarget(target string, dir bool) error {
	if _, err := os.Lstat(target); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("create mount point %q: %w", target, err)
	}
	if dir {
		return os.Mkdir(target, 0o755)
	}
	return os.WriteFile(target, nil, 0o644)
}

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// remountReadOnly makes the mount at target read-only, keeping the flags
// the kernel locks for mounts inherited from a more privileged namespace.
func remountReadOnly(target string) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(target, &sfs); err != nil {
		return err
	}
	flags := uintptr(unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY) | statfsToMount(sfs.Flags)
	return unix.Mount("", target, "", flags, "")
}

func statfsToMount(f int64) uintptr {
	var m uintptr
	for _, b := range []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if f&b.st != 0 {
			m |= b.ms
		}
	}
	return m
}

// remountTreeReadOnly remounts every mount at or below root read-only.
func remountTreeReadOnly(root string) error {
	entries, err := readMountinfo("self")
	if err != nil {
		return err
	}
	for _, e := range entries {
		point := unescapeMountinfo(e.Point)
		if !within(point, root) {
			continue
		}
		var flags uintptr
		for _, o := range strings.Split(e.Options, ",") {
			switch o {
			case "nosuid":
				flags |= unix.MS_NOSUID
			case "nodev":
				flags |= unix.MS_NODEV
			case "noexec":
				flags |= unix.MS_NOEXEC
			case "noatime":
				flags |= unix.MS_NOATIME
			case "nodiratime":
				flags |= unix.MS_NODIRATIME
			case "relatime":
				flags |= unix.MS_RELATIME
			}
		}
		err := unix.Mount("", point, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|flags, "")
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EACCES) {
			// A mount we cannot make read-only is a mount the command
			// could write: fail closed.
			return fmt.Errorf("remount %q read-only: %w", point, err)
		}
	}
	return nil
}

// loopbackUp brings up lo in the new network namespace; the kernel adds
// 127.0.0.1 and ::1 by itself.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
