package sandbox

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// SeatbeltOptions are the facts of one macOS session that the [Policy] does
// not hold: where home and the fence binary are, the session's private
// TMPDIR, the loopback ports of its network relay and its terminals.
// Every path is absolute and canonical (symlinks resolved).
type SeatbeltOptions struct {
	// Home is the user's home directory; the shell startup files and
	// persistence points under it are protected.
	Home string
	// Executable is the fence binary, protected; empty skips it.
	Executable string
	// TmpDir is the session's private TMPDIR: writable, and the only place
	// where unix sockets may be bound and connected to.
	TmpDir string
	// HTTPProxyPort and SOCKSPort are the 127.0.0.1 ports of this session's
	// relay to the proxy daemon; 0 means none (connections fail closed).
	HTTPProxyPort, SOCKSPort int
	// TTYs are the terminal devices the command may read, write and ioctl
	// (its PTY slave, or the terminal its stdio is connected to). Every
	// other /dev/ttys* is unreadable and unwritable.
	TTYs []string
	// ExtraProtected are protected paths found on disk by the caller
	// ([ResolveProtected]), added to [ProtectedPaths].
	ExtraProtected []ProtectedPath
}

// SeatbeltProbe is a path the profile makes unreadable and that is readable
// everywhere else on macOS: [Inside] tells a fence sandbox by it. Denying it
// also keeps sandboxed code from starting a second, looser sandbox-exec.
const SeatbeltProbe = "/usr/bin/sandbox-exec"

// protectedMarker starts the profile's last section; everything after it is
// a deny, so that it wins over every allow above it (in SBPL the last
// matching rule decides).
const protectedMarker = ";; -- denied and always-protected paths: last, so they win over the allows above"

