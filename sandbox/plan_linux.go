package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initConfig is everything the init needs, sent over the socketpair (never
// argv or the environment, which other processes could read).
type initConfig struct {
	Args       []string
	Dir        string
	Env        []string
	TTY        bool
	Rows, Cols uint16
	// PassStderr gives the command the init's stderr (the caller's) with
	// a TTY.
	PassStderr bool
	// PassStdout gives the command the init's stdout (the caller's) with a
	// TTY.
	PassStdout bool
	// StopToLeave: the command stopping itself ends the sandbox, and the
	// init reports its working directory (Spec.StopToLeave).
	StopToLeave bool

	Relay         string
	LocalOutbound []int
	Publish       []int

	Mounts        mountPlan
	Landlock      landlockPlan
	DenyMPTCP     bool
	AllowDegraded []string
	// Debug asks for the init's explanations (-d).
	Debug bool
	// T0 is when the client started the init (CLOCK_MONOTONIC ns).
	T0 int64
	// Umask is the client's, for the command (-1: unknown, keep the
	// init's). An adopted init inherited the daemon's.
	Umask int
}

// mountPlan is the filesystem view, computed outside from the policy and
// carried out by the init. Paths are absolute host paths; the init mounts
// each at the same path in the new root.
type mountPlan struct {
	// Expose are read-only binds of host paths that the private /tmp
	// would otherwise hide (the working directory, the project root, the
	// fence binary, when they live under /tmp).
	Expose []string
	// Writable are read-write binds (allowWrite).
	Writable []string
	// Pins are read-write self-binds of directories between a writable root
	// and a protected path: a mount point cannot be renamed (EBUSY), so the
	// protected path cannot be moved away with its parent (ATTACKS.md F-02).
	Pins []string
	// ReadOnly are read-only self-binds of protected paths and denyWrite
	// paths under writable roots.
	ReadOnly []string
	// Session are read-write binds inside a protected directory, made
	// after ReadOnly so that they stay writable: a fence shell's own
	// history in the shell directory (Policy.ShellWrite). The Pins and
	// ReadOnly below them are made again on top.
	Session []string
	// MaskDirs get an empty read-only directory, MaskFiles an empty read-only
	// file (denyRead, host control sockets, fence's own state).
	MaskDirs  []string
	MaskFiles []string
}

// watch is a protected path that did not exist at start: if something
// creates Name in Dir during the session, it is moved to the quarantine.
type watch struct {
	Dir, Name string
	Protected string // the protected path that made Name dangerous
	Reason    string
	// Link is the target of a protected symlink that existed at start:
	// if it is replaced, the replacement is quarantined and the link
	// restored (ATTACKS.md F-06).
	Link string
	// Keep, when not nil, makes the watch cover every name in Dir except
	// those in Keep (Name is then "*"): .git/modules, where any new
	// entry is a module whose config and hooks git will use.
	Keep map[string]bool
}

// plan is the client's half of a session.
type plan struct {
	cfg     initConfig
	watches []watch
	notes   []string // for -d
	// starts are the directories whose repositories and tool files are
	// protected; the exit audit reads their indexes for new gitlinks.
	starts []string
	// knownGit are the .git entries of those directories at start, by
	// device and inode: the exit audit leaves them alone.
	knownGit map[[2]uint64]bool
	// hidden are the index entries of those repositories that git status
	// does not look at (assume-unchanged, skip-worktree) at start.
	hidden map[string]map[string]bool
}

// systemMasks are host control channels hidden from every sandbox
// (ATTACKS.md §U, §C-01): a read-only mount does not stop connect() on a
// unix socket, so they must be masked.
var systemMasks = []string{
	"/run/user", "/run/dbus", "/run/docker.sock", "/run/docker", "/run/podman", "/run/containerd",
	"/run/systemd/private", "/run/systemd/userdb", "/run/snapd.socket", "/run/snapd-snap.socket",
	"/run/avahi-daemon", "/run/cups", "/run/libvirt", "/run/lxd-installer.socket", "/run/screen",
	"/var/run/docker.sock", "/var/lib/docker", "/tmp/.X11-unix",
	// LXD and Incus keep their sockets outside /run: connecting is enough
	// for host root to a member of the lxd group (Ubuntu's first user).
	"/var/snap/lxd/common/lxd", "/var/snap/lxd/common/lxd-user", "/var/lib/lxd", "/var/lib/incus",
	"/var/snap/microk8s/common/run", "/var/snap/multipass/common/multipass_socket",
}

// homeMasks are control channels in the home directory, hidden like
// systemMasks (red team of the eleventh session): the sockets of Docker
// Desktop, Rancher Desktop, colima, lima and podman machine (each a
// container engine: host root in practice), and password managers' SSH
// agents.
var homeMasks = []string{
	".docker/run", ".docker/desktop", ".rd", ".colima", ".lima",
	".local/share/containers/podman/machine",
	".1password", ".bitwarden-ssh-agent.sock",
}

// runSockets finds the unix sockets under /run (and /var/run when it is
// not a link to /run) and returns what hides them: the directory holding
// each socket, or the socket itself when it lies directly in /run. A
// read-only mount does not stop connect(), and a socket there is a service
// of the host (a database, systemd-resolved's varlink DNS, a container
// engine) that no list of names can keep up with. A directory the user
// cannot list is hidden whole: a socket in it is reachable by name (red
// team of the eleventh session: a socket in a 0711 directory). Where one
// directory below /run would need more than a few masks (another user can
// make thousands of directories in /run/lock, and each mask travels to the
// init: the message grew too large and no sandbox started), that directory
// is hidden instead. /var/tmp, which the sandbox shares with the host, is
// looked at two levels deep, and there only the sockets are hidden (a
// project may live in /var/tmp), or /var/tmp whole past a few. The walk
// goes six levels deep and visits at most walkSocketsMax entries.
func runSockets() []string {
	var out []string
	seen := map[string]bool{}
	byTop := map[string][]string{}
	visited := 0
	var walk func(top, dir string, depth, maxDepth int, sockets bool)
	walk = func(top, dir string, depth, maxDepth int, sockets bool) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) && dir != top {
				addMask(byTop, top, dir)
			}
			return
		}
		for _, e := range ents {
			if visited++; visited > walkSocketsMax {
				return
			}
			p := filepath.Join(dir, e.Name())
			switch t := e.Type(); {
			case t&fs.ModeSocket != 0:
				if dir == top || sockets {
					addMask(byTop, top, p)
				} else {
					addMask(byTop, top, dir)
				}
			case t.IsDir() && p == "/run/user":
				// Masked whole (systemMasks).
			case t.IsDir() && depth < maxDepth:
				walk(top, p, depth+1, maxDepth, sockets)
			}
		}
	}
	walk("/run", "/run", 1, 6, false)
	if fi, err := os.Lstat("/var/run"); err == nil && fi.IsDir() {
		walk("/var/run", "/var/run", 1, 6, false)
	}
	walk("/var/tmp", "/var/tmp", 1, 2, true)
	tops := make([]string, 0, len(byTop))
	for t := range byTop {
		tops = append(tops, t)
	}
	sort.Strings(tops)
	for _, t := range tops {
		ms := byTop[t]
		if len(ms) > masksPerDir {
			ms = []string{t}
		}
		for _, m := range ms {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	return out
}

// walkSocketsMax bounds the entries runSockets visits; masksPerDir the
// masks one directory below the walk's root may need before it is hidden
// whole.
const (
	walkSocketsMax = 20000
	masksPerDir    = 16
)

// addMask records m, found below top, under the directory of top it lies
// in (/run/lock/a/b under /run/lock), m itself when it lies directly in
// top; below /var/tmp, which anyone can fill, under /var/tmp.
func addMask(byTop map[string][]string, top, m string) {
	if top == "/var/tmp" {
		byTop[top] = append(byTop[top], m)
		return
	}
	rel, err := filepath.Rel(top, m)
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(rel, "/")
	key := filepath.Join(top, first)
	byTop[key] = append(byTop[key], m)
}

// buildPlan turns spec into the init's configuration and the client's
// watches. It reads the filesystem (lstat, git metadata) but changes
// nothing.
func buildPlan(spec *Spec, exe string) (*plan, error) {
	pol := spec.Policy
	pl := &plan{}
	fc := newFSCache()
	// The walk of /run does not depend on the policy: it runs beside the
	// rest of the plan (a fifth of it, on a machine with 20 directories
	// there).
	sockets := make(chan []string, 1)
	go func() { sockets <- runSockets() }()
	home, _ := lookupEnv(spec.Env, "HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	if home != "" {
		if r, err := fc.evalSymlinks(home); err == nil {
			home = r
		}
	}

	var writable []string
	for _, w := range pol.AllowWrite {
		w = filepath.Clean(w)
		if within(w, "/proc") || within(w, "/sys") || within(w, "/dev") {
			// The sandbox has its own /proc and /dev (its /dev/shm is
			// writable); the host's must never be writable from inside.
			pl.notes = append(pl.notes, fmt.Sprintf("allowWrite %s: the sandbox has its own /proc, /sys and /dev, skipped", w))
			continue
		}
		if _, err := fc.lstat(w); err != nil {
			pl.notes = append(pl.notes, fmt.Sprintf("allowWrite %s: does not exist, skipped", w))
			continue
		}
		writable = append(writable, w)
	}
	// A fence shell's own history lies inside the protected shell
	// directory: it is bound after the protections (mountPlan.Session).
	var session []string
	for _, w := range ShellWritable(pol) {
		if _, err := fc.lstat(w); err != nil {
			pl.notes = append(pl.notes, fmt.Sprintf("shell file %s: does not exist, skipped", w))
			continue
		}
		session = append(session, w)
	}
	session = dedupeStrings(session)
	sortByDepth(session)
	pl.cfg.Mounts.Session = session
	for _, w := range dedupeStrings(writable) {
		if !slices.Contains(session, w) {
			pl.cfg.Mounts.Writable = append(pl.cfg.Mounts.Writable, w)
		}
	}
	sortByDepth(pl.cfg.Mounts.Writable)
	writable = dedupeStrings(append(writable, session...))
	sortByDepth(writable)
	rootOf := func(p string) string {
		best := ""
		for _, w := range writable {
			if within(p, w) && len(w) > len(best) {
				best = w
			}
		}
		return best
	}

	// Protections are computed for every writable root and also for the
	// project root and the working directory, which may lie below a
	// writable root (allowWrite = ["~"] with the project in ~/src/x): the
	// repository and tool files there are what the session is about.
	// Paths that end up outside every writable root cost nothing.
	starts := append([]string{}, writable...)
	for _, d := range []string{spec.Dir, pol.Root} {
		if d == "" {
			continue
		}
		if r, err := fc.evalSymlinks(d); err == nil {
			d = r
		}
		if rootOf(d) != "" {
			starts = append(starts, d)
		}
	}
	// Repositories below a writable root (allowWrite = ["~"], a folder of
	// projects, vendored repositories) get the same protection as the
	// project's own (red team B14).
	repos, truncated := reposBelow(writable)
	starts = append(starts, repos...)
	if len(repos) > 0 {
		pl.notes = append(pl.notes, fmt.Sprintf("%d repositories below the writable paths are protected like the project's", len(repos)))
	}
	if truncated != "" {
		pl.notes = append(pl.notes, "the search for repositories below the writable paths stopped early ("+truncated+"); repositories it did not reach have writable hooks and config")
	}
	starts = dedupeStrings(starts)
	pl.starts = starts
	pl.knownGit = map[[2]uint64]bool{}
	pl.hidden = map[string]map[string]bool{}
	for _, d := range starts {
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(d, ".git"), &st) == nil {
			pl.knownGit[[2]uint64{st.Dev, st.Ino}] = true
			// An index that cannot be read (the sandbox of an earlier
			// session can break it) hides nothing known: the exit
			// audit reports it, and git does not work with it either.
			var err error
			if pl.hidden[d], err = hiddenEntries(d); err != nil {
				pl.notes = append(pl.notes, fmt.Sprintf("the git index in %s cannot be read: %v", d, err))
			}
		}
	}
	pwrite := pol
	pwrite.AllowWrite = starts
	protected := ResolveProtected(pwrite, home, exe)
	protected = append(protected, envProtected(spec.Env)...)
	for _, d := range starts {
		for _, f := range envrcSources(filepath.Join(d, ".envrc")) {
			protected = append(protected, ProtectedPath{Path: f, Reason: "loaded by .envrc"})
		}
	}
	gp, modules := gitProtected(starts, pol.AllowGitConfig, home)
	protected = append(protected, gp...)
	protected = append(protected, globalHooksPaths(home)...)
	if home != "" {
		globals := []string{filepath.Join(home, ".gitconfig"), filepath.Join(home, ".config", "git", "config")}
		if c, ok := lookupEnv(spec.Env, "XDG_CONFIG_HOME"); ok && filepath.IsAbs(c) {
			globals = append(globals, filepath.Join(c, "git", "config"))
		}
		for _, g := range globals {
			for _, inc := range gitIncludes(g, home) {
				protected = append(protected, ProtectedPath{Path: inc, Reason: "git configuration (included by the global config)"})
			}
		}
	}
	for _, d := range pol.DenyWrite {
		protected = append(protected, ProtectedPath{Path: filepath.Clean(d), Dir: true, Reason: "denyWrite"})
	}
	protected = dedupe(protected)

	pins := map[string]bool{}
	addPins := func(root, below string) {
		// every directory strictly between root and below, and below itself
		for d := below; d != root && within(d, root); d = filepath.Dir(d) {
			pins[d] = true
		}
	}
	var readOnly []string
	for _, pp := range protected {
		fi, err := fc.lstat(pp.Path)
		if err == nil && fi.Mode().IsRegular() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
				return nil, &linkError{path: pp.Path, links: int(st.Nlink), reason: pp.Reason}
			}
		}
		root := rootOf(pp.Path)
		if root == "" {
			continue // read-only anyway
		}
		switch {
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			// Protect what it points to; the link itself lives in a
			// writable directory and is watched like a missing path.
			if t, err := fc.evalSymlinks(pp.Path); err == nil && rootOf(t) != "" {
				if tfi, err := fc.lstat(t); err == nil && tfi.Mode().IsRegular() {
					if st, ok := tfi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
						return nil, &linkError{path: t, links: int(st.Nlink), reason: pp.Reason}
					}
				}
				readOnly = append(readOnly, t)
				if r := rootOf(t); r != t {
					addPins(r, filepath.Dir(t))
				}
			}
			link, _ := os.Readlink(pp.Path)
			pl.watches = append(pl.watches, watch{Dir: filepath.Dir(pp.Path), Name: filepath.Base(pp.Path), Protected: pp.Path, Reason: pp.Reason, Link: link})
			if parent := filepath.Dir(pp.Path); parent != root {
				addPins(root, parent)
			}
			// Every other symlink the resolution goes through (.envrc ->
			// config/envrc with config -> conf2) re-points the path as
			// well as the link itself (red team B11c).
			for _, l := range linksOnPath(pp.Path) {
				lr := rootOf(l)
				if l == pp.Path || lr == "" {
					continue
				}
				text, err := os.Readlink(l)
				if err != nil {
					continue
				}
				pl.watches = append(pl.watches, watch{Dir: filepath.Dir(l), Name: filepath.Base(l), Protected: pp.Path, Reason: pp.Reason + ", through a symlink", Link: text})
				if parent := filepath.Dir(l); parent != lr {
					addPins(lr, parent)
				}
			}
		case err == nil:
			readOnly = append(readOnly, pp.Path)
			if parent := filepath.Dir(pp.Path); pp.Path != root && parent != root {
				addPins(root, parent)
			}
		case errors.Is(err, fs.ErrNotExist):
			m := firstMissing(fc, pp.Path, root)
			if m == "" {
				continue
			}
			parent := filepath.Dir(m)
			pl.watches = append(pl.watches, watch{Dir: parent, Name: filepath.Base(m), Protected: pp.Path, Reason: pp.Reason})
			if parent != root {
				addPins(root, parent)
			}
		}
	}
	// A mask moves with its dentry: renaming a denied path's parent would
	// give the next session the file under a new name (red team B25). Pin
	// the directories between a writable root and each denied path, as
	// for protected paths.
	for _, d := range pol.DenyRead {
		d = filepath.Clean(d)
		if r, err := fc.evalSymlinks(filepath.Dir(d)); err == nil {
			d = filepath.Join(r, filepath.Base(d))
		}
		if root := rootOf(d); root != "" && d != root {
			if parent := filepath.Dir(d); parent != root {
				addPins(root, parent)
			}
		}
	}
	// A new entry in an existing .git/modules is a new module (red team
	// B2); a missing .git/modules is a protected path of gitProtected.
	for _, m := range modules {
		root := rootOf(m)
		if root == "" {
			continue
		}
		keep := map[string]bool{}
		ents, err := os.ReadDir(m)
		if err != nil {
			continue
		}
		for _, e := range ents {
			keep[e.Name()] = true
		}
		pl.watches = append(pl.watches, watch{Dir: m, Name: "*", Protected: m, Reason: "git submodule metadata", Keep: keep})
		addPins(root, m)
	}
	for p := range pins {
		if fi, err := fc.lstat(p); err == nil && fi.IsDir() {
			pl.cfg.Mounts.Pins = append(pl.cfg.Mounts.Pins, p)
		}
	}
	sortByDepth(pl.cfg.Mounts.Pins)
	readOnly = dedupeStrings(readOnly)
	sortByDepth(readOnly)
	pl.cfg.Mounts.ReadOnly = readOnly
	pl.watches = dedupeWatches(pl.watches)

	// Masks: denyRead, host control channels, fence's own state.
	masks := append([]string{}, pol.DenyRead...)
	denied := map[string]bool{}
	for _, d := range pol.DenyRead {
		denied[filepath.Clean(d)] = true
	}
	masks = append(masks, systemMasks...)
	// The home's are names a sandbox that can write the home can make a
	// link at (~/.lima -> /usr): such a link is not followed, or the next
	// session would hide what it points to (red team of the eleventh
	// session).
	inHome := map[string]bool{}
	if home != "" {
		for _, m := range homeMasks {
			inHome[filepath.Join(home, m)] = true
			masks = append(masks, filepath.Join(home, m))
		}
	}
	masks = append(masks, <-sockets...)
	masks = append(masks, pol.StateDirs...)
	if rt, ok := lookupEnv(spec.Env, "XDG_RUNTIME_DIR"); ok && filepath.IsAbs(rt) {
		masks = append(masks, rt)
	}
	for _, m := range dedupeStrings(masks) {
		m = filepath.Clean(m)
		isDenied := denied[m]
		fi, err := fc.lstat(m)
		if err != nil {
			continue
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if inHome[m] {
				continue
			}
			// Mask what it points to; the link itself stays readable.
			t, err := fc.evalSymlinks(m)
			if err != nil {
				continue
			}
			if fi, err = fc.lstat(t); err != nil {
				continue
			}
			m = t
		}
		if isDenied {
			if err := deniedLinks(m, fi); err != nil {
				return nil, err
			}
		}
		if within(spec.Dir, m) && fi.IsDir() {
			return nil, fmt.Errorf("working directory %q is inside %q, which the sandbox hides (denyRead or fence state)", spec.Dir, m)
		}
		if fi.IsDir() {
			pl.cfg.Mounts.MaskDirs = append(pl.cfg.Mounts.MaskDirs, m)
		} else {
			pl.cfg.Mounts.MaskFiles = append(pl.cfg.Mounts.MaskFiles, m)
		}
	}
	sortByDepth(pl.cfg.Mounts.MaskDirs)
	sortByDepth(pl.cfg.Mounts.MaskFiles)

	// What the private /tmp would hide but the session needs to see.
	for _, p := range []string{spec.Dir, pol.Root, exe} {
		if r, err := fc.evalSymlinks(p); err == nil {
			p = r // the init refuses symlinks on the way
		}
		if p == "" || !within(p, "/tmp") {
			continue
		}
		switch rootOf(p) {
		case "":
			pl.cfg.Mounts.Expose = append(pl.cfg.Mounts.Expose, p)
		case "/":
			// allowWrite = ["/"]: the host's / is bound writable, but
			// the private /tmp goes on top of it.
			if !slices.Contains(pl.cfg.Mounts.Writable, p) {
				pl.cfg.Mounts.Writable = append(slices.Clip(pl.cfg.Mounts.Writable), p)
			}
		}
	}
	pl.cfg.Mounts.Expose = dedupeStrings(pl.cfg.Mounts.Expose)
	sortByDepth(pl.cfg.Mounts.Expose)
	sortByDepth(pl.cfg.Mounts.Writable)

	// Landlock: writes only under the writable roots, /tmp and /dev.
	ll := landlockPlan{RestrictBind: !pol.AllowLocalBinding, BindPorts: pol.Publish}
	for _, w := range writable {
		fi, err := os.Stat(w)
		if err != nil {
			continue
		}
		ll.Writable = append(ll.Writable, landlockRule{Path: w, File: !fi.IsDir()})
	}
	ll.Writable = append(ll.Writable, landlockRule{Path: "/tmp"}, landlockRule{Path: "/dev"})
	pl.cfg.Landlock = ll
	pl.cfg.DenyMPTCP = !pol.AllowLocalBinding
	return pl, nil
}

