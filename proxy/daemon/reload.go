package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/fence-dev/fence/proxy"
	"github.com/fence-dev/fence/sandbox"
)

// watchDirs maps the files and directories a session depends on to the
// directories to watch: a file's directory (editors replace files by
// renaming), a directory itself, and for a path that does not exist yet
// the nearest existing ancestor, so that creating it is noticed too.
func watchDirs(paths []string) []string {
	var out []string
	for _, p := range paths {
		if p == "" || !filepath.IsAbs(p) {
			continue
		}
		p = filepath.Clean(p)
		dir := p
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			dir = filepath.Dir(p)
		}
		for {
			if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
		if !slices.Contains(out, dir) {
			out = append(out, dir)
		}
	}
	slices.Sort(out)
	return out
}

// relevant reports whether a change of name can change a policy that
// depends on paths: name is one of them, inside one of them (a watched
// directory), or an ancestor of one (a missing directory being created).
// Other files in a watched directory (the project root is one, and the
// sandbox may write there) do not cause reloads.
func relevant(paths []string, name string) bool {
	name = filepath.Clean(name)
	for _, p := range paths {
		if name == p || strings.HasPrefix(name, p+"/") || strings.HasPrefix(p, name+"/") {
			return true
		}
	}
	return false
}

// setWatch makes s watch exactly the directories of paths.
func (d *daemon) setWatch(s *session, paths []string) error {
	dirs := watchDirs(paths)
	d.mu.Lock()
	defer d.mu.Unlock()
	if s.closed {
		return nil
	}
	// A new slice, never the old one's array: save copies the slice
	// under d.mu and encodes it after letting go.
	var abs []string
	for _, p := range paths {
		if filepath.IsAbs(p) {
			abs = append(abs, filepath.Clean(p))
		}
	}
	s.paths = abs
	var added []string
	for _, dir := range dirs {
		if slices.Contains(s.dirs, dir) {
			continue
		}
		if err := d.watchLocked(dir, s); err != nil {
			for _, a := range added {
				d.unwatchLocked(a, s)
			}
			return err
		}
		added = append(added, dir)
	}
	for _, dir := range s.dirs {
		if !slices.Contains(dirs, dir) {
			d.unwatchLocked(dir, s)
		}
	}
	s.dirs = dirs
	return nil
}

func (d *daemon) watchLocked(dir string, s *session) error {
	set := d.watched[dir]
	if set == nil {
		// A config that cannot be watched could not be tightened live:
		// the session does not start.
		if err := d.watcher.Add(dir); err != nil {
			err = fmt.Errorf("watch %q for config changes: %w", dir, err)
			if hint := sandbox.InotifyLimitHint(err); hint != "" {
				// The client prints the answer's text only.
				err = fmt.Errorf("%w (%s)", err, hint)
			}
			return err
		}
		set = map[*session]struct{}{}
		d.watched[dir] = set
	}
	set[s] = struct{}{}
	return nil
}

func (d *daemon) unwatchLocked(dir string, s *session) {
	set := d.watched[dir]
	if set == nil {
		return
	}
	delete(set, s)
	if len(set) == 0 {
		delete(d.watched, dir)
		d.watcher.Remove(dir)
	}
}

// watch turns file events into (debounced) reloads of the sessions that
// depend on the changed directory. On overflow every session reloads.
func (d *daemon) watch(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-d.watcher.Events:
			if !ok {
				return
			}
			d.mu.Lock()
			for _, dir := range []string{filepath.Dir(ev.Name), ev.Name} {
				for s := range d.watched[dir] {
					if relevant(s.paths, ev.Name) {
						d.scheduleLocked(s)
					}
				}
			}
			d.mu.Unlock()
		case err, ok := <-d.watcher.Errors:
			if !ok {
				return
			}
			d.opts.Log.Printf("watcher: %v", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				d.mu.Lock()
				for _, s := range d.sessions {
					d.scheduleLocked(s)
				}
				d.mu.Unlock()
			}
		}
	}
}

func (d *daemon) scheduleLocked(s *session) {
	if s.closed {
		return
	}
	if s.timer != nil {
		s.timer.Reset(d.opts.Debounce)
		return
	}
	s.timer = time.AfterFunc(d.opts.Debounce, func() { d.reload(s) })
}

// reload re-resolves s's policy. A resolver error keeps the rules in
// force and reports a config-error event; a loosening edit (Keep) keeps
// them and reports that `fence allow` is needed; anything else applies to
// the next connection.
func (d *daemon) reload(s *session) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	d.mu.Lock()
	closed := s.closed
	d.mu.Unlock()
	if closed {
		return
	}
	res, err := d.resolve(s.spec)
	if err != nil {
		d.opts.Log.Printf("session %s: reload: %v", s.id, err)
		d.emit(s, proxy.Event{Kind: proxy.KindConfigError, Detail: err.Error() + " (the previous policy stays in force)"})
		return
	}
	if werr := d.setWatch(s, res.Watch); werr != nil {
		d.opts.Log.Printf("session %s: %v", s.id, werr)
	}
	if res.Keep {
		d.mu.Lock()
		repeat := s.lastNotice == res.Notice
		s.lastNotice = res.Notice
		d.mu.Unlock()
		if !repeat {
			d.emit(s, proxy.Event{Kind: proxy.KindPending, Detail: res.Notice})
		}
		return
	}
	d.mu.Lock()
	s.lastNotice = ""
	d.mu.Unlock()
	old := s.px.Rules()
	if rulesEqual(old, res.Rules) {
		return
	}
	s.px.SetRules(res.Rules)
	d.save(s)
	d.opts.Log.Printf("session %s: network policy updated", s.id)
	d.emit(s, proxy.Event{Kind: proxy.KindPolicy, Detail: "network policy updated: " + diffRules(old, res.Rules)})
}

// diffRules describes what changed between two rule sets.
func diffRules(a, b proxy.Rules) string {
	var parts []string
	list := func(sign, what string, x, y []proxy.Pattern) {
		for _, p := range y {
			if !slices.Contains(x, p) {
				parts = append(parts, sign+what+" "+p.String())
			}
		}
	}
	list("+", "allow", a.Allow, b.Allow)
	list("-", "allow", b.Allow, a.Allow)
	list("+", "deny", a.Deny, b.Deny)
	list("-", "deny", b.Deny, a.Deny)
	for _, p := range b.LocalOutbound {
		if !slices.Contains(a.LocalOutbound, p) {
			parts = append(parts, fmt.Sprintf("+local-outbound %d", p))
		}
	}
	for _, p := range a.LocalOutbound {
		if !slices.Contains(b.LocalOutbound, p) {
			parts = append(parts, fmt.Sprintf("-local-outbound %d", p))
		}
	}
	if len(parts) == 0 {
		return "no visible change"
	}
	return strings.Join(parts, ", ")
}