// SeatbeltProfile returns the Seatbelt (SBPL) profile enforcing p on macOS,
// for `sandbox-exec -p`. It is a pure function of its arguments.
//
// The profile denies by default. It allows reads everywhere except
// p.DenyRead, p.StateDirs, the other terminal devices and [SeatbeltProbe];
// writes under p.AllowWrite, [ShellWritable] and opts.TmpDir (and nowhere
// else in p.ShellDir); network connections only to
// the relay ports, p.LocalOutbound and p.Publish on localhost; binding only
// on localhost (any port with p.AllowLocalBinding, else the p.Publish
// ports); unix sockets only under opts.TmpDir. It ends with denies of
// p.DenyWrite, p.DenyRead and every protected path, including ones that do
// not exist yet and the [ProtectedNames] at any depth, so that neither
// writing, creating, renaming nor hard-linking them is possible.
//
// Paths under /tmp, /var and /etc are emitted in both spellings (/tmp and
// /private/tmp) because Seatbelt matches the resolved path.
func SeatbeltProfile(p Policy, opts SeatbeltOptions) string {
	var b strings.Builder
	b.Grow(32 << 10)
	b.WriteString("(version 1)\n;; fence sandbox profile, generated (sandbox/seatbelt.go)\n(deny default)\n\n")
	b.WriteString(seatbeltBase)

	// Reads.
	b.WriteString("\n;; reads: everything but secrets (denied at the end) and other terminals\n")
	b.WriteString("(allow file-read*)\n")
	b.WriteString("(deny file-read* file-write* file-ioctl\n")
	b.WriteString("  (regex #\"^/dev/ttys[0-9]+$\")\n")
	b.WriteString("  (regex #\"^/dev/pty[a-z][0-9a-f]$\")\n")
	b.WriteString("  (regex #\"^/dev/tty[p-w][0-9a-f]$\"))\n")
	b.WriteString("(deny file-read* process-exec " + sbLiteral(SeatbeltProbe) + ")\n")

	// Terminals.
	b.WriteString("\n;; terminals: the session's own, and PTYs opened inside\n")
	if ttys := sbUniq(opts.TTYs); len(ttys) > 0 {
		b.WriteString("(allow file-read* file-write* file-ioctl")
		for _, t := range ttys {
			b.WriteString("\n  " + sbLiteral(t))
		}
		b.WriteString(")\n")
	}
	b.WriteString(seatbeltPTY)

	// Writes.
	b.WriteString("\n;; writes\n")
	b.WriteString("(allow file-write* file-ioctl\n")
	for _, d := range []string{"/dev/null", "/dev/zero", "/dev/tty", "/dev/dtracehelper"} {
		b.WriteString("  " + sbLiteral(d) + "\n")
	}
	// /dev/fd/N (and /dev/stdout, /dev/stderr, which point there) only
	// duplicates a descriptor the process already has.
	b.WriteString("  (regex #\"^/dev/fd/[0-9]+$\"))\n")
	writable := sbWritableRoots(p, opts)
	if len(writable) > 0 {
		b.WriteString("(allow file-write*")
		for _, w := range writable {
			for _, s := range sbSpellings(w) {
				b.WriteString("\n  " + sbSubpath(s))
			}
		}
		b.WriteString(")\n")
	}
	if p.ShellDir != "" {
		// Before the marker: the session's own shell files must win over
		// this deny, and nothing protected below them may.
		b.WriteString(";; fence shell's session files and histories: read-only, but for this session's own\n")
		b.WriteString("(deny file-write*")
		for _, s := range sbDenySpellings(filepath.Clean(p.ShellDir)) {
			b.WriteString("\n  " + sbSubpath(s))
			b.WriteString("\n  " + sbRegexFilterCI(s, true))
		}
		b.WriteString(")\n")
		if own := ShellWritable(p); len(own) > 0 {
			b.WriteString("(allow file-write*")
			for _, w := range own {
				for _, s := range sbSpellings(w) {
					b.WriteString("\n  " + sbSubpath(s))
				}
			}
			b.WriteString(")\n")
		}
	}

	// Network.
	b.WriteString("\n;; network: only this session's relay and the listed localhost ports\n")
	var out []int
	for _, port := range []int{opts.HTTPProxyPort, opts.SOCKSPort} {
		if sbValidPort(port) {
			out = append(out, port)
		}
	}
	out = append(out, sbValidPorts(p.LocalOutbound)...)
	out = append(out, sbValidPorts(p.Publish)...)
	if out = sbUniqInts(out); len(out) > 0 {
		b.WriteString("(allow network-outbound")
		for _, port := range out {
			fmt.Fprintf(&b, "\n  (remote ip \"localhost:%d\")", port)
		}
		b.WriteString(")\n")
	}
	if p.AllowLocalBinding {
		b.WriteString("(allow network-bind network-inbound (local ip \"localhost:*\"))\n")
	} else if pub := sbUniqInts(sbValidPorts(p.Publish)); len(pub) > 0 {
		b.WriteString("(allow network-bind network-inbound")
		for _, port := range pub {
			fmt.Fprintf(&b, "\n  (local ip \"localhost:%d\")", port)
		}
		b.WriteString(")\n")
	}
	if opts.TmpDir != "" {
		// Unix sockets: only the session's own, under its private TMPDIR.
		b.WriteString("(allow network*")
		for _, s := range sbSpellings(filepath.Clean(opts.TmpDir)) {
			b.WriteString("\n  " + sbSubpath(s))
		}
		b.WriteString(")\n")
	}

	// Denies, last.
	b.WriteString("\n" + protectedMarker + "\n")
	// fence's own state is masked on Linux; here it is unreadable too.
	if deny := sbCleanAll(append(append([]string{}, p.DenyRead...), p.StateDirs...)); len(deny) > 0 {
		b.WriteString(";; denyRead and fence's state (also unwritable: on Linux writes there never reach the host)\n")
		b.WriteString("(deny file-read* file-write*")
		for _, d := range deny {
			for _, s := range sbDenySpellings(d) {
				b.WriteString("\n  " + sbSubpath(s))
				b.WriteString("\n  " + sbRegexFilterCI(s, true))
			}
		}
		b.WriteString(")\n")
	}
	if deny := sbCleanAll(p.DenyWrite); len(deny) > 0 {
		b.WriteString(";; denyWrite\n")
		b.WriteString("(deny file-write*")
		for _, d := range deny {
			for _, s := range sbDenySpellings(d) {
				b.WriteString("\n  " + sbSubpath(s))
				b.WriteString("\n  " + sbRegexFilterCI(s, true))
			}
		}
		b.WriteString(")\n")
	}
	protected := dedupe(append(ProtectedPaths(p, opts.Home, opts.Executable), opts.ExtraProtected...))
	b.WriteString(";; always protected (DESIGN.md section 6.3), existing or not; whole trees, and in any letter case\n")
	b.WriteString("(deny file-write*")
	names := ProtectedNames(p)
	for _, pp := range protected {
		if p.ShellDir != "" && pp.Path == filepath.Clean(p.ShellDir) {
			continue // above, with the session's own files left writable
		}
		covered := sbCoveredByNames(pp.Path, names)
		for _, s := range sbDenySpellings(pp.Path) {
			b.WriteString("\n  " + sbSubpath(s))
			if !covered {
				b.WriteString("\n  " + sbRegexFilterCI(s, true))
			}
		}
	}
	b.WriteString(")\n")
	b.WriteString(";; protected names at any depth, in every writable directory\n")
	b.WriteString("(deny file-write*")
	for _, re := range sbNameRegexes(names) {
		b.WriteString("\n  (regex #\"" + re + "\")")
	}
	b.WriteString(")\n")
	if anc := sbAncestors(protected, p, writable); len(anc) > 0 {
		b.WriteString(";; their parents inside writable paths: renaming one away would carry the protected path out of its rules\n")
		b.WriteString("(deny file-write*")
		for _, a := range anc {
			for _, s := range sbDenySpellings(a) {
				b.WriteString("\n  " + sbLiteral(s))
			}
		}
		b.WriteString(")\n")
	}
	// Hard links and APFS clones (file-link, file-clone) are never allowed:
	// either would give a protected file a second, writable name. deny
	// default covers them; naming them here would only risk a profile an
	// older macOS cannot compile.
	return b.String()
}

