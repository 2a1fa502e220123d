//go:build !linux

package config

import "errors"

// listeningPorts is not implemented outside Linux: allowLocalOutbound = true
// then relays no port and Load says so in a notice.
func listeningPorts() ([]int, error) {
	return nil, errors.New("listing the host's listening ports is only implemented on Linux; list the ports in allowLocalOutbound")
}