// deniedLinks refuses a denied file with more than one hard link: the
// other name reads it unmasked (red team B6). For a directory it checks
// the regular files inside, up to a bound, since a big tree (a browser
// profile) must not slow every start.
func deniedLinks(m string, fi fs.FileInfo) error {
	check := func(p string, fi fs.FileInfo) error {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			return &linkError{path: p, links: int(st.Nlink), reason: "denyRead"}
		}
		return nil
	}
	if !fi.IsDir() {
		return check(m, fi)
	}
	n := 0
	var found error
	filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
		if n++; err != nil || n > 2000 || found != nil {
			return filepath.SkipAll
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				found = check(p, fi)
			}
		}
		return nil
	})
	return found
}

// linkError refuses a protected file with more than one hard link: a write
// through another name would change it (ATTACKS.md F-03).
type linkError struct {
	path   string
	links  int
	reason string
}

func (e *linkError) Error() string {
	return fmt.Sprintf("protected file %q (%s) has %d hard links; another name could be used to change it", e.path, e.reason, e.links)
}

// Hint says how to break the link.
func (e *linkError) Hint() string {
	return fmt.Sprintf("find the other names with: find / -xdev -samefile %q; then give %q its own copy: cp -p %q %q.tmp && mv %q.tmp %q",
		e.path, e.path, e.path, e.path, e.path, e.path)
}

