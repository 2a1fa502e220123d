package shellhook

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Exit statuses the inner shell uses to talk to the fence client. Only the
// shell itself exits with them (from fence's init at the prompt); a program
// inside the sandbox exiting with one of them changes nothing.
const (
	// ExitLeave: the shell changed to a directory outside the project and
	// wrote it to the handoff file (where it cannot stop itself instead:
	// Session.Handoff).
	ExitLeave = 197
	// ExitReload: the user ran `fence reload`.
	ExitReload = 198
	// ExitAllow: the user ran `fence allow` in the inner shell, where the
	// trust store is read-only; the client asks them on the real terminal
	// and restarts the shell in place.
	ExitAllow = 199
)

//go:embed hook.bash
var hookBash string

//go:embed hook.zsh
var hookZsh string

//go:embed hook.fish
var hookFish string

//go:embed init.bash
var initBash string

//go:embed zshenv.zsh
var initZshenv string

//go:embed zshrc.zsh
var initZshrc string

//go:embed init.fish
var initFish string

// Shells are the shells fence has hooks for.
var Shells = []string{"bash", "zsh", "fish"}

// HookOptions configure the printed hook.
type HookOptions struct {
	// Fence is the absolute path of the fence binary the hook runs, so that
	// a `fence` earlier in PATH (a repository's bin/, node_modules/.bin)
	// never runs on the host (ATTACKS.md H-03).
	Fence string
	// AutoEnter are absolute glob patterns of directories entered even
	// without a .fence.toml ("**" and "*" both match across "/" here; fence
	// shell makes the final decision).
	AutoEnter []string
}

// ErrUnknownShell is returned for a shell fence has no hook for.
var ErrUnknownShell = errors.New("unknown shell")

// Hook returns the hook script for shell ("bash", "zsh" or "fish").
func Hook(shell string, o HookOptions) (string, error) {
	if !filepath.IsAbs(o.Fence) {
		return "", fmt.Errorf("hook: fence path %q is not absolute", o.Fence)
	}
	var src string
	quote := shQuote
	switch shell {
	case "bash":
		src = hookBash
	case "zsh":
		src = hookZsh
	case "fish":
		src, quote = hookFish, fishQuote
	default:
		return "", fmt.Errorf("hook %q: %w", shell, ErrUnknownShell)
	}
	var pats []string
	for _, p := range o.AutoEnter {
		// Stored quoted, matched unquoted: the wildcards work there
		// without being expanded against the filesystem here.
		pats = append(pats, quote(strings.ReplaceAll(p, "**", "*")))
	}
	return strings.NewReplacer(
		"@FENCE@", quote(o.Fence),
		"@AUTOENTER@", strings.Join(pats, " "),
	).Replace(src), nil
}

// shQuote quotes s for bash and zsh.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fishQuote quotes s for fish.
func fishQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
}

// Kind returns "bash", "zsh" or "fish" for a shell path ($SHELL), and ""
// for any other shell (started as a plain interactive shell).
func Kind(shellPath string) string {
	switch b := filepath.Base(shellPath); {
	case b == "bash" || strings.HasPrefix(b, "bash5"):
		return "bash"
	case b == "zsh" || strings.HasPrefix(b, "zsh-"):
		return "zsh"
	case b == "fish":
		return "fish"
	}
	return ""
}

// Session describes one sandboxed interactive shell for [Prepare].
type Session struct {
	// Shell is the shell to run ($SHELL); must be absolute.
	Shell string
	// Fence is the absolute path of the fence binary.
	Fence string
	// Root is the project root, resolved through symlinks; LogicalRoot is
	// the same directory as the user's $PWD spells it ("" when the same).
	Root, LogicalRoot string
	// Marker is the prompt marker, "(fence:NAME) ", or "" for none. Prompt
	// is the marker text exported as FENCE_PROMPT for prompt themes.
	Marker, Prompt string
	// Dir is a private directory for this session's generated files; the
	// sandbox must be able to read it.
	Dir string
	// Handoff is the file the inner shell writes the directory to leave to
	// into before it exits with ExitLeave; the sandbox must be able to
	// write it. Empty, the shell stops itself (SIGSTOP) instead, and the
	// sandbox reads its directory from the kernel (sandbox.Spec.StopToLeave,
	// Linux). Notice is a file the
	// client writes policy notices into ("GENERATION TEXT"); the inner
	// shell prints each new one at its next prompt.
	Handoff, Notice string
	// HistoryDir is this project's history directory; the sandbox must be
	// able to write it.
	HistoryDir string
	// UserZDOTDIR is the user's $ZDOTDIR ("" when unset).
	UserZDOTDIR string
	// XDGDataHome is the user's $XDG_DATA_HOME ("" when unset).
	XDGDataHome string
}

