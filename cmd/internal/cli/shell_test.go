package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReadHandoff checks what the client accepts from the sandbox's handoff
// file: only an absolute, clean path of an existing directory outside the
// project, nothing else (ATTACKS.md H-04).
func TestReadHandoff(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "proj")
	out := filepath.Join(base, "out")
	for _, d := range []string{root, filepath.Join(root, "sub"), out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o644)
	link := filepath.Join(base, "link-to-root")
	os.Symlink(root, link)

	tests := []struct {
		content string
		want    string
	}{
		{out + "\n", out},
		{out, out},
		{out + "\nPROMPT_COMMAND=evil\n", out}, // only the first line counts
		{"", ""},
		{"out\n", ""},                            // relative
		{out + "/../out\n", ""},                  // not clean
		{out + "/\n", ""},                        // not clean
		{filepath.Join(base, "nope") + "\n", ""}, // missing
		{file + "\n", ""},                        // not a directory
		{root + "\n", ""},                        // the project itself
		{filepath.Join(root, "sub") + "\n", ""},
		{out + "\x1b]52;c;eA==\a\n", ""}, // control characters
		{out + "\u009b\n", ""},           // C1 control
		{"/\n", "/"},
	}
	h := filepath.Join(base, "handoff")
	for _, tt := range tests {
		if err := os.WriteFile(h, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, ok := readHandoff(h, root, link)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("handoff %q: got %q, %v; want %q", tt.content, got, ok, tt.want)
		}
	}
	// The logical spelling of the root counts as inside too.
	os.WriteFile(h, []byte(link+"\n"), 0o600)
	if got, ok := readHandoff(h, root, link); ok {
		t.Errorf("logical root accepted as outside: %q", got)
	}
	if _, ok := readHandoff(filepath.Join(base, "absent"), root, root); ok {
		t.Error("missing handoff file accepted")
	}
}

func TestWriteHookResultRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o600)
	res := filepath.Join(dir, "hook", "bash.1")
	os.MkdirAll(filepath.Dir(res), 0o700)
	os.Symlink(target, res)
	if err := writeHookResult(res, "/tmp"); err == nil {
		t.Error("followed a symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("symlink target overwritten: %q", b)
	}
	res2 := filepath.Join(dir, "new", "bash.2")
	if err := writeHookResult(res2, "/srv"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(res2); string(b) != "/srv\n" {
		t.Errorf("result %q", b)
	}
}
