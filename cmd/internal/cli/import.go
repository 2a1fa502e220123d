package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/fence-dev/fence/cmd/internal/config"
	"github.com/fence-dev/fence/proxy"
)

func init() {
	register(&command{
		name:    "import",
		args:    "FILE [-o FILE|-]",
		summary: "convert an upstream fence JSON/JSONC config to .fence.toml",
		run:     runImport,
	})
}

func runImport(ctx context.Context, stdio Stdio, args []string) error {
	fs := newFlagSet(stdio, lookup("import"))
	out := fs.String("o", config.ProjectFile, "write the TOML to `FILE` (\"-\": standard output); never overwrites")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: fence import FILE [-o FILE|-]")
	}
	src, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("read %q: %w", pos[0], errors.Unwrap(err))
	}
	toml, dropped, err := importJSON(src)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	// The result must load: check it as fence will read it.
	if err := config.Validate(filepath.Join(filepath.Dir(*out), config.ProjectFile), []byte(toml)); err != nil {
		return fmt.Errorf("fence: BUG: imported config does not validate: %w", err)
	}
	for _, d := range dropped {
		fmt.Fprintf(stdio.Err, "fence: import: not carried over: %s\n", d)
	}
	if *out == "-" {
		_, err := stdio.Out.Write([]byte(toml))
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return withHint(fmt.Errorf("%s already exists; not overwriting it", *out),
			"use -o - to print the TOML, or -o OTHER.toml")
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", *out, err)
	}
	_, err = f.WriteString(toml)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	fmt.Fprintf(stdio.Out, "wrote %s; review it, then run 'fence allow'\n", *out)
	return nil
}

