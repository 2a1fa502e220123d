package config

import (
	"os"
	"path/filepath"
	"strconv"

	"github.com/fence-dev/fence/sandbox"
)

// home returns the user's home directory, "/" when it cannot be found (a
// fence run without HOME still gets a policy, it just protects less of it).
func home() string {
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Clean(h)
	}
	return "/"
}

// xdg returns $env when it is set to an absolute path (the XDG spec says
// relative values are to be ignored), otherwise ~/fallback.
func xdg(env, fallback string) string {
	if v := os.Getenv(env); v != "" && filepath.IsAbs(v) {
		return filepath.Clean(v)
	}
	return filepath.Join(home(), fallback)
}

// ConfigDir is fence's user configuration directory:
// $XDG_CONFIG_HOME/fence, default ~/.config/fence. It holds config.toml.
func ConfigDir() string { return filepath.Join(xdg("XDG_CONFIG_HOME", ".config"), "fence") }

// DataDir is fence's user data directory: $XDG_DATA_HOME/fence, default
// ~/.local/share/fence. The trust store lives in its trust/ subdirectory.
func DataDir() string { return filepath.Join(xdg("XDG_DATA_HOME", ".local/share"), "fence") }

// StateDir is fence's state directory: $XDG_STATE_HOME/fence, default
// ~/.local/state/fence (shell history, quarantined files).
func StateDir() string { return filepath.Join(xdg("XDG_STATE_HOME", ".local/state"), "fence") }

// ShellDir is `fence shell`'s directory: $XDG_STATE_HOME/fence-shell,
// default ~/.local/state/fence-shell, with sessions/ (each session's init
// and notice files) and history/ (one directory per project). It is a
// sibling of the state directory because that one is hidden inside every
// sandbox, and the inner shells read their files here. Every sandbox sees
// it read-only (sandbox.Policy.ShellDir).
func ShellDir() string { return filepath.Join(xdg("XDG_STATE_HOME", ".local/state"), "fence-shell") }

// TrustDir is the trust store: one file per trusted project root.
func TrustDir() string { return filepath.Join(DataDir(), "trust") }

// RuntimeDir is the daemon's directory: $XDG_RUNTIME_DIR/fence, or
// /tmp/fence-$UID when XDG_RUNTIME_DIR is unset (DESIGN.md §5). Callers that
// create it must make it 0700 and check its owner.
//
// A fence confined by something else (an agent's sandbox with
// no_new_privs, a container's seccomp filter) uses fence-confined-KIND
// instead (sandbox.ConfinementKind): the daemon it starts inherits the
// confinement, and must never be the one the user's unconfined fence finds
// (it could not serve it, and held the place until it went idle).
func RuntimeDir() string { return runtimeDir(sandbox.ConfinementKind()) }

// runtimeDir is RuntimeDir for a confinement kind ("": none).
func runtimeDir(kind string) string {
	name := "fence"
	if kind != "" {
		name += "-confined-" + kind
	}
	if v := os.Getenv("XDG_RUNTIME_DIR"); v != "" && filepath.IsAbs(v) {
		return filepath.Join(filepath.Clean(v), name)
	}
	return filepath.Join(os.TempDir(), name+"-"+strconv.Itoa(os.Getuid()))
}

// UserConfigFile is the user layer: ConfigDir()/config.toml.
func UserConfigFile() string { return filepath.Join(ConfigDir(), "config.toml") }

// SystemPolicyFile is the system layer. Its denies can never be removed by
// another layer. A variable so tests can point it elsewhere.
var SystemPolicyFile = "/etc/fence/policy.toml"

// ProjectFile is the name of the project config file.
const ProjectFile = ".fence.toml"

// FindRoot returns the project root for dir: the nearest ancestor of dir
// (dir included) holding a .fence.toml. dir is made absolute first; the
// walk is lexical (symlinked directories are not resolved), matching what
// the shell hook sees in $PWD.
func FindRoot(dir string) (string, bool) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false
	}
	for d := abs; ; {
		if fi, err := os.Lstat(filepath.Join(d, ProjectFile)); err == nil && !fi.IsDir() {
			return d, true
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", false
		}
		d = parent
	}
}

// EnsureDirs creates fence's configuration, data (trust store) and state
// directories, 0700, where they are missing. Load calls it before any
// session can start: the sandbox hides and protects the ones that exist,
// and one that did not exist yet could be created, and filled with a
// forged trust record, by a session that may write the home directory.
// Errors are ignored: inside a sandbox they are read-only by design, and a
// home fence cannot write is one the sandbox cannot write either.
func EnsureDirs() {
	for _, d := range []string{ConfigDir(), DataDir(), TrustDir(), StateDir(), ShellDir()} {
		if _, err := os.Lstat(d); err == nil {
			continue
		}
		os.MkdirAll(filepath.Dir(d), 0o755)
		os.Mkdir(d, 0o700)
	}
}
