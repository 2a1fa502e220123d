package config

import (
	"bufio"
	"os"
	"sort"
	"strconv"
	"strings"
)

// listeningPorts returns the TCP ports the host listens on at loopback or
// at a wildcard address (which loopback reaches too), from /proc/net/tcp and
// /proc/net/tcp6.
func listeningPorts() ([]int, error) {
	seen := map[int]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			addr, portHex, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			switch addr {
			case "0100007F", "00000000", // 127.0.0.1, 0.0.0.0
				"00000000000000000000000001000000", "00000000000000000000000000000000", // ::1, ::
				"0000000000000000FFFF00000100007F": // ::ffff:127.0.0.1
			default:
				continue
			}
			if p, err := strconv.ParseUint(portHex, 16, 16); err == nil && p > 0 {
				seen[int(p)] = true
			}
		}
		fh.Close()
	}
	var ports []int
	for p := range seen {
		ports = append(ports, p)
	}
	sort.Ints(ports)
	return ports, nil
}
