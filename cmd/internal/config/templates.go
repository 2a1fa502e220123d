package config

import (
	"embed"
	"path"
	"sort"
	"strings"
)

//go:embed templates/*.toml templates/darwin/*.toml
var templateFS embed.FS

// Templates returns the names of the built-in templates, sorted.
func Templates() []string {
	ents, _ := templateFS.ReadDir("templates")
	var names []string
	for _, e := range ents {
		if e.IsDir() { // OS addenda
			continue
		}
		names = append(names, strings.TrimSuffix(e.Name(), ".toml"))
	}
	sort.Strings(names)
	return names
}

// Template returns the TOML text of the built-in template name.
func Template(name string) ([]byte, bool) {
	if name == "" || strings.ContainsAny(name, "/\\.") {
		return nil, false
	}
	b, err := templateFS.ReadFile(path.Join("templates", name+".toml"))
	return b, err == nil
}

// templateAddendum returns what template name adds on goos (its
// templates/GOOS/NAME.toml): paths that exist only there, such as macOS's
// ~/Library/Caches, so that a Linux trust prompt does not list them.
func templateAddendum(name, goos string) ([]byte, bool) {
	if name == "" || strings.ContainsAny(name, "/\\.") {
		return nil, false
	}
	b, err := templateFS.ReadFile(path.Join("templates", goos, name+".toml"))
	return b, err == nil
}

// TemplateSummary returns the first comment line of template name.
func TemplateSummary(name string) string {
	b, _ := Template(name)
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(strings.TrimPrefix(line, "#"))
}

// isTemplateRef reports whether an extends entry names a built-in template
// rather than a file: a file reference contains a "/" or ends in ".toml".
func isTemplateRef(s string) bool {
	return !strings.Contains(s, "/") && !strings.HasSuffix(s, ".toml")
}