// gitProtected returns the git metadata of every repository that a
// writable root is in or is (walking up from each root, ATTACKS.md F-18),
// following .git files (linked worktrees, submodules) and commondir to the
// real metadata directories (F-09, F-11).
//
// It also returns the existing .git/modules directories: a new entry there
// is a new module, watched by the caller. A missing .git/modules is itself
// protected (red team B2).
func gitProtected(writable []string, allowGitConfig bool, home string) ([]ProtectedPath, []string) {
	var out []ProtectedPath
	var modules []string
	seen := map[string]bool{}
	for _, w := range writable {
		for d := w; ; d = filepath.Dir(d) {
			if seen[d] {
				break
			}
			seen[d] = true
			dotgit := filepath.Join(d, ".git")
			fi, err := os.Lstat(dotgit)
			if err == nil {
				var gitdirs []string
				if fi.Mode().IsRegular() {
					// A .git file: "gitdir: PATH". The file itself must not change.
					out = append(out, ProtectedPath{Path: dotgit, Reason: "git directory pointer"})
					if b, err := readFollowed(dotgit); err == nil {
						if s, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:"); ok {
							g := strings.TrimSpace(s)
							if !filepath.IsAbs(g) {
								g = filepath.Join(d, g)
							}
							if r, err := filepath.EvalSymlinks(g); err == nil {
								gitdirs = append(gitdirs, r)
							}
						}
					}
				} else if fi.IsDir() {
					gitdirs = append(gitdirs, dotgit)
				}
				for i := 0; i < len(gitdirs) && i < 4; i++ {
					g := gitdirs[i]
					if b, err := readFollowed(filepath.Join(g, "commondir")); err == nil {
						c := strings.TrimSpace(string(b))
						if !filepath.IsAbs(c) {
							c = filepath.Join(g, c)
						}
						if r, err := filepath.EvalSymlinks(c); err == nil && r != g {
							gitdirs = append(gitdirs, r)
						}
					}
				}
				// Submodules' .git files point at their metadata; a
				// rewritten pointer would send the host's git elsewhere
				// (ATTACKS.md F-11).
				for _, sub := range submodulePaths(filepath.Join(d, ".gitmodules")) {
					out = append(out, ProtectedPath{Path: filepath.Join(d, sub, ".git"), Reason: "git directory pointer"})
				}
				for _, g := range gitdirs {
					for _, n := range []struct {
						name string
						dir  bool
						cfg  bool
					}{
						{"hooks", true, false}, {"config", false, true}, {"config.worktree", false, true},
						{"info", true, false}, {"commondir", false, false}, {"gitdir", false, false},
						{"worktrees", true, false},
					} {
						if n.cfg && allowGitConfig {
							continue
						}
						out = append(out, ProtectedPath{Path: filepath.Join(g, n.name), Dir: n.dir, Reason: "git metadata"})
					}
					// Files the config includes are configuration too
					// (red team B9), also when they do not exist yet.
					if !allowGitConfig {
						for _, inc := range gitIncludes(filepath.Join(g, "config"), home) {
							out = append(out, ProtectedPath{Path: inc, Reason: "git configuration (included)"})
						}
					}
					md := filepath.Join(g, "modules")
					if fi, err := os.Lstat(md); err == nil && fi.IsDir() {
						modules = append(modules, md)
					} else if errors.Is(err, fs.ErrNotExist) {
						out = append(out, ProtectedPath{Path: md, Dir: true, Reason: "git submodule metadata"})
					}
					mods, _ := filepath.Glob(filepath.Join(escapeGlob(g), "modules", "*"))
					for _, m := range mods {
						out = append(out, ProtectedPath{Path: filepath.Join(m, "hooks"), Dir: true, Reason: "git hooks"},
							ProtectedPath{Path: filepath.Join(m, "config"), Reason: "git metadata"})
					}
				}
			}
			if d == "/" || d == filepath.Dir(d) {
				break
			}
		}
	}
	return out, dedupeStrings(modules)
}

