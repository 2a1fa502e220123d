//go:build !linux

package cli

import "os"

// discardTypeahead would drop input waiting on the terminal; elsewhere than
// Linux the question is answered from whatever is waiting.
func discardTypeahead(f *os.File) {}
