// Package config turns fence's TOML layers (built-in defaults, system policy,
// user config, project .fence.toml and what it extends) into one validated,
// resolved policy, and keeps the trust store that decides whether a project's
// own config may loosen anything. It is the only package that knows TOML; it
// hands plain structs ([sandbox.Policy], [proxy.Rules]) to the libraries.
//
// Decisions the design left open, as implemented here:
//
//   - An empty .fence.toml (or one holding only comments) is an error at
//     1:1: it would silently change nothing. A project that wants only the
//     defaults writes an empty table such as "[network]".
//   - An extends entry is a file when it contains "/" or ends in ".toml",
//     otherwise a built-in template. Templates' relative paths are relative
//     to the file that extends them (the project root for .fence.toml).
//   - Relative paths are relative to the directory of the file that wrote
//     them: the project root, the extended file's directory, the user
//     config directory, /etc/fence, or the -s file's directory.
//   - Globs: "*", "?" and "[...]" within one path segment (path/filepath.Match,
//     "*" matching leading dots too), and a segment that is exactly "**"
//     for zero or more directories. They are expanded against the
//     filesystem when the policy is loaded (at most 100000 directory entries
//     per load); a file created later is covered from the next session on.
//     Every path is then resolved through symlinks once; for a path that
//     does not exist yet, its nearest existing parent is.
//   - An allowWrite entry whose resolution goes through a symlink that leads
//     out of the directory of the file that wrote a relative entry, or out
//     of a path another allowWrite entry makes writable, is an error at the
//     entry (see links.go): a sandbox or a repository could otherwise widen
//     a later session through a link.
//   - An untrusted (or changed) project layer is ignored unless it grants
//     nothing beyond the lower layers: a config that only restricts applies
//     at once, as DESIGN.md §4 allows ([Resolved.Applied]).
//   - Load records a tightening edit of a trusted config as the new trusted
//     version (unless [Options.ReadOnly]); loosening it back later needs
//     'fence allow' again. Load runs outside any sandbox and the sandbox can
//     never write the trust store.
//   - Config files that others can write (group or world write bits) or that
//     belong to another user (other than root) are refused, in every layer.
//   - Config strings may not hold control or bidi formatting characters;
//     what fence prints from the filesystem goes through [Printable].
//   - The deny lists of every .fence.toml above the project root apply
//     too (layer "enclosing"), trusted or not: a nested project created
//     by a session cannot shed its parent's denies.
//   - publish implies allowLocalBinding (a published port must be bound).
//   - allowLocalOutbound = true is resolved at load time to the TCP ports
//     the host listens on at 127.0.0.1, ::1 or a wildcard address.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/fence-dev/fence/proxy"
	"github.com/fence-dev/fence/sandbox"
)

// Layer names, lowest first, as they appear in [Source.Layer] and
// [Origin.Layer].
const (
	LayerDefault = "default" // built into fence
	LayerSystem  = "system"  // /etc/fence/policy.toml
	LayerUser    = "user"    // $XDG_CONFIG_HOME/fence/config.toml
	// LayerEnclosing holds the denies of every .fence.toml above the
	// project root: they still restrict a nested project (see [Load]).
	LayerEnclosing = "enclosing"
	LayerFlag      = "flag"    // templates named with -t
	LayerProject   = "project" // .fence.toml (or -s FILE) and what it extends
)

// maxExtendsDepth is how deep extends may nest below the file that starts
// a chain.
const maxExtendsDepth = 8

// maxConfigSize bounds how much of a config file fence reads.
const maxConfigSize = 1 << 20

// Options say which policy to resolve.
type Options struct {
	// Dir is the directory whose project applies; the project root is the
	// nearest ancestor (or Dir itself) holding .fence.toml. Empty means the
	// working directory.
	Dir string
	// Settings, when set, is used as the project layer instead of the
	// discovered .fence.toml, trusted because the user named it (-s FILE).
	Settings string
	// Templates are built-in templates added on top (-t NAME), trusted
	// because the user named them.
	Templates []string
	// Publish adds sandbox ports to expose on the host (-p N).
	Publish []int
	// ReadOnly keeps Load from updating the trust store. Without it, a
	// trusted project config that was edited only to tighten is recorded as
	// the new trusted version (see [Load]).
	ReadOnly bool
}