// Launch is how to start the inner shell.
type Launch struct {
	Args []string // argv, Args[0] the shell
	Env  []string // variables to add to the environment
}

// Prepare writes the session's init files into s.Dir and returns how to
// start the shell with them. The user's own rc files are loaded first, then
// fence's init; nothing is ever typed into the PTY.
func Prepare(s Session) (*Launch, error) {
	if s.LogicalRoot == "" {
		s.LogicalRoot = s.Root
	}
	kind := Kind(s.Shell)
	quote := shQuote
	if kind == "fish" {
		quote = fishQuote
	}
	histName := map[string]string{"bash": "bash_history", "zsh": "zsh_history"}[kind]
	fishXDG := ""
	if kind == "fish" {
		// fish keeps history under $XDG_DATA_HOME/fish and reads the
		// variable once at startup: start it with the project's history
		// directory there, then give programs the user's value back.
		if s.XDGDataHome != "" {
			fishXDG = "set -gx XDG_DATA_HOME " + fishQuote(s.XDGDataHome)
		} else {
			fishXDG = "set -e XDG_DATA_HOME"
		}
		if err := os.MkdirAll(filepath.Join(s.HistoryDir, "fish"), 0o700); err != nil {
			return nil, err
		}
	}
	r := strings.NewReplacer(
		"@ROOT@", quote(s.Root),
		"@LROOT@", quote(s.LogicalRoot),
		"@HANDOFF@", quote(s.Handoff),
		"@NOTICE@", quote(s.Notice),
		"@MARKER@", quote(s.Marker),
		"@PROMPT@", quote(s.Prompt),
		"@FENCE@", quote(s.Fence),
		"@HISTFILE@", quote(filepath.Join(s.HistoryDir, histName)),
		"@USERZDOTDIR@", quote(s.UserZDOTDIR),
		"@EXITLEAVE@", strconv.Itoa(ExitLeave),
		"@EXITRELOAD@", strconv.Itoa(ExitReload),
		"@EXITALLOW@", strconv.Itoa(ExitAllow),
		"@FISHXDG@", fishXDG,
	)
	write := func(name, src string) (string, error) {
		p := filepath.Join(s.Dir, name)
		if err := os.WriteFile(p, []byte(r.Replace(src)), 0o600); err != nil {
			return "", err
		}
		return p, nil
	}
	switch kind {
	case "bash":
		rc, err := write("bashrc", initBash)
		if err != nil {
			return nil, err
		}
		return &Launch{Args: []string{s.Shell, "--rcfile", rc, "-i"}}, nil
	case "zsh":
		zdot := filepath.Join(s.Dir, "zsh")
		if err := os.MkdirAll(zdot, 0o700); err != nil {
			return nil, err
		}
		if _, err := write("zsh/.zshenv", initZshenv); err != nil {
			return nil, err
		}
		if _, err := write("zsh/.zshrc", initZshrc); err != nil {
			return nil, err
		}
		return &Launch{Args: []string{s.Shell, "-i"}, Env: []string{"ZDOTDIR=" + zdot}}, nil
	case "fish":
		init, err := write("init.fish", initFish)
		if err != nil {
			return nil, err
		}
		return &Launch{
			Args: []string{s.Shell, "-i", "--init-command", "source " + fishQuote(init)},
			Env:  []string{"XDG_DATA_HOME=" + s.HistoryDir},
		}, nil
	}
	return &Launch{Args: []string{s.Shell, "-i"}, Env: []string{"FENCE_PROMPT=" + s.Prompt}}, nil
}

// ProjectName is the name shown in the prompt marker for root: its base
// name with anything but letters, digits, '.', '_' and '-' replaced, so that
// a directory name can never inject prompt escapes or substitutions.
func ProjectName(root string) string {
	base := filepath.Base(root)
	if base == "/" || base == "." {
		return "root"
	}
	b := []byte(base)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 32 {
		b = b[:32]
	}
	return string(b)
}

// HistoryKey names a project's history directory: the project name and a
// hash of its root, so that two projects with the same name keep apart.
func HistoryKey(root string) string {
	sum := sha256.Sum256([]byte(root))
	return ProjectName(root) + "-" + hex.EncodeToString(sum[:6])
}