// Limits of the search for repositories below the writable roots: it runs
// at every start, so it is bounded; what it does not reach is said in -d.
const (
	repoSearchDepth   = 6
	repoSearchEntries = 20000
	repoSearchRepos   = 256
	repoSearchTime    = 15 * time.Millisecond
)

// repoSearchSkip are directories the search does not enter: dependency
// trees and caches, big and holding no repository the user works in.
var repoSearchSkip = map[string]bool{
	".git": true, "node_modules": true, ".cache": true, ".npm": true, ".rustup": true, ".cargo": true,
	".m2": true, ".gradle": true, ".venv": true, "venv": true, "__pycache__": true,
}

// sandboxOwn are the host directories a writable root can hold that the
// session still cannot change: the sandbox mounts its own /tmp, /dev and
// /proc over them, and sysfs lets nothing be created. Below allowWrite =
// ["/"] the searches for repositories, at the start and in the exit
// audit, skip them: a change in the host's /tmp during the session
// (another program's) is none of the session's, and the thousands of
// entries of the host's /dev and /proc would spend the searches' time
// that the directories the session can change need. A writable path
// inside one of them is a root of its own (bound over the sandbox's),
// searched as such.
var sandboxOwn = map[string]bool{"/tmp": true, "/dev": true, "/proc": true, "/sys": true}