// TrustState says whether the project layer is trusted.
type TrustState int

const (
	// NoProject: no .fence.toml above Dir and no -s; only the built-in,
	// system and user layers apply.
	NoProject TrustState = iota
	// Trusted: `fence allow` recorded this exact config chain, or a later
	// version of it that only tightens the recorded policy.
	Trusted
	// Untrusted: never allowed. The project layer applies only when it
	// grants nothing beyond the lower layers ([Resolved.Applied]).
	Untrusted
	// Changed: allowed once, then edited in a way that loosens the policy.
	// Like Untrusted, the project layer is ignored. A daemon reloading a
	// session that started Trusted keeps the policy it had instead.
	Changed
	// Named: the project layer is a file named with -s; trusted because
	// the user named it.
	Named
)

var trustNames = [...]string{"none", "trusted", "untrusted", "changed", "named"}

func (t TrustState) String() string {
	if int(t) < len(trustNames) {
		return trustNames[t]
	}
	return "TrustState(" + strconv.Itoa(int(t)) + ")"
}

// MarshalText makes a TrustState a JSON string.
func (t TrustState) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Source is one file (or built-in layer) of the resolved config chain.
type Source struct {
	Layer    string `json:"layer"`
	File     string `json:"file,omitempty"`     // absolute path; empty for built-ins
	Template string `json:"template,omitempty"` // built-in template name
	Exists   bool   `json:"exists"`             // false: could be read but is absent
	Via      string `json:"via,omitempty"`      // "FILE:LINE" of the extends entry (absolute), or "-t"
}

// Origin says where a rule was written.
type Origin struct {
	Layer    string `json:"layer"`
	File     string `json:"file,omitempty"`
	Template string `json:"template,omitempty"`
	Line     int    `json:"line,omitempty"`
	Col      int    `json:"col,omitempty"`
}

// String is "layer FILE:LINE" or "layer template NAME".
func (o Origin) String() string {
	s := o.Layer
	switch {
	case o.Template != "":
		s += " template " + o.Template
	case o.File != "":
		s += " " + displayPath(o.File)
		if o.Line > 0 {
			s += ":" + strconv.Itoa(o.Line)
		}
	}
	return s
}

// Rule is one rule of the resolved policy and where it came from.
type Rule struct {
	Key    string `json:"key"`   // "network.allowedDomains", "filesystem.denyRead", ...
	Value  string `json:"value"` // canonical pattern, absolute path, port, "true"
	Origin Origin `json:"origin"`
	// Ignored is set for rules of a project layer that is not in force.
	Ignored bool `json:"ignored,omitempty"`
}

// ShellSettings are the user's [shell] settings.
type ShellSettings struct {
	// PromptMarker shows "(fence:NAME)" in the inner shell's prompt
	// (default true).
	PromptMarker bool `json:"promptMarker"`
	// AutoEnter are absolute glob patterns of directories the hook fences
	// even without a .fence.toml (using the user layer); see [MatchPath].
	AutoEnter []string `json:"autoEnter,omitempty"`
}

// AutoEnters reports whether dir matches one of the autoEnter patterns.
func (s ShellSettings) AutoEnters(dir string) bool {
	for _, p := range s.AutoEnter {
		if MatchPath(p, dir) {
			return true
		}
	}
	return false
}