// seatbeltBase is what every process needs, whatever the policy.
const seatbeltBase = `;; processes: children inherit the sandbox; signals and process info stay inside it
(allow process-exec)
(allow process-fork)
(allow signal (target same-sandbox))
(allow process-info* (target same-sandbox))

;; system information
(allow sysctl-read
  (sysctl-name-prefix "hw.")
  (sysctl-name-prefix "machdep.")
  (sysctl-name-prefix "kern.proc.")
  (sysctl-name-prefix "net.routetable.")
  (sysctl-name-prefix "user.")
  (sysctl-name-prefix "vm.")
  (sysctl-name "kern.argmax")
  (sysctl-name "kern.boottime")
  (sysctl-name "kern.clockrate")
  (sysctl-name "kern.hostname")
  (sysctl-name "kern.maxfiles")
  (sysctl-name "kern.maxfilesperproc")
  (sysctl-name "kern.maxproc")
  (sysctl-name "kern.ngroups")
  (sysctl-name "kern.osproductversion")
  (sysctl-name "kern.osrelease")
  (sysctl-name "kern.ostype")
  (sysctl-name "kern.osvariant_status")
  (sysctl-name "kern.osversion")
  (sysctl-name "kern.secure_kernel")
  (sysctl-name "kern.tcsm_available")
  (sysctl-name "kern.tcsm_enable")
  (sysctl-name "kern.usrstack64")
  (sysctl-name "kern.version")
  (sysctl-name "security.mac.lockdown_mode_state")
  (sysctl-name "sysctl.proc_cputype"))
(allow sysctl-write (sysctl-name "kern.grade_cputype") (sysctl-name "kern.tcsm_enable"))
(allow mach-host*)
(allow user-preference-read)
(allow ipc-posix-sem ipc-posix-shm)
(allow iokit-open (iokit-registry-entry-class "RootDomainUserClient"))

;; system services: name lookups, logging, TLS trust, preferences (read), file
;; events. Not LaunchServices, AppleEvents, the keychain or launchd jobs: each
;; of those can run code or read secrets outside the sandbox.
(allow mach-lookup
  (global-name "com.apple.system.opendirectoryd.libinfo")
  (global-name "com.apple.system.opendirectoryd.membership")
  (global-name "com.apple.system.logger")
  (global-name "com.apple.logd")
  (global-name "com.apple.system.notification_center")
  (global-name "com.apple.bsd.dirhelper")
  (global-name "com.apple.trustd")
  (global-name "com.apple.trustd.agent")
  (global-name "com.apple.cfprefsd.daemon")
  (global-name "com.apple.cfprefsd.agent")
  (global-name "com.apple.SystemConfiguration.configd")
  (global-name "com.apple.SystemConfiguration.DNSConfiguration")
  (global-name "com.apple.FSEvents")
  (global-name "com.apple.PowerManagement.control"))
`