// importJSON converts an upstream fence.json (JSONC: comments and trailing
// commas allowed) to .fence.toml text, listing what it could not carry.
func importJSON(src []byte) (string, []string, error) {
	clean, err := stripJSONC(src)
	if err != nil {
		return "", nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(clean))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return "", nil, fmt.Errorf("not a JSON object: %w", err)
	}
	var dropped []string
	var b strings.Builder
	b.WriteString("# Imported from an upstream fence JSON config by 'fence import'.\n")
	b.WriteString("# Relative paths are now relative to this file's directory.\n")

	// extends: upstream takes one string; fence takes a list.
	var extends []string
	if v, ok := doc["extends"]; ok {
		s, _ := v.(string)
		switch {
		case s == "":
			dropped = append(dropped, "extends (not a string)")
		case isTemplateName(s):
			extends = append(extends, s)
		case strings.HasSuffix(s, ".json"):
			dropped = append(dropped, fmt.Sprintf("extends %q (import that file too and extend the .toml)", s))
		default:
			dropped = append(dropped, fmt.Sprintf("extends %q (no built-in template of that name; built-in: %s)", s, strings.Join(config.Templates(), ", ")))
		}
	}
	if len(extends) > 0 {
		fmt.Fprintf(&b, "extends = %s\n", tomlStrings(extends))
	}
	known := map[string]map[string]bool{
		"network":    {"allowedDomains": true, "deniedDomains": true, "allowLocalBinding": true, "allowLocalOutbound": true},
		"filesystem": {"allowWrite": true, "denyWrite": true, "denyRead": true, "allowGitConfig": true},
	}
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "extends" || k == "$schema" {
			continue
		}
		if known[k] == nil {
			dropped = append(dropped, k+" (no equivalent in fence's TOML config)")
		}
	}
	for _, table := range []string{"network", "filesystem"} {
		raw, ok := doc[table]
		if !ok {
			continue
		}
		obj, ok := raw.(map[string]any)
		if !ok {
			dropped = append(dropped, table+" (not an object)")
			continue
		}
		var lines []string
		var tkeys []string
		for k := range obj {
			tkeys = append(tkeys, k)
		}
		sort.Strings(tkeys)
		order := map[string]int{"allowedDomains": 0, "deniedDomains": 1, "allowLocalBinding": 2, "allowLocalOutbound": 3,
			"allowWrite": 0, "denyWrite": 1, "denyRead": 2, "allowGitConfig": 3}
		sort.SliceStable(tkeys, func(i, j int) bool { return order[tkeys[i]] < order[tkeys[j]] })
		for _, k := range tkeys {
			v := obj[k]
			name := table + "." + k
			if !known[table][k] {
				dropped = append(dropped, name+" (no equivalent in fence's TOML config)")
				continue
			}
			switch k {
			case "allowLocalBinding", "allowGitConfig":
				bv, ok := v.(bool)
				if !ok {
					dropped = append(dropped, name+" (not a boolean)")
					continue
				}
				lines = append(lines, fmt.Sprintf("%s = %t", k, bv))
			case "allowLocalOutbound":
				switch x := v.(type) {
				case bool:
					lines = append(lines, fmt.Sprintf("%s = %t", k, x))
				case []any:
					var ports []string
					for _, e := range x {
						n, err := strconv.Atoi(fmt.Sprint(e))
						if err != nil || n < 1 || n > 65535 {
							dropped = append(dropped, fmt.Sprintf("%s entry %v (not a port)", name, e))
							continue
						}
						ports = append(ports, strconv.Itoa(n))
					}
					lines = append(lines, fmt.Sprintf("%s = [%s]", k, strings.Join(ports, ", ")))
				default:
					dropped = append(dropped, name+" (not a boolean or a list of ports)")
				}
			default:
				arr, ok := v.([]any)
				if !ok {
					dropped = append(dropped, name+" (not a list)")
					continue
				}
				var vals []string
				for _, e := range arr {
					s, ok := e.(string)
					if !ok {
						dropped = append(dropped, fmt.Sprintf("%s entry %v (not a string)", name, e))
						continue
					}
					if table == "network" {
						if _, err := proxy.ParsePattern(s); err != nil {
							dropped = append(dropped, fmt.Sprintf("%s entry %q (%v)", name, s, err))
							continue
						}
					} else if strings.TrimSpace(s) == "" || (strings.HasPrefix(s, "~") && s != "~" && !strings.HasPrefix(s, "~/")) {
						dropped = append(dropped, fmt.Sprintf("%s entry %q (only ~ and ~/ are supported)", name, s))
						continue
					}
					vals = append(vals, s)
				}
				lines = append(lines, fmt.Sprintf("%s = %s", k, tomlStrings(vals)))
			}
		}
		if len(lines) > 0 {
			fmt.Fprintf(&b, "\n[%s]\n%s\n", table, strings.Join(lines, "\n"))
		}
	}
	if !strings.Contains(b.String(), "[") && len(extends) == 0 {
		// Nothing carried: still write a valid, empty-handed policy.
		b.WriteString("\n[network]\nallowedDomains = []\n")
	}
	return b.String(), dropped, nil
}

func isTemplateName(s string) bool {
	_, ok := config.Template(s)
	return ok
}

func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// stripJSONC removes // and /* */ comments and trailing commas outside
// strings, keeping line structure so JSON errors keep their offsets.
func stripJSONC(src []byte) ([]byte, error) {
	out := make([]byte, 0, len(src))
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '"':
			j := i + 1
			for ; j < len(src); j++ {
				if src[j] == '\\' {
					j++
					continue
				}
				if src[j] == '"' {
					break
				}
			}
			if j >= len(src) {
				return nil, errors.New("unterminated string")
			}
			out = append(out, src[i:j+1]...)
			i = j
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			if i < len(src) {
				out = append(out, '\n')
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := bytes.Index(src[i+2:], []byte("*/"))
			if end < 0 {
				return nil, errors.New("unterminated /* comment")
			}
			for _, x := range src[i : i+2+end+2] {
				if x == '\n' {
					out = append(out, '\n')
				}
			}
			i += 2 + end + 1
		case c == ']' || c == '}':
			// Drop a trailing comma before the closer.
			k := len(out) - 1
			for k >= 0 && (out[k] == ' ' || out[k] == '\t' || out[k] == '\n' || out[k] == '\r') {
				k--
			}
			if k >= 0 && out[k] == ',' {
				out = append(out[:k], out[k+1:]...)
			}
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out, nil
}