// Resolved is the fully resolved policy for one session. Load builds a new
// one on every call; nothing in it is shared with earlier results.
type Resolved struct {
	// Root is the project root: the directory holding the .fence.toml that
	// applies (trusted or not), "" when there is none.
	Root string
	// Dir is Options.Dir made absolute.
	Dir string
	// Sandbox is the filesystem and process policy. Its Root is Root, or
	// Dir without a project.
	Sandbox sandbox.Policy
	// Network is the network policy for the proxy daemon.
	Network proxy.Rules

	// ConfigFile is the file of the project layer (the root's .fence.toml,
	// or the -s file), "" without one.
	ConfigFile string
	// Chain lists every layer and file considered, lowest first, including
	// absent optional files (system policy, user config).
	Chain []Source
	// Trust is the trust state of the project layer.
	Trust TrustState
	// Applied reports whether the project layer is in force: Trusted and
	// Named always; Untrusted and Changed only when the project grants
	// nothing beyond the lower layers (it may always restrict).
	Applied bool
	// Grants are what the project layer grants beyond the lower layers, in
	// the words `fence allow` prints: "+net registry.npmjs.org",
	// "+write .", "+publish 3000", "+local-outbound 5432", "+bind",
	// "+git-config", "+env NPM_TOKEN".
	Grants []string
	// NewGrants, for a Changed config, are what it loosens compared with the
	// version `fence allow` recorded: grants in the words of Grants, and
	// dropped denies as "-deny-net X", "-deny-write P", "-deny-read P".
	NewGrants []string
	// Notices are one-line messages for the user, to print once on stderr
	// as "fence: NOTICE" (untrusted or changed project config, fallbacks).
	Notices []string
	// Shell holds the user's [shell] settings.
	Shell ShellSettings
	// Rules lists every rule with its origin, for `fence config show`.
	Rules []Rule

	// Hash is the trust hash of the project chain ("" without a project).
	Hash string

	project *policySet // the project layer alone, for the trust snapshot
	files   []string   // local files of the project chain
}

