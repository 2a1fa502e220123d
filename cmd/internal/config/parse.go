package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/fence-dev/fence/proxy"
)

// item is one string value as written, with its position.
type item struct {
	Value     string
	Raw       string // as written, before ~ and relative paths were expanded
	Line, Col int
}

// intItem is one integer value (a port) as written.
type intItem struct {
	Value     int
	Line, Col int
}

// boolItem is a boolean key; Set reports whether the file wrote it.
type boolItem struct {
	Set, Value bool
	Line, Col  int
}

// fileRules is what one config file (or built-in template) says, validated
// but not merged. Paths are absolute (~ and relative paths expanded against
// Dir) but globs are not expanded yet.
type fileRules struct {
	File  string // absolute path, "template:NAME" or "" for built-in defaults
	Dir   string // directory relative paths were resolved against
	Layer string // "default", "system", "user", "flag" (-t), "project"
	Src   []byte // the bytes read, for the trust hash (local files only)

	Extends []item

	AllowedDomains, DeniedDomains []item
	AllowLocalBinding             boolItem
	LocalOutbound                 []intItem
	LocalOutboundAll              boolItem
	Publish                       []intItem

	AllowWrite, DenyWrite, DenyRead []item
	AllowGitConfig                  boolItem

	EnvPass []item

	PromptMarker  boolItem
	AutoEnter     []item
	AllowDegraded []item
}

// kind of a config key's value.
type kind int

const (
	kStrings kind = iota
	kBool
	kPorts
	kPortsOrBool
)

// schema is every key fence reads, per table. "" is the top level.
var schema = map[string]map[string]kind{
	"": {"extends": kStrings},
	"network": {
		"allowedDomains":     kStrings,
		"deniedDomains":      kStrings,
		"allowLocalBinding":  kBool,
		"allowLocalOutbound": kPortsOrBool,
		"publish":            kPorts,
	},
	"filesystem": {
		"allowWrite":     kStrings,
		"denyWrite":      kStrings,
		"denyRead":       kStrings,
		"allowGitConfig": kBool,
	},
	"env":     {"pass": kStrings},
	"shell":   {"promptMarker": kBool, "autoEnter": kStrings},
	"sandbox": {"allowDegraded": kStrings},
}

// userOnlyTables may appear in the user config (and the system policy)
// only: they are settings of the user's fence, not of a project.
var userOnlyTables = map[string]bool{"shell": true, "sandbox": true}

// DegradableLayers are the protection layers `[sandbox] allowDegraded` may
// name.
var DegradableLayers = []string{"landlock", "seccomp"}

// parser validates one file's TOML.
type parser struct {
	file  string
	src   string
	md    toml.MetaData
	lines []int // byte offset of each line start
	r     *fileRules
	user  bool // user-only tables allowed
}

// parseRules parses and validates one config file. dir is what relative
// paths are relative to; userLayer allows [shell] and [sandbox].
func parseRules(file, dir, layer string, data []byte, userLayer bool) (*fileRules, error) {
	p := &parser{file: file, src: string(data), user: userLayer,
		r: &fileRules{File: file, Dir: dir, Layer: layer}}
	p.lines = append(p.lines, 0)
	for i := 0; i < len(p.src); i++ {
		if p.src[i] == '\n' {
			p.lines = append(p.lines, i+1)
		}
	}
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, w := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && w <= 1 {
				break
			}
			off += w
		}
		return nil, p.errAt(off, "invalid UTF-8: a config file must be UTF-8 text")
	}
	var top map[string]toml.Primitive
	md, err := toml.Decode(p.src, &top)
	if err != nil {
		return nil, p.syntaxError(err)
	}
	p.md = md
	if len(md.Keys()) == 0 {
		e := p.errAt(0, "empty config: no tables or keys")
		e.Line, e.Col = 1, 1
		e.Hint = "an empty " + ProjectFile + " would change nothing; write at least one table such as [network], or run 'fence init' for a commented starter"
		return nil, e
	}
	for _, k := range p.sorted(top) {
		prim := top[k]
		if _, ok := schema[k]; ok && k != "" {
			if err := p.table(k, prim); err != nil {
				return nil, err
			}
			continue
		}
		if kd, ok := schema[""][k]; ok {
			if err := p.value("", k, kd, prim); err != nil {
				return nil, err
			}
			continue
		}
		return nil, p.unknown("", k, prim)
	}
	return p.r, nil
}