// reposBelow returns the directories holding a .git (directory or file)
// strictly below the writable roots, and why the search stopped early
// ("" when it did not). It does not descend into [repoSearchSkip] (nor
// ~/go/pkg, the Go module cache), [sandboxOwn] or symlinks.
func reposBelow(roots []string) ([]string, string) {
	var out []string
	entries := 0
	truncated := ""
	deadline := time.Now().Add(repoSearchTime)
	for _, root := range roots {
		fi, err := os.Stat(root)
		if err != nil || !fi.IsDir() {
			continue
		}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if truncated != "" {
				return filepath.SkipAll
			}
			if err != nil {
				return nil
			}
			if entries++; entries > repoSearchEntries {
				truncated = fmt.Sprintf("more than %d entries", repoSearchEntries)
				return filepath.SkipAll
			}
			if entries%64 == 0 && time.Now().After(deadline) {
				truncated = fmt.Sprintf("more than %v", repoSearchTime)
				return filepath.SkipAll
			}
			if !d.IsDir() {
				return nil
			}
			name := d.Name()
			if p != root && (repoSearchSkip[name] || sandboxOwn[p] || (name == "pkg" && filepath.Base(filepath.Dir(p)) == "go")) {
				return filepath.SkipDir
			}
			rel, _ := filepath.Rel(root, p)
			if p != root {
				if _, err := os.Lstat(filepath.Join(p, ".git")); err == nil {
					if len(out) >= repoSearchRepos {
						truncated = fmt.Sprintf("more than %d repositories", repoSearchRepos)
						return filepath.SkipAll
					}
					out = append(out, p)
				}
			}
			if p != root && strings.Count(rel, string(filepath.Separator))+1 >= repoSearchDepth {
				return filepath.SkipDir
			}
			return nil
		})
	}
	return out, truncated
}