// Load resolves the policy for opts: it finds the project root, reads the
// layers, checks trust and fills [Resolved].
//
// Errors in any file read are returned as *[Error] (file, line, column);
// a broken project config is an error even when it is not trusted.
//
// Load may write two things: fence's own directories where they are
// missing ([EnsureDirs]), and, when a trusted project config was edited and
// the new policy only tightens the recorded one, the new version in the
// trust store (so that loosening it back later needs `fence allow` again),
// unless opts.ReadOnly. Load runs outside the sandbox; sandboxed
// code cannot write the trust store or the config chain.
func Load(opts Options) (*Resolved, error) {
	dir := opts.Dir
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("working directory: %w", err)
		}
		dir = wd
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("directory %q: %w", opts.Dir, err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("directory %q: %w", dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("directory %q: not a directory", dir)
	}
	EnsureDirs()
	res := &Resolved{Dir: dir}
	root, found := FindRoot(dir)
	if found {
		res.Root = root
	}
	l := &loader{}
	base := []*fileRules{defaultRules()}
	l.chain = append(l.chain, Source{Layer: LayerDefault, Exists: true})

	sys, err := l.file(SystemPolicyFile, LayerSystem, true, "", nil, true)
	if err != nil {
		return nil, err
	}
	base = append(base, sys...)
	usr, err := l.file(UserConfigFile(), LayerUser, true, "", nil, true)
	if err != nil {
		return nil, err
	}
	base = append(base, usr...)
	tdir := dir
	if found {
		tdir = root
	}
	for _, t := range opts.Templates {
		rs, err := l.template(t, tdir, LayerFlag, "-t", nil)
		if err != nil {
			return nil, err
		}
		base = append(base, rs...)
	}
	if len(opts.Publish) > 0 {
		fr := &fileRules{Layer: LayerFlag}
		for _, p := range opts.Publish {
			if p < 1 || p > 65535 {
				return nil, fmt.Errorf("bad port %d for -p: want a number from 1 to 65535", p)
			}
			fr.Publish = append(fr.Publish, intItem{Value: p})
		}
		base = append(base, fr)
	}

	// The denies of enclosing projects. Without them a session that may
	// write its project could create sub/.fence.toml and so shed, for every
	// later session started in sub, the project's denyRead. A deny only
	// restricts, so it applies whether that config is trusted or not.
	if found && opts.Settings == "" && root != "/" {
		for d := filepath.Dir(root); ; {
			e, ok := FindRoot(d)
			if !ok {
				break
			}
			rs, err := l.enclosing(filepath.Join(e, ProjectFile))
			if err != nil {
				res.Notices = append(res.Notices, "enclosing project config ignored: "+oneLine(err.Error()))
			}
			base = append(base, rs...)
			if e == "/" {
				break
			}
			d = filepath.Dir(e)
		}
	}

	// The project layer.
	var proj []*fileRules
	nBase := len(l.files)
	switch {
	case opts.Settings != "":
		f, err := filepath.Abs(opts.Settings)
		if err != nil {
			return nil, fmt.Errorf("settings file %q: %w", opts.Settings, err)
		}
		res.ConfigFile = f
		if proj, err = l.file(f, LayerProject, false, "-s", nil, false); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("settings file %q: no such file", opts.Settings)
			}
			return nil, err
		}
		res.Trust = Named
		if found {
			l.files = append(l.files, filepath.Join(root, ProjectFile))
		}
	case found:
		res.ConfigFile = filepath.Join(root, ProjectFile)
		if proj, err = l.file(res.ConfigFile, LayerProject, false, "", nil, false); err != nil {
			return nil, err
		}
	}
	res.Chain = l.chain
	res.files = append([]string(nil), l.files[nBase:]...)
	if err := checkWriteLinks(append(append([]*fileRules(nil), base...), proj...)); err != nil {
		return nil, err
	}

	baseSet, _ := merge(base)
	if proj != nil {
		res.project, _ = merge(proj)
		full, _ := merge(append(append([]*fileRules(nil), base...), proj...))
		res.Grants = grants(baseSet, full, res.Root, tdir)
		res.Hash = chainHash(trustRoot(res.Root), proj)
		if res.Trust != Named {
			res.Trust = l.trust(res, opts.ReadOnly)
		}
		switch res.Trust {
		case Trusted, Named:
			res.Applied = true
		default:
			res.Applied = len(res.Grants) == 0 && !full.loosens(baseSet)
		}
		if !res.Applied {
			cf := displayPath(res.ConfigFile)
			if res.Trust == Changed {
				res.Notices = append(res.Notices, fmt.Sprintf("%s changed since 'fence allow' (%s); running with your user policy only until you run 'fence allow'", cf, strings.Join(res.NewGrants, ", ")))
			} else {
				res.Notices = append(res.Notices, fmt.Sprintf("%s is not trusted; running with your user policy only; 'fence allow' would grant: %s", cf, strings.Join(res.Grants, ", ")))
			}
		}
	}
	layers := base
	if res.Applied {
		layers = append(layers, proj...)
	}
	set, rules := merge(layers)
	if !res.Applied && proj != nil {
		_, prules := merge(proj)
		for i := range prules {
			prules[i].Ignored = true
		}
		rules = append(rules, prules...)
	}
	res.Rules = rules
	res.fill(set, l.files)
	for i, n := range res.Notices {
		res.Notices[i] = oneLine(n) // they go to the terminal as they are
	}
	return res, nil
}

// loader reads config files and follows extends.
type loader struct {
	chain []Source
	files []string // every local config file read or that could be read
}

