package cli

import (
	"strings"
	"testing"
)

// TestCRLFWriter: notices written while the terminal is raw end lines with
// CR LF, and the writer reports the length it was given.
func TestCRLFWriter(t *testing.T) {
	var b strings.Builder
	n, err := crlfWriter{&b}.Write([]byte("fence: one\nfence: two\n"))
	if err != nil || n != 22 || b.String() != "fence: one\r\nfence: two\r\n" {
		t.Errorf("wrote %d, %v: %q", n, err, b.String())
	}
}