// sorted returns the keys of m in the order they appear in the file, so the
// first error reported is the first one in the file.
func (p *parser) sorted(m map[string]toml.Primitive) []string {
	keys := make([]string, 0, len(m))
	off := map[string]int{}
	for k, prim := range m {
		keys = append(keys, k)
		off[k] = p.offset(prim)
	}
	sort.Slice(keys, func(i, j int) bool {
		if off[keys[i]] != off[keys[j]] {
			return off[keys[i]] < off[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

// probe makes the TOML decoder report the position of a key: decoding a
// Primitive into it fails with a ParseError positioned at that key's value.
// BurntSushi/toml keeps key positions but has no API to read them.
type probe struct{}

var errProbe = errors.New("position probe")

func (probe) UnmarshalTOML(any) error { return errProbe }

// offset returns the byte offset of prim's value (or table header), or the
// smallest offset among its children for implicit tables (a.b = 1), or -1.
func (p *parser) offset(prim toml.Primitive) int {
	err := p.md.PrimitiveDecode(prim, probe{})
	var pe toml.ParseError
	if errors.As(err, &pe) && pe.Position.Line > 0 {
		return p.valueStart(pe.Position.Start)
	}
	var sub map[string]toml.Primitive
	if p.md.PrimitiveDecode(prim, &sub) == nil {
		best := -1
		for _, c := range sub {
			if o := p.offset(c); o >= 0 && (best < 0 || o < best) {
				best = o
			}
		}
		return best
	}
	return -1
}

// valueStart corrects the decoder's value offsets, which point just past
// the opening bracket, brace or quote(s), back to the value's first byte.
func (p *parser) valueStart(off int) int {
	j := off
	for j > 0 && off-j < 3 && strings.IndexByte("[{\"'", p.src[j-1]) >= 0 {
		j--
	}
	if j == off {
		return off
	}
	k := j - 1
	for k >= 0 && (p.src[k] == ' ' || p.src[k] == '\t') {
		k--
	}
	if k >= 0 && p.src[k] == '=' {
		return j
	}
	return off
}

// keyOffset returns the offset of the key whose value starts at valOff:
// for "key = value" the start of the last key segment, for a [table]
// header the table name.
func (p *parser) keyOffset(valOff int) int {
	if valOff < 0 || valOff >= len(p.src) {
		return valOff
	}
	i := valOff - 1
	for i >= 0 && (p.src[i] == ' ' || p.src[i] == '\t') {
		i--
	}
	if i < 0 || p.src[i] != '=' {
		// A [table] header: point at the name after the bracket(s).
		j := valOff
		for j < len(p.src) && (p.src[j] == '[' || p.src[j] == ' ' || p.src[j] == '\t') {
			j++
		}
		return j
	}
	i--
	for i >= 0 && (p.src[i] == ' ' || p.src[i] == '\t') {
		i--
	}
	if i < 0 {
		return valOff
	}
	if q := p.src[i]; q == '"' || q == '\'' {
		j := strings.LastIndexByte(p.src[:i], q)
		if j >= 0 {
			return j
		}
		return i
	}
	end := i
	for i >= 0 && isBareKeyChar(p.src[i]) {
		i--
	}
	if i == end {
		return valOff
	}
	return i + 1
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// lineCol converts a byte offset to a 1-based line and column (in runes).
func (p *parser) lineCol(off int) (int, int) {
	if off < 0 {
		return 0, 0
	}
	if off > len(p.src) {
		off = len(p.src)
	}
	line := sort.Search(len(p.lines), func(i int) bool { return p.lines[i] > off })
	start := p.lines[line-1]
	return line, utf8.RuneCountInString(p.src[start:off]) + 1
}

func (p *parser) errAt(off int, format string, args ...any) *Error {
	line, col := p.lineCol(off)
	return &Error{File: p.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// definedKey returns the key a TOML "already defined" error names
// ("Key 'a.b' has already been defined.", "Key 'a' was already created
// as a table ...").
func definedKey(msg string) (string, bool) {
	rest, ok := strings.CutPrefix(msg, "Key '")
	if !ok {
		return "", false
	}
	if i := strings.LastIndex(rest, "' was already created"); i >= 0 {
		return rest[:i], true
	}
	return strings.CutSuffix(strings.TrimSuffix(rest, "."), "' has already been defined")
}

// skipSpace returns the offset of the first byte at or after i in src
// that is not white space as a regular expression's \s sees it.
func skipSpace(src string, i int) int {
	for i < len(src) && strings.IndexByte(" \t\n\f\r", src[i]) >= 0 {
		i++
	}
	return i
}

// keyArrayEnd finds `key = [` in src, the key bare or quoted and preceded
// by the start, a space, '{', ',' or '.', and returns the offset just after
// the '[', or -1.
func keyArrayEnd(src, key string) int {
	if key == "" {
		return -1
	}
	for from := 0; ; {
		i := strings.Index(src[from:], key)
		if i < 0 {
			return -1
		}
		i += from
		from = i + 1
		start := i
		if start > 0 && src[start-1] == '"' {
			start--
		}
		if start > 0 && !strings.ContainsRune(" \t\n\f\r{,.", rune(src[start-1])) {
			continue
		}
		j := i + len(key)
		if j < len(src) && src[j] == '"' {
			j++
		}
		if j = skipSpace(src, j); j >= len(src) || src[j] != '=' {
			continue
		}
		if j = skipSpace(src, j+1); j < len(src) && src[j] == '[' {
			return j + 1
		}
	}
}

// syntaxError turns a TOML parse error into an [Error].
func (p *parser) syntaxError(err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return &Error{File: p.file, Msg: "toml: " + err.Error()}
	}
	msg := strings.TrimSuffix(pe.Message, ".")
	if key, ok := definedKey(pe.Message); ok {
		msg = fmt.Sprintf("duplicate key %q: it was already defined above", key)
	} else if msg != "" {
		msg = "toml syntax: " + strings.ToLower(msg[:1]) + msg[1:]
	}
	line, col := pe.Position.Line, pe.Position.Col
	if pe.Position.Start > 0 || line == 1 {
		line, col = p.lineCol(pe.Position.Start)
	}
	if line == 0 {
		// Some lexer errors carry no position; point at the first control
		// character (the usual cause) or the start of the file.
		off := strings.IndexFunc(p.src, func(r rune) bool {
			return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f
		})
		line, col = p.lineCol(max(off, 0))
	}
	if col < 1 {
		col = 1
	}
	return &Error{File: p.file, Line: line, Col: col, Msg: msg}
}

func tableName(t string) string {
	if t == "" {
		return "at the top level"
	}
	return "in [" + t + "]"
}

// unknown reports key k of table t that fence does not know, with a
// did-you-mean.
func (p *parser) unknown(t, k string, prim toml.Primitive) error {
	off := p.keyOffset(p.offset(prim))
	if t == "" {
		off = p.firstSegment(off, k)
	}
	e := p.errAt(off, "unknown key %q %s", k, tableName(t))
	if t == "" && p.md.Type(k) == "Hash" {
		e.Msg = fmt.Sprintf("unknown table [%s]", k)
	}
	if s := suggest(t, k); s != "" {
		e.Msg += " (did you mean " + s + "?)"
	}
	return e
}

// suggest finds what the user probably meant by key k in table t.
func suggest(t, k string) string {
	best, bestD := "", 3
	if len(k) > 9 {
		bestD = len(k) / 3
	}
	for name := range schema[t] {
		if d := editDistance(strings.ToLower(k), strings.ToLower(name)); d < bestD || d == bestD && name < best {
			best, bestD = name, d
		}
	}
	if t == "" {
		for name := range schema {
			if name == "" {
				continue
			}
			if d := editDistance(strings.ToLower(k), name); d < bestD || d == bestD && "["+name+"]" < best {
				best, bestD = "["+name+"]", d
			}
		}
	}
	if best != "" {
		if strings.HasPrefix(best, "[") {
			return best
		}
		return strconv.Quote(best)
	}
	// The right key in the wrong table: allowWrite under [network].
	var tables []string
	for tn, keys := range schema {
		for name := range keys {
			if tn != t && strings.EqualFold(name, k) {
				tables = append(tables, tn)
			}
		}
	}
	sort.Strings(tables)
	for _, tn := range tables {
		if tn == "" {
			return fmt.Sprintf("%q at the top level", k)
		}
		for name := range schema[tn] {
			if strings.EqualFold(name, k) {
				return fmt.Sprintf("%q in [%s]", name, tn)
			}
		}
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// table validates the keys of one known table.
func (p *parser) table(t string, prim toml.Primitive) error {
	off := p.offset(prim)
	if typ := p.md.Type(t); typ != "Hash" && typ != "" {
		return p.errAt(off, "%q must be a table ([%s]), got %s", t, t, typeName(typ))
	}
	if userOnlyTables[t] && !p.user {
		e := p.errAt(p.keyOffset(off), "[%s] is only allowed in the user config", t)
		e.Hint = "move it to " + UserConfigFile()
		return e
	}
	var keys map[string]toml.Primitive
	if err := p.md.PrimitiveDecode(prim, &keys); err != nil {
		return p.errAt(off, "%q must be a table", t)
	}
	for _, k := range p.sorted(keys) {
		kd, ok := schema[t][k]
		if !ok {
			return p.unknown(t, k, keys[k])
		}
		if err := p.value(t, k, kd, keys[k]); err != nil {
			return err
		}
	}
	return nil
}

func typeName(typ string) string {
	switch typ {
	case "String":
		return "a string"
	case "Integer":
		return "an integer"
	case "Float":
		return "a float"
	case "Bool":
		return "a boolean"
	case "Datetime":
		return "a date"
	case "Array":
		return "an array"
	case "Hash":
		return "a table"
	case "ArrayHash":
		return "an array of tables"
	}
	return "a " + strings.ToLower(typ)
}

func goTypeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "a date"
}

// value validates and stores key k of table t.
func (p *parser) value(t, k string, kd kind, prim toml.Primitive) error {
	off := p.offset(prim)
	var v any
	if err := p.md.PrimitiveDecode(prim, &v); err != nil {
		return p.errAt(off, "%q %s: %v", k, tableName(t), err)
	}
	name := fmt.Sprintf("%q %s", k, tableName(t))
	line, col := p.lineCol(off)
	switch kd {
	case kBool:
		b, ok := v.(bool)
		if !ok {
			return p.errAt(off, "%s must be true or false, got %s", name, goTypeName(v))
		}
		p.setBool(t, k, boolItem{Set: true, Value: b, Line: line, Col: col})
		return nil
	case kPortsOrBool:
		if b, ok := v.(bool); ok {
			p.r.LocalOutboundAll = boolItem{Set: true, Value: b, Line: line, Col: col}
			return nil
		}
		if _, ok := v.([]any); !ok {
			return p.errAt(off, "%s must be an array of ports or true, got %s", name, goTypeName(v))
		}
	}
	arr, ok := v.([]any)
	if !ok {
		want := "an array of strings"
		if kd == kPorts {
			want = "an array of ports"
		}
		return p.errAt(off, "%s must be %s, got %s", name, want, goTypeName(v))
	}
	if off >= 0 && off < len(p.src) && p.src[off] != '[' {
		// Inside an inline table the decoder reports the table's position;
		// find this key's array after it.
		if end := keyArrayEnd(p.src[off:], k); end >= 0 {
			off += end - 1
		}
	}
	elems := arrayElems(p.src, off)
	elemOff := func(i int) int {
		if i < len(elems) {
			return elems[i]
		}
		return off
	}
	for i, e := range arr {
		eo := elemOff(i)
		el, ec := p.lineCol(eo)
		if kd == kPorts || kd == kPortsOrBool {
			n, ok := e.(int64)
			if !ok {
				return p.errAt(eo, "%s: element %d must be a port number, got %s", name, i+1, goTypeName(e))
			}
			if n < 1 || n > 65535 {
				return p.errAt(eo, "%s: bad port %d: want a number from 1 to 65535", name, n)
			}
			it := intItem{Value: int(n), Line: el, Col: ec}
			if kd == kPorts {
				p.r.Publish = append(p.r.Publish, it)
			} else {
				p.r.LocalOutbound = append(p.r.LocalOutbound, it)
			}
			continue
		}
		s, ok := e.(string)
		if !ok {
			return p.errAt(eo, "%s: element %d must be a string, got %s", name, i+1, goTypeName(e))
		}
		it := item{Value: s, Raw: s, Line: el, Col: ec}
		if err := p.checkString(t, k, &it); err != nil {
			return p.errAt(eo, "%s: %v", name, err)
		}
		dst := p.stringsFor(t, k)
		*dst = append(*dst, it)
	}
	return nil
}

func (p *parser) setBool(t, k string, b boolItem) {
	switch t + "." + k {
	case "network.allowLocalBinding":
		p.r.AllowLocalBinding = b
	case "filesystem.allowGitConfig":
		p.r.AllowGitConfig = b
	case "shell.promptMarker":
		p.r.PromptMarker = b
	}
}

func (p *parser) stringsFor(t, k string) *[]item {
	switch t + "." + k {
	case ".extends":
		return &p.r.Extends
	case "network.allowedDomains":
		return &p.r.AllowedDomains
	case "network.deniedDomains":
		return &p.r.DeniedDomains
	case "filesystem.allowWrite":
		return &p.r.AllowWrite
	case "filesystem.denyWrite":
		return &p.r.DenyWrite
	case "filesystem.denyRead":
		return &p.r.DenyRead
	case "env.pass":
		return &p.r.EnvPass
	case "shell.autoEnter":
		return &p.r.AutoEnter
	case "sandbox.allowDegraded":
		return &p.r.AllowDegraded
	}
	panic("config: BUG: no destination for " + t + "." + k)
}

// envName reports whether s is a variable name: [A-Za-z_][A-Za-z0-9_]*.
func envName(s string) bool {
	for i, c := range s {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return s != ""
}

// checkString validates one string element and, for paths, expands it.
func (p *parser) checkString(t, k string, it *item) error {
	for _, r := range it.Value {
		switch {
		case isControl(r):
			return fmt.Errorf("control character U+%04X in %s: config strings may not hold control characters", r, strconv.Quote(it.Value))
		case isBidi(r):
			return fmt.Errorf("bidirectional formatting character U+%04X in %s: it would make fence's output read differently from the config", r, strconv.Quote(it.Value))
		}
	}
	switch t + "." + k {
	case ".extends":
		if strings.TrimSpace(it.Value) == "" {
			return errors.New("empty entry")
		}
	case "network.allowedDomains", "network.deniedDomains":
		pat, err := proxy.ParsePattern(it.Value)
		if err != nil {
			return err
		}
		_ = pat
	case "filesystem.allowWrite", "filesystem.denyWrite", "filesystem.denyRead", "shell.autoEnter":
		abs, err := expandPath(it.Value, p.r.Dir)
		if err != nil {
			return err
		}
		it.Value = abs
	case "env.pass":
		if !envName(it.Value) {
			return fmt.Errorf("%q is not an environment variable name", it.Value)
		}
	case "sandbox.allowDegraded":
		for _, l := range DegradableLayers {
			if it.Value == l {
				return nil
			}
		}
		return fmt.Errorf("unknown protection layer %q (known: %s)", it.Value, strings.Join(DegradableLayers, ", "))
	}
	return nil
}

// expandPath makes a config path absolute: "~" and "~/x" are the home
// directory, other relative paths are relative to dir. Glob syntax is
// checked here but expanded at load time (see expandGlob). The result is a
// pattern: glob characters (and backslashes) in the home directory or in
// dir, which the user did not write, are escaped with a backslash, so a
// project in "p[1]" is not a glob; [literalPath] undoes that.
func expandPath(s, dir string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", errors.New("empty path")
	}
	if strings.ContainsRune(s, 0) {
		return "", errors.New("path contains a NUL byte")
	}
	switch {
	case s == "~":
		s = escapeGlob(home())
	case strings.HasPrefix(s, "~/"):
		s = filepath.Join(escapeGlob(home()), s[2:])
	case strings.HasPrefix(s, "~"):
		return "", fmt.Errorf("path %q: only ~ and ~/ are supported, not ~user", s)
	case !filepath.IsAbs(s):
		s = filepath.Join(escapeGlob(dir), s)
	}
	s = filepath.Clean(s)
	for _, seg := range strings.Split(s, "/") {
		if seg == "**" {
			continue
		}
		// filepath.Clean does not see an escaped dot (`\.` or `\.\.`), but
		// the sandbox uses the unescaped path, where ".." would climb out of
		// the directory the entry names.
		if lit := literalPath(seg); lit == "." || lit == ".." {
			return "", fmt.Errorf("path %q: an escaped %q segment is not allowed", literalPath(s), lit)
		}
		if strings.Contains(seg, "**") {
			return "", fmt.Errorf("path %q: \"**\" must be a whole path segment (a/**/b)", literalPath(s))
		}
		if _, err := filepath.Match(seg, ""); err != nil {
			return "", fmt.Errorf("path %q: bad glob segment %q", literalPath(s), literalPath(seg))
		}
	}
	return s, nil
}

// expandFile is expandPath for a file name (extends): no globs, so nothing
// to escape.
func expandFile(s, dir string) (string, error) {
	switch {
	case strings.TrimSpace(s) == "":
		return "", errors.New("empty path")
	case strings.ContainsRune(s, 0):
		return "", errors.New("path contains a NUL byte")
	case s == "~":
		s = home()
	case strings.HasPrefix(s, "~/"):
		s = filepath.Join(home(), s[2:])
	case strings.HasPrefix(s, "~"):
		return "", fmt.Errorf("path %q: only ~ and ~/ are supported, not ~user", s)
	case !filepath.IsAbs(s):
		s = filepath.Join(dir, s)
	}
	return filepath.Clean(s), nil
}

// arrayElems returns the byte offsets of the top-level elements of the TOML
// array whose '[' is at src[start]; nil if there is no array there.
func arrayElems(src string, start int) []int {
	if start < 0 || start >= len(src) || src[start] != '[' {
		return nil
	}
	var out []int
	depth := 0
	expect := false
	mark := func(i int) {
		if depth == 1 && expect {
			out = append(out, i)
			expect = false
		}
	}
	for i := start; i < len(src); {
		c := src[i]
		switch {
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == ',':
			if depth == 1 {
				expect = true
			}
			i++
		case c == '[' || c == '{':
			mark(i)
			depth++
			if depth == 1 {
				expect = true
			}
			i++
		case c == ']' || c == '}':
			depth--
			i++
			if depth == 0 {
				return out
			}
		case c == '"' || c == '\'':
			mark(i)
			i = skipString(src, i)
		default:
			mark(i)
			for i < len(src) && !strings.ContainsRune(" \t\r\n,]}#", rune(src[i])) {
				i++
			}
		}
	}
	return out
}

// skipString returns the offset just after the TOML string starting at i.
func skipString(src string, i int) int {
	q := src[i]
	triple := strings.Repeat(string(q), 3)
	if strings.HasPrefix(src[i:], triple) {
		j := strings.Index(src[i+3:], triple)
		if j < 0 {
			return len(src)
		}
		end := i + 3 + j + 3
		for end < len(src) && src[end] == q { // """a"""" ends with the last quotes
			end++
		}
		return end
	}
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			if q == '"' {
				j++
			}
		case q:
			return j + 1
		case '\n':
			return j
		}
	}
	return len(src)
}

// firstSegment moves off back to where the dotted key holding segment k
// begins ("netwrok.allowedDomains = ..." reports at "netwrok").
func (p *parser) firstSegment(off int, k string) int {
	if off < 0 || off > len(p.src) {
		return off
	}
	lineStart := strings.LastIndexByte(p.src[:off], '\n') + 1
	if i := strings.LastIndex(p.src[lineStart:off+min(len(k), len(p.src)-off)], k); i >= 0 {
		return lineStart + i
	}
	return off
}