// file reads one config file and what it extends, returning the extended
// files' rules first. optional files may be absent.
func (l *loader) file(path, layer string, user bool, via string, stack []string, optional bool) ([]*fileRules, error) {
	l.files = append(l.files, path)
	data, err := readConfig(path)
	if err != nil {
		if optional && errors.Is(err, os.ErrNotExist) {
			l.chain = append(l.chain, Source{Layer: layer, File: path, Via: via})
			return nil, nil
		}
		return nil, err
	}
	l.chain = append(l.chain, Source{Layer: layer, File: path, Exists: true, Via: via})
	fr, err := parseRules(path, filepath.Dir(path), layer, data, user)
	if err != nil {
		return nil, err
	}
	fr.Src = data
	stack = append(stack, path)
	var out []*fileRules
	for _, ext := range fr.Extends {
		e := &Error{File: path, Line: ext.Line, Col: ext.Col}
		at := fmt.Sprintf("%s:%d", path, ext.Line)
		if len(stack) > maxExtendsDepth {
			e.Msg = fmt.Sprintf("extends %q: chain deeper than %d files", ext.Value, maxExtendsDepth)
			return nil, e
		}
		if isTemplateRef(ext.Value) {
			rs, err := l.template(ext.Value, fr.Dir, layer, at, stack)
			if err != nil {
				if ue, ok := err.(*unknownTemplateError); ok {
					e.Msg = "extends " + ue.Error()
					return nil, e
				}
				return nil, err
			}
			out = append(out, rs...)
			continue
		}
		target, err := expandFile(ext.Value, fr.Dir)
		if err != nil {
			e.Msg = fmt.Sprintf("extends %q: %v", ext.Value, err)
			return nil, e
		}
		for _, s := range stack {
			if s == target {
				var names []string
				for _, s := range stack {
					names = append(names, displayPath(s))
				}
				e.Msg = fmt.Sprintf("extends %q: cycle: %s -> %s", ext.Value, strings.Join(names, " -> "), displayPath(target))
				return nil, e
			}
		}
		rs, err := l.file(target, layer, user, at, stack, false)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				e.Msg = fmt.Sprintf("extends %q: no such file %s", ext.Value, displayPath(target))
				return nil, e
			}
			return nil, err
		}
		out = append(out, rs...)
	}
	return append(out, fr), nil
}

// enclosing reads the config chain of an enclosing project and keeps only
// its deny lists. A broken chain adds nothing (the caller says so).
func (l *loader) enclosing(path string) ([]*fileRules, error) {
	sub := &loader{}
	rs, err := sub.file(path, LayerEnclosing, false, "", nil, false)
	if err != nil {
		return nil, err
	}
	l.chain = append(l.chain, sub.chain...)
	l.files = append(l.files, sub.files...)
	var out []*fileRules
	for _, fr := range rs {
		out = append(out, &fileRules{File: fr.File, Dir: fr.Dir, Layer: fr.Layer,
			DeniedDomains: fr.DeniedDomains, DenyWrite: fr.DenyWrite, DenyRead: fr.DenyRead})
	}
	return out, nil
}

type unknownTemplateError struct{ name string }

func (e *unknownTemplateError) Error() string {
	msg := fmt.Sprintf("%q: unknown template", e.name)
	best, bestD := "", 3
	for _, t := range Templates() {
		if d := editDistance(strings.ToLower(e.name), t); d < bestD {
			best, bestD = t, d
		}
	}
	if best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	return msg + "; built-in templates: " + strings.Join(Templates(), ", ") + "; a file needs a / or .toml (./" + e.name + ".toml)"
}

// template parses built-in template name; its relative paths are relative
// to dir (the directory of the file that extends it).
func (l *loader) template(name, dir, layer, via string, stack []string) ([]*fileRules, error) {
	data, ok := Template(name)
	if !ok {
		return nil, &unknownTemplateError{name}
	}
	key := "template:" + name
	for _, s := range stack {
		if s == key {
			return nil, nil // templates extending each other: include once
		}
	}
	l.chain = append(l.chain, Source{Layer: layer, Template: name, Exists: true, Via: via})
	fr, err := parseRules(key, dir, layer, data, false)
	if err != nil {
		return nil, fmt.Errorf("config: BUG: built-in template %s: %w", name, err)
	}
	rules := []*fileRules{fr}
	if add, ok := templateAddendum(name, runtime.GOOS); ok {
		afr, err := parseRules(key, dir, layer, add, false)
		if err != nil {
			return nil, fmt.Errorf("config: BUG: built-in template %s for %s: %w", name, runtime.GOOS, err)
		}
		rules = append(rules, afr)
	}
	var out []*fileRules
	for _, ext := range fr.Extends {
		rs, err := l.template(ext.Value, dir, layer, via, append(stack, key))
		if err != nil {
			return nil, fmt.Errorf("config: BUG: built-in template %s: %w", name, err)
		}
		out = append(out, rs...)
	}
	return append(out, rules...), nil
}