// envProtected returns the startup files that the environment moves
// away from their home-relative places (red team B26): zsh's files under
// $ZDOTDIR, and git's, fish's and systemd's configuration (and the rest
// of the .config entries of the protected list) under $XDG_CONFIG_HOME.
func envProtected(env []string) []ProtectedPath {
	var out []ProtectedPath
	if z, ok := lookupEnv(env, "ZDOTDIR"); ok && filepath.IsAbs(z) {
		for _, n := range []string{".zshrc", ".zshenv", ".zprofile", ".zlogin", ".zlogout"} {
			out = append(out, ProtectedPath{Path: filepath.Join(filepath.Clean(z), n), Reason: "shell startup file"})
		}
	}
	if c, ok := lookupEnv(env, "XDG_CONFIG_HOME"); ok && filepath.IsAbs(c) {
		for _, n := range homeProtected {
			if rel, ok := strings.CutPrefix(n.Name, ".config/"); ok {
				out = append(out, ProtectedPath{Path: filepath.Join(filepath.Clean(c), filepath.FromSlash(rel)), Dir: n.Dir, Reason: n.Reason})
			}
		}
	}
	return out
}

// gitIncludes returns the files a git config file includes ([include]
// and [includeIf ...] path = X), resolved like git: "~/" is the home,
// relative paths are relative to the including file's directory. It
// follows includes of includes (a few levels).
func gitIncludes(config, home string) []string {
	var out []string
	seen := map[string]bool{config: true}
	queue := []string{config}
	for len(queue) > 0 && len(seen) < 32 {
		f := queue[0]
		queue = queue[1:]
		b, err := readFollowed(f)
		if err != nil {
			continue
		}
		section := ""
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "[") {
				section = ""
				if f := strings.Fields(strings.Trim(line, "[]")); len(f) > 0 {
					section = strings.ToLower(f[0])
				}
				continue
			}
			if section != "include" && section != "includeif" {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "path") {
				continue
			}
			v = strings.Trim(strings.TrimSpace(v), `"`)
			switch {
			case v == "":
				continue
			case strings.HasPrefix(v, "~/"):
				if home == "" {
					continue
				}
				v = filepath.Join(home, v[2:])
			case !filepath.IsAbs(v):
				v = filepath.Join(filepath.Dir(f), v)
			}
			v = filepath.Clean(v)
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
				queue = append(queue, v)
			}
		}
	}
	return out
}