// seatbeltPTY lets programs inside open PTYs of their own (tmux, expect,
// script); the extension is granted only for PTYs opened in this sandbox.
const seatbeltPTY = `(allow pseudo-tty)
(allow file-read* file-write* file-ioctl (literal "/dev/ptmx"))
(allow file-read* file-write* file-ioctl
  (require-all (regex #"^/dev/ttys[0-9]+$") (extension "com.apple.sandbox.pty")))
`

// sbWritableRoots returns the cleaned AllowWrite paths, the session's own
// shell files and TmpDir.
func sbWritableRoots(p Policy, opts SeatbeltOptions) []string {
	w := append(sbCleanAll(p.AllowWrite), ShellWritable(p)...)
	if opts.TmpDir != "" {
		w = append(w, filepath.Clean(opts.TmpDir))
	}
	return sbUniq(w)
}

// sbAncestors returns the parents of the protected, denyWrite and denyRead
// paths that lie inside a writable root (the root included): the only
// parents the sandbox could rename.
func sbAncestors(protected []ProtectedPath, p Policy, writable []string) []string {
	paths := make([]string, 0, len(protected)+len(p.DenyWrite)+len(p.DenyRead))
	for _, pp := range protected {
		paths = append(paths, pp.Path)
	}
	paths = append(paths, sbCleanAll(p.DenyWrite)...)
	paths = append(paths, sbCleanAll(p.DenyRead)...)
	canonWritable := make([]string, len(writable))
	for i, w := range writable {
		canonWritable[i] = sbCanonical(w)
	}
	set := map[string]bool{}
	for _, path := range paths {
		for a := filepath.Dir(path); ; a = filepath.Dir(a) {
			ca := sbCanonical(a)
			for _, w := range canonWritable {
				if sbWithin(ca, w) {
					set[a] = true
					break
				}
			}
			if a == "/" || a == "." {
				break
			}
		}
	}
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// sbWithin reports whether path is dir or under it.
func sbWithin(path, dir string) bool {
	return path == dir || dir == "/" ||
		len(path) > len(dir) && path[len(dir)] == '/' && path[:len(dir)] == dir
}

// sbAliases are the top-level symlinks of macOS into /private.
var sbAliases = []string{"/tmp", "/var", "/etc"}

// sbCanonical rewrites /tmp, /var and /etc paths to their /private form.
func sbCanonical(path string) string {
	for _, a := range sbAliases {
		if sbWithin(path, a) {
			return "/private" + path
		}
	}
	return path
}

// sbFirmlinked are the top-level directories macOS firmlinks to the data
// volume: /Users/a and /System/Volumes/Data/Users/a are the same file.
var sbFirmlinked = []string{"/Applications", "/Library", "/Users", "/Volumes", "/cores", "/opt", "/private", "/usr/local"}

// sbDenySpellings returns [sbSpellings] of path plus their data-volume
// spellings. Denies use them all: a spelling the kernel might report that a
// deny does not name would let the write through, while an extra one costs
// nothing.
func sbDenySpellings(path string) []string {
	out := sbSpellings(path)
	for _, s := range out {
		for _, f := range sbFirmlinked {
			if sbWithin(s, f) {
				out = append(out, "/System/Volumes/Data"+s)
				break
			}
		}
	}
	return out
}

// sbCoveredByNames reports whether a deny of one of names (matched at any
// depth and in any letter case) already covers path, so that its own
// case-insensitive regex would be redundant.
func sbCoveredByNames(path string, names []ProtectedName) bool {
	for _, n := range names {
		if strings.Contains(n.Name, "*") {
			continue
		}
		suffix := "/" + n.Name
		if strings.HasSuffix(path, suffix) {
			return true
		}
	}
	return false
}

// sbSpellings returns path and, when macOS aliases it, its other spelling:
// /private/tmp/x and /tmp/x name the same file, and a rule written for one
// does not match the other.
func sbSpellings(path string) []string {
	path = filepath.Clean(path)
	for _, a := range sbAliases {
		if sbWithin(path, a) {
			return []string{"/private" + path, path}
		}
		if sbWithin(path, "/private"+a) {
			return []string{path, strings.TrimPrefix(path, "/private")}
		}
	}
	return []string{path}
}

// sbplString quotes s as an SBPL (TinyScheme) string literal.
func sbplString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func sbLiteral(path string) string { return "(literal " + sbplString(path) + ")" }
func sbSubpath(path string) string { return "(subpath " + sbplString(path) + ")" }

// sbRegexFilterCI is a regex filter matching path (and with tree, everything
// under it) in any letter case: the default macOS volume is
// case-insensitive, so /Users/a/.SSH is /Users/a/.ssh.
func sbRegexFilterCI(path string, tree bool) string {
	re := "^" + sbRegexCI(path)
	if tree {
		re += "($|/)"
	} else {
		re += "$"
	}
	return "(regex #\"" + re + "\")"
}

// sbRegexCI returns a regex matching s literally, each ASCII letter in
// either case. (APFS also folds U+017F and U+212A to s and k; they are left
// out because non-ASCII in a regex is one more thing the SBPL compiler could
// refuse.) It never contains a double quote, so it is safe in an SBPL #"..."
// literal: a quote or control character in s becomes "[^/]" (any character
// but a slash), which only widens a deny.
func sbRegexCI(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			b.Write([]byte{'[', byte(r), byte(r - 'a' + 'A'), ']'})
		case r >= 'A' && r <= 'Z':
			b.Write([]byte{'[', byte(r - 'A' + 'a'), byte(r), ']'})
		case r == '"' || r < 0x20 || r == 0x7f:
			b.WriteString("[^/]")
		case strings.ContainsRune(`\.+*?()|[{^$`, r):
			// "]" and "}" are plain outside brackets; escaping them is
			// undefined in POSIX regular expressions.
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// sbNameRegexes turns [ProtectedName]s into unanchored regexes matching them
// at any depth, in any letter case. Each proper prefix of a name (".git",
// ".git/modules") is matched as an entry too: renaming it away and back
// would otherwise carry a modified protected path in.
func sbNameRegexes(names []ProtectedName) []string {
	var out []string
	seen := map[string]bool{}
	add := func(re string) {
		if !seen[re] {
			seen[re] = true
			out = append(out, re)
		}
	}
	for _, n := range names {
		elems := strings.Split(n.Name, "/")
		for i := 1; i < len(elems); i++ {
			if elems[i-1] != "*" {
				add("/" + sbElemsRegex(elems[:i]) + "$")
			}
		}
		re := "/" + sbElemsRegex(elems)
		if n.Dir {
			re += "($|/)"
		} else {
			re += "$"
		}
		add(re)
	}
	return out
}

func sbElemsRegex(elems []string) string {
	parts := make([]string, len(elems))
	for i, e := range elems {
		if e == "*" {
			parts[i] = "[^/]+"
		} else {
			parts[i] = sbRegexCI(e)
		}
	}
	return strings.Join(parts, "/")
}

func sbCleanAll(paths []string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if p != "" {
			out = append(out, filepath.Clean(p))
		}
	}
	return sbUniq(out)
}

// sbUniq drops repeats, keeping the first occurrence's place.
func sbUniq(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func sbUniqInts(in []int) []int {
	sort.Ints(in)
	out := in[:0]
	for i, v := range in {
		if i == 0 || v != in[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func sbValidPort(p int) bool { return p > 0 && p < 65536 }

func sbValidPorts(ports []int) []int {
	var out []int
	for _, p := range ports {
		if sbValidPort(p) {
			out = append(out, p)
		}
	}
	return out
}

// seatbeltRelayEnv points the proxy variables [SandboxEnv] set at the session's
// relay ports on the host's loopback (macOS has no network namespace in
// which the fixed ports could be used). With no relay they keep pointing at
// ports the profile does not let the command reach: fail closed.
func seatbeltRelayEnv(env []string, httpPort, socksPort int) []string {
	if httpPort == 0 || socksPort == 0 {
		return env
	}
	h := "127.0.0.1:" + strconv.Itoa(httpPort)
	s := "127.0.0.1:" + strconv.Itoa(socksPort)
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy":
			v = "http://" + h
		case "ALL_PROXY", "all_proxy":
			v = "socks5h://" + s
		case "GIT_SSH_COMMAND":
			// fence proxy-connect defaults to the Linux relay's fixed port.
			v = strings.Replace(v, " proxy-connect %h %p", " proxy-connect --proxy "+s+" %h %p", 1)
		case "JAVA_TOOL_OPTIONS":
			v = strings.ReplaceAll(v, "Port="+strconv.Itoa(HTTPProxyPort), "Port="+strconv.Itoa(httpPort))
		}
		out = append(out, k+"="+v)
	}
	return out
}