// readConfig reads a config file after checking that only its owner (or
// root) can change it.
func readConfig(path string) ([]byte, error) {
	// O_NONBLOCK: a repository's .fence.toml could be a named pipe, and
	// opening it must not hang the shell hook. Non-regular files are refused
	// below.
	f, err := os.OpenFile(path, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, &Error{File: path, Msg: "cannot read: " + errors.Unwrap(err).Error()}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &Error{File: path, Msg: "stat: " + err.Error()}
	}
	if fi.IsDir() {
		return nil, &Error{File: path, Msg: "is a directory, not a config file"}
	}
	if !fi.Mode().IsRegular() {
		return nil, &Error{File: path, Msg: "not a regular file (" + fi.Mode().Type().String() + ")"}
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, &Error{File: path, Msg: fmt.Sprintf("refusing a config file others can write (mode %04o)", fi.Mode().Perm()),
			Hint: "chmod go-w " + displayPath(path)}
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Getuid() && uid != 0 {
		return nil, &Error{File: path, Msg: fmt.Sprintf("refusing a config file owned by another user (uid %d)", uid),
			Hint: "only your own or root's config files are read; copy it and use 'fence -s FILE' if you mean it"}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, &Error{File: path, Msg: "read: " + err.Error()}
	}
	if len(data) > maxConfigSize {
		return nil, &Error{File: path, Msg: "config file larger than 1 MiB"}
	}
	return data, nil
}

// chainHash is the trust hash: sha256 of the absolute root and, for every
// local file of the project chain, its path and contents.
func chainHash(root string, chain []*fileRules) string {
	h := sha256.New()
	io.WriteString(h, root)
	h.Write([]byte{0})
	for _, fr := range chain {
		if fr.Src == nil || strings.HasPrefix(fr.File, "template:") {
			continue
		}
		io.WriteString(h, fr.File)
		h.Write([]byte{0})
		io.WriteString(h, strconv.Itoa(len(fr.Src)))
		h.Write([]byte{0})
		h.Write(fr.Src)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fill builds the sandbox policy and network rules from the merged set.
func (res *Resolved) fill(set *policySet, files []string) {
	p := &res.Sandbox
	p.Root = res.Root
	if p.Root == "" {
		p.Root = res.Dir
	}
	var budget = maxGlobVisits
	sr := symlinkResolver{}
	p.AllowWrite = res.resolvePaths(set.AllowWrite, &budget, sr)
	p.DenyWrite = res.resolvePaths(set.DenyWrite, &budget, sr)
	p.DenyRead = res.resolvePaths(set.DenyRead, &budget, sr)
	p.AllowGitConfig = set.AllowGitConfig
	p.Publish = append([]int(nil), set.Publish...)
	p.AllowLocalBinding = set.AllowLocalBinding || len(p.Publish) > 0
	p.LocalOutbound = append([]int(nil), set.LocalOutbound...)
	if set.LocalOutboundAll {
		ports, err := listeningPorts()
		if err != nil {
			res.Notices = append(res.Notices, "allowLocalOutbound = true: "+err.Error())
		}
		p.LocalOutbound = append(p.LocalOutbound, ports...)
	}
	p.LocalOutbound = uniqInts(p.LocalOutbound)
	res.Network.LocalOutbound = append([]int(nil), p.LocalOutbound...)
	p.EnvPass = append([]string(nil), set.EnvPass...)
	p.AllowDegraded = append([]string(nil), set.AllowDegraded...)
	p.ConfigFiles = uniqStrings(files)
	kind := sandbox.ConfinementKind()
	p.StateDirs = []string{ConfigDir(), DataDir(), StateDir(), runtimeDir(kind)}
	if kind != "" {
		// A confined fence's own directory is another: the user's daemon
		// is hidden as well.
		p.StateDirs = append(p.StateDirs, runtimeDir(""))
	}
	// Only its parent is resolved: a link planted in its place is never
	// followed (fence shell refuses to start over one).
	p.ShellDir = filepath.Join(sr.resolve(filepath.Dir(ShellDir())), filepath.Base(ShellDir()))
	for _, d := range set.AllowDomains {
		if pat, err := proxy.ParsePattern(d); err == nil {
			res.Network.Allow = append(res.Network.Allow, pat)
		}
	}
	for _, d := range set.DenyDomains {
		if pat, err := proxy.ParsePattern(d); err == nil {
			res.Network.Deny = append(res.Network.Deny, pat)
		}
	}
	res.Shell = ShellSettings{PromptMarker: !set.PromptMarkerOff, AutoEnter: set.AutoEnter}
}

// resolvePaths expands globs and resolves symlinks once.
func (res *Resolved) resolvePaths(ps []string, budget *int, sr symlinkResolver) []string {
	var out []string
	for _, p := range ps {
		matches := []string{literalPath(p)}
		if hasGlob(p) {
			var truncated bool
			matches, truncated = expandGlob(p, budget)
			if truncated {
				res.Notices = append(res.Notices, fmt.Sprintf("glob %q: stopped after %d directory entries or %d matches; some paths it matches are not covered", p, maxGlobVisits, maxGlobMatches))
			}
		}
		for _, m := range matches {
			out = append(out, sr.resolve(m))
		}
	}
	return uniqStrings(out)
}

// symlinkResolver resolves paths through symlinks, remembering every path
// it resolved: the policy's paths share long prefixes (the home directory,
// the project root), so each component is looked at once per Load. A
// parent is resolved first, and below a missing one nothing is looked
// up: most of the paths denied by default (~/Library/..., ~/.var/app/...)
// do not exist, and their children were each an lstat per Load.
type symlinkResolver map[string]resolvedPath

// resolvedPath is a path resolved through symlinks, and whether it (or a
// parent) was missing or could not be looked at.
type resolvedPath struct {
	path    string
	missing bool
}

// resolve returns p resolved through symlinks; for a path that does not
// exist (yet), its nearest existing parent is resolved and the rest kept.
func (r symlinkResolver) resolve(p string) string {
	return r.lookup(p).path
}

func (r symlinkResolver) lookup(p string) resolvedPath {
	if v, ok := r[p]; ok {
		return v
	}
	parent := filepath.Dir(p)
	if parent == p {
		return resolvedPath{path: p}
	}
	up := r.lookup(parent)
	out := resolvedPath{path: filepath.Join(up.path, filepath.Base(p)), missing: true}
	if !up.missing {
		switch fi, err := os.Lstat(p); {
		case err != nil:
			// Missing, or not to be looked at: neither are its children.
		case fi.Mode()&os.ModeSymlink != 0:
			if t, err := filepath.EvalSymlinks(p); err == nil {
				out = resolvedPath{path: t}
			} // else dangling: keep the link's own path
		default:
			out.missing = false
		}
	}
	r[p] = out
	return out
}

func uniqStrings(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func uniqInts(s []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Ints(out)
	return out
}

// Validate checks data as the config file named file would be checked when
// loaded as a project layer (extends entries are not followed).
func Validate(file string, data []byte) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	_, err = parseRules(abs, filepath.Dir(abs), LayerProject, data, false)
	return err
}

// ChainFiles returns the files of the layers in Chain, and for each that is
// a symbolic link (a .fence.toml kept in a dotfiles directory, say) the
// file it leads to: a change to either is a change of the policy, and an
// edit of the target happens in the target's directory (red team of the
// eleventh session: a tightening edit of a linked config was not applied
// to running sessions).
func (r *Resolved) ChainFiles() []string {
	var out []string
	for _, s := range r.Chain {
		if s.File == "" {
			continue
		}
		f := filepath.Clean(s.File)
		out = append(out, f)
		if t, err := filepath.EvalSymlinks(f); err == nil && t != f {
			out = append(out, t)
		}
	}
	return out
}
