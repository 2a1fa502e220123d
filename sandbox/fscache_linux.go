package sandbox

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// fsCache remembers lstat results and symlink resolutions for the length
// of one buildPlan. The plan reads the tree once per start (the init checks
// every mount source and target again with openat2), and without it the
// same ancestors (/home, ~, the project) were looked up component by
// component for every protected and denied path: about 45 lstat calls each
// per start.
type fsCache struct {
	st  map[string]lstatResult
	res map[string]resolved
	// Most protected and denied names do not exist, and many share a
	// directory (~, the project, ~/.config): after a few lookups in one
	// directory, its names are read once and a name not among them is
	// missing without a syscall. nil: not listed (too big, unreadable).
	asked map[string]int
	names map[string]map[string]bool
}

// listAfter is how many lookups in a directory make it worth listing;
// maxListed bounds the listing (a big home directory costs more to read
// than the lookups it saves).
const (
	listAfter = 4
	maxListed = 256
)

type lstatResult struct {
	fi  fs.FileInfo
	err error
}

type resolved struct {
	path string
	err  error
}

// errTooManyLinks matches filepath.EvalSymlinks's limit of 255 links.
var errTooManyLinks = errors.New("EvalSymlinks: too many links")

func newFSCache() *fsCache {
	return &fsCache{st: map[string]lstatResult{}, res: map[string]resolved{}, asked: map[string]int{}, names: map[string]map[string]bool{}}
}

// lstat is os.Lstat, remembered. A path whose parent is already known to
// be missing (~/Library/Keychains after ~/Library) is missing too, without
// asking the kernel again.
func (c *fsCache) lstat(p string) (fs.FileInfo, error) {
	if r, ok := c.st[p]; ok {
		return r.fi, r.err
	}
	if !filepath.IsAbs(p) || p != filepath.Clean(p) || p == "/" {
		fi, err := os.Lstat(p)
		c.st[p] = lstatResult{fi, err}
		return fi, err
	}
	if r, ok := c.st[filepath.Dir(p)]; ok && errors.Is(r.err, fs.ErrNotExist) {
		err := &fs.PathError{Op: "lstat", Path: p, Err: syscall.ENOENT}
		c.st[p] = lstatResult{nil, err}
		return nil, err
	}
	dir := filepath.Dir(p)
	names, listed := c.names[dir]
	if !listed {
		if c.asked[dir]++; c.asked[dir] >= listAfter {
			names = listNames(dir)
			c.names[dir] = names
		}
	}
	if names != nil && !names[filepath.Base(p)] {
		err := &fs.PathError{Op: "lstat", Path: p, Err: syscall.ENOENT}
		c.st[p] = lstatResult{nil, err}
		return nil, err
	}
	fi, err := os.Lstat(p)
	c.st[p] = lstatResult{fi, err}
	return fi, err
}

// listNames returns the names in directory dir, nil when it cannot be read
// or holds more than maxListed. O_DIRECTORY: a FIFO or device in its place
// must not block or be opened.
func listNames(dir string) map[string]bool {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	list, err := f.Readdirnames(maxListed + 1)
	if (err != nil && err != io.EOF) || len(list) > maxListed {
		return nil
	}
	names := make(map[string]bool, len(list))
	for _, n := range list {
		names[n] = true
	}
	return names
}

// evalSymlinks is filepath.EvalSymlinks, with the resolution of every
// prefix of an absolute path remembered.
func (c *fsCache) evalSymlinks(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return filepath.EvalSymlinks(p)
	}
	links := 0
	return c.resolve(filepath.Clean(p), &links)
}

// resolve resolves the clean absolute path p. Its parent is resolved
// first (and has no symlinks left), so a ".." in a link's target is
// lexical on it, as in filepath.EvalSymlinks.
func (c *fsCache) resolve(p string, links *int) (string, error) {
	if p == "/" {
		return p, nil
	}
	if r, ok := c.res[p]; ok {
		return r.path, r.err
	}
	dir, err := c.resolve(filepath.Dir(p), links)
	if err != nil {
		return "", err
	}
	full := filepath.Join(dir, filepath.Base(p))
	fi, err := c.lstat(full)
	if err != nil {
		c.res[p] = resolved{"", err}
		return "", err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		c.res[p] = resolved{full, nil}
		return full, nil
	}
	*links++
	if *links > 255 {
		// Not remembered: the count belongs to this resolution.
		return "", errTooManyLinks
	}
	t, err := os.Readlink(full)
	if err != nil {
		c.res[p] = resolved{"", err}
		return "", err
	}
	if !filepath.IsAbs(t) {
		t = filepath.Join(dir, t)
	}
	r, err := c.resolve(filepath.Clean(t), links)
	if !errors.Is(err, errTooManyLinks) {
		c.res[p] = resolved{r, err}
	}
	return r, err
}
