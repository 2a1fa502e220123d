//go:build !linux && !darwin

package cli

import (
	"errors"
	"os"
)

// reopenReadOnly: no sandbox runs here.
func reopenReadOnly(f *os.File) (*os.File, error) { return nil, errors.ErrUnsupported }

// reopenTerminal: no sandbox runs here.
func reopenTerminal(f *os.File, mode int) (*os.File, error) { return nil, errors.ErrUnsupported }
