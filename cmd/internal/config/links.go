package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Symlinks on the way to an allowWrite path decide what the sandbox can
// write, and a symlink is something a sandbox (or a repository) can create:
// a session that may write "." can plant dist -> ~ where the next session's
// allowWrite names ./dist, and a repository can ship cache -> ../ next to
// allowWrite = ["./cache"], which `fence allow` would show as "+write
// cache". So Load refuses, with the entry's file:line:col, an allowWrite
// entry whose resolution goes through a symlink that
//
//   - lies below the directory of the file that wrote the entry (relative,
//     or naming a path below that directory) and leads out of it, or
//   - lies inside a path some allowWrite entry makes writable and leads out
//     of it (a sandbox could have planted it),
//
// instead of silently granting the link's target. Naming the target itself
// is always possible and shows in `fence allow` as what it is.

// linkHop is one symlink met resolving a path: where it is (its parent
// already resolved) and where it leads (resolved).
type linkHop struct{ at, target string }

// walkLinks resolves p through symlinks as [symlinkResolver] does, and
// lists the symlinks it went through.
func walkLinks(p string) (string, []linkHop) {
	segs := strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/")
	cur := "/"
	var hops []linkHop
	for i, s := range segs {
		if s == "" {
			continue
		}
		next := filepath.Join(cur, s)
		fi, err := os.Lstat(next)
		if err != nil {
			return filepath.Join(append([]string{cur}, segs[i:]...)...), hops
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		t, err := filepath.EvalSymlinks(next)
		if err != nil {
			// Dangling (or looping): where it would lead once its target
			// exists.
			l, err := os.Readlink(next)
			if err != nil {
				cur = next
				continue
			}
			if !filepath.IsAbs(l) {
				l = filepath.Join(cur, l)
			}
			t = symlinkResolver{}.resolve(filepath.Clean(l))
		}
		hops = append(hops, linkHop{at: next, target: t})
		cur = t
	}
	return cur, hops
}

// within reports whether p is base or under it.
func within(p, base string) bool {
	return p == base || base == "/" || strings.HasPrefix(p, base+"/")
}

// checkWriteLinks applies the rule above to the allowWrite entries of every
// layer (applied or not: a project config that would widen itself through
// a symlink is an error whether or not it is trusted yet).
func checkWriteLinks(layers []*fileRules) error {
	type entry struct {
		fr       *fileRules
		it       item
		path     string // the entry, or one path its glob matched
		resolved string
		hops     []linkHop
	}
	budget := maxGlobVisits
	var es []entry
	for _, fr := range layers {
		for _, it := range fr.AllowWrite {
			matches := []string{literalPath(it.Value)}
			if hasGlob(it.Value) {
				matches, _ = expandGlob(it.Value, &budget)
			}
			for _, m := range matches {
				r, hops := walkLinks(m)
				es = append(es, entry{fr, it, m, r, hops})
			}
		}
	}
	for _, e := range es {
		// Rule one, for entries a file wrote relative to its directory or
		// naming a path below it (a template's paths are the user's own:
		// its Dir is the extending file's).
		var dir string
		raw := e.it.Raw
		rel := raw != "" && !strings.HasPrefix(raw, "~") && !filepath.IsAbs(raw)
		if !strings.HasPrefix(e.fr.File, "template:") && (rel || within(e.path, e.fr.Dir)) {
			dir = symlinkResolver{}.resolve(e.fr.Dir)
		}
		for _, h := range e.hops {
			if dir != "" && h.at != dir && within(h.at, dir) && !within(h.target, dir) {
				return writeLinkError(e.fr, e.it, h, dir, "outside "+showPath(dir, "")+", the directory of the file naming it")
			}
			for _, w := range es {
				if h.at != w.resolved && within(h.at, w.resolved) && !within(h.target, w.resolved) {
					return writeLinkError(e.fr, e.it, h, dir, "outside the writable path "+showPath(w.resolved, dir)+", where a sandbox could have created the link")
				}
			}
		}
	}
	return nil
}

func writeLinkError(fr *fileRules, it item, h linkHop, dir, where string) *Error {
	file := fr.File
	if t, ok := strings.CutPrefix(file, "template:"); ok {
		file = "template " + t
	}
	raw := it.Raw
	if raw == "" {
		raw = it.Value
	}
	return &Error{File: file, Line: it.Line, Col: it.Col,
		Msg: fmt.Sprintf("allowWrite %q leads through the symlink %s to %s, %s",
			raw, showPath(h.at, dir), showPath(h.target, dir), where),
		Hint: "a symlink may not widen what allowWrite says: remove the link, or write its target itself in allowWrite if you mean to grant it"}
}