// envrcSources returns the files an .envrc loads when direnv runs it
// (red team B12): source_env[_if_exists] (a directory means its .envrc),
// dotenv[_if_exists] (.env by default), watch_file, source and ".", and
// the nix files of "use flake" and "use nix". Paths are relative to the
// .envrc's directory; "$" expansions are not followed.
func envrcSources(envrc string) []string {
	b, err := readFollowed(envrc)
	if err != nil {
		return nil
	}
	dir := filepath.Dir(envrc)
	var out []string
	add := func(p string) {
		p = strings.Trim(p, `"'`)
		if p == "" || strings.ContainsAny(p, "$`*?") {
			return
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		p = filepath.Clean(p)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			p = filepath.Join(p, ".envrc")
		}
		out = append(out, p)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimSpace(line))
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		args := f[1:]
		switch f[0] {
		case "source_env", "source_env_if_exists", "source", ".":
			if len(args) > 0 {
				add(args[0])
			}
		case "dotenv", "dotenv_if_exists":
			if len(args) == 0 {
				add(".env")
			} else {
				add(args[0])
			}
		case "watch_file":
			for _, a := range args {
				add(a)
			}
		case "use":
			if len(args) > 0 && args[0] == "flake" {
				add("flake.nix")
				add("flake.lock")
			}
			if len(args) > 0 && args[0] == "nix" {
				add("shell.nix")
				add("default.nix")
			}
		}
	}
	return out
}

