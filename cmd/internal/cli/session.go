package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/sandbox"
)

// reportConfig prints what the user must see about a loaded policy (the
// loader's notices) and, with -d, where it came from. `fence --` and
// `fence shell` share it.
func reportConfig(stdio Stdio, res *config.Resolved, debug bool) {
	for _, n := range res.Notices {
		fmt.Fprintf(stdio.Err, "fence: %s\n", n)
	}
	if debug {
		fmt.Fprintf(stdio.Err, "fence: debug: project root %q, trust %s\n", res.Root, res.Trust)
		for _, s := range res.Chain {
			fmt.Fprintf(stdio.Err, "fence: debug: config %s %s exists=%v\n", s.Layer, s.File+s.Template, s.Exists)
		}
	}
}

// sessionSpec returns the sandbox spec shared by `fence --` and `fence
// shell` for res: the filesystem policy with the -p ports published (and
// local binding allowed for them), the caller's environment, the notices,
// -d and -m writers, and the daemon session's relay when there is one.
// Callers fill in Args, stdio and the TTY.
func sessionSpec(stdio Stdio, res *config.Resolved, sess *netSession, ports []int, dir string, debug, monitor bool) *sandbox.Spec {
	pol := res.Sandbox
	pol.AllowWrite = append([]string{}, pol.AllowWrite...)
	pol.Publish = append([]int{}, pol.Publish...)
	for _, p := range ports {
		if !hasInt(pol.Publish, p) {
			pol.Publish = append(pol.Publish, p)
		}
	}
	if len(pol.Publish) > 0 {
		pol.AllowLocalBinding = true
	}
	spec := &sandbox.Spec{Policy: pol, Dir: dir, Env: os.Environ(), Notices: stdio.Err}
	if sess != nil {
		spec.Relay, spec.SessionID, spec.Discard = sess.Dir, sess.ID, sess.discard
	}
	if debug {
		spec.Debug = stdio.Err
	}
	if monitor {
		spec.Monitor = stdio.Err
	}
	return spec
}

// forRawTerminal makes spec's notices and monitor lines, written while a
// TTY session's relay holds the terminal in raw mode, end with CR LF: LF
// alone moves down without going back to the first column, and the lines
// came out as a staircase (found by a red-team helper). Where the terminal
// is cooked again, the CR it adds is invisible.
func forRawTerminal(spec *sandbox.Spec) {
	if spec.Notices != nil {
		spec.Notices = crlfWriter{spec.Notices}
	}
	if spec.Monitor != nil {
		spec.Monitor = crlfWriter{spec.Monitor}
	}
}

// crlfWriter writes each LF as CR LF.
type crlfWriter struct{ w io.Writer }

func (c crlfWriter) Write(p []byte) (int, error) {
	if _, err := c.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func hasInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// watchPolicy watches the config chain of res and, when a change alters the
// filesystem policy (which only applies to a new sandbox), writes a notice
// with notify for the inner shell to print at its next prompt. Network
// changes are the daemon's and apply live. The returned function stops
// watching.
func watchPolicy(res *config.Resolved, opts config.Options, notify func(string) error) (stop func()) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return func() {}
	}
	// Editors replace files by rename: watch directories, not files.
	dirs := map[string]bool{}
	files := map[string]bool{}
	for _, f := range res.ChainFiles() {
		dirs[filepath.Dir(f)] = true
		files[f] = true
	}
	for d := range dirs {
		_ = w.Add(d)
	}
	opts.ReadOnly = true
	var once sync.Once
	done := make(chan struct{})
	go func() {
		gen := 0
		last := ""
		var timer <-chan time.Time
		for {
			select {
			case <-done:
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if files[filepath.Clean(ev.Name)] {
					timer = time.After(100 * time.Millisecond)
				}
			case <-w.Errors:
			case <-timer:
				timer = nil
				msg := policyChange(res, opts)
				if msg == "" || msg == last {
					continue
				}
				last = msg
				gen++
				_ = notify(fmt.Sprintf("%d %s\n", gen, msg))
			}
		}
	}()
	return func() {
		once.Do(func() {
			close(done)
			w.Close()
		})
	}
}

// policyChange says what changed between the running session's policy and
// the config on disk now, in one line for the inner shell, or "".
func policyChange(cur *config.Resolved, opts config.Options) string {
	res, err := config.Load(opts)
	if err != nil {
		return fmt.Sprintf("config error, the running policy stays: %v", err)
	}
	if cur.Trust == config.Trusted && res.Trust == config.Changed {
		return "the project config now grants more; run 'fence allow' outside the sandbox, then 'fence reload'"
	}
	if !reflect.DeepEqual(res.Sandbox, cur.Sandbox) {
		return "the filesystem policy changed; run 'fence reload' to restart this shell with it"
	}
	return ""
}