// submodulePaths lists the "path = X" entries of a .gitmodules file.
func submodulePaths(file string) []string {
	b, err := readFollowed(file)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.TrimSpace(k) != "path" {
			continue
		}
		v = filepath.Clean(strings.Trim(strings.TrimSpace(v), `"`))
		if v != "." && !filepath.IsAbs(v) && !strings.HasPrefix(v, "..") {
			out = append(out, v)
		}
	}
	return out
}

// globalHooksPaths returns core.hooksPath from the user's global git
// configuration, resolved (ATTACKS.md F-12).
func globalHooksPaths(home string) []ProtectedPath {
	if home == "" {
		return nil
	}
	var out []ProtectedPath
	for _, f := range []string{filepath.Join(home, ".gitconfig"), filepath.Join(home, ".config", "git", "config")} {
		hp := gitHooksPath(f)
		if hp == "" {
			continue
		}
		if strings.HasPrefix(hp, "~/") {
			hp = filepath.Join(home, hp[2:])
		}
		if filepath.IsAbs(hp) {
			out = append(out, ProtectedPath{Path: filepath.Clean(hp), Dir: true, Reason: "git hooks (global core.hooksPath)"})
		}
	}
	return out
}

// linksOnPath returns the symlinks met, in order, while resolving p (at
// most 40, like the kernel).
func linksOnPath(p string) []string {
	var out []string
	cur := "/"
	rest := strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/")
	for len(rest) > 0 && len(out) < 40 {
		el := rest[0]
		rest = rest[1:]
		next := filepath.Join(cur, el) // cur has no symlinks: ".." is lexical
		fi, err := os.Lstat(next)
		if err != nil {
			return out
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		out = append(out, next)
		t, err := os.Readlink(next)
		if err != nil {
			return out
		}
		if filepath.IsAbs(t) {
			cur = "/"
		}
		rest = append(strings.Split(strings.Trim(filepath.Clean(t), "/"), "/"), rest...)
	}
	return out
}

// firstMissing returns the first component of p below root that does not
// exist ("" when p exists or is not below root).
func firstMissing(fc *fsCache, p, root string) string {
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return ""
	}
	cur := root
	for _, el := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, el)
		if _, err := fc.lstat(cur); err != nil {
			return cur
		}
	}
	return ""
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

func dedupeStrings(in []string) []string {
	sort.Strings(in)
	out := in[:0]
	for i, s := range in {
		if i == 0 || s != in[i-1] {
			out = append(out, s)
		}
	}
	return out
}

func dedupeWatches(in []watch) []watch {
	seen := map[string]bool{}
	out := in[:0]
	for _, w := range in {
		k := w.Dir + "\x00" + w.Name
		if !seen[k] {
			seen[k] = true
			out = append(out, w)
		}
	}
	return out
}

// sortByDepth orders paths parents first, so that a later mount never hides
// an earlier one below it.
func sortByDepth(p []string) {
	sort.SliceStable(p, func(i, j int) bool {
		di, dj := strings.Count(p[i], "/"), strings.Count(p[j], "/")
		if di != dj {
			return di < dj
		}
		return p[i] < p[j]
	})
}
