// Package tcpstate reads the kernel's table of IPv4 TCP connections
// (/proc/net/tcp on Linux), for colibri's tests of which end of a closed
// connection holds TIME_WAIT.
package tcpstate

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// timeWait is the state column's value for TIME_WAIT.
const timeWait = "06"

// TimeWait reports whether the end at local, and the end at remote, of the
// connection between those IPv4 addresses are in TIME_WAIT. It matches the
// whole address pair, lest an older connection on one of the addresses
// count.
func TimeWait(local, remote string) (localEnd, remoteEnd bool, err error) {
	l, err := procAddr(local)
	if err != nil {
		return false, false, err
	}
	r, err := procAddr(remote)
	if err != nil {
		return false, false, err
	}
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, false, err
	}
	for line := range strings.Lines(string(table)) {
		// sl local_address rem_address st ...
		if f := strings.Fields(line); len(f) >= 4 && f[3] == timeWait {
			localEnd = localEnd || f[1] == l && f[2] == r
			remoteEnd = remoteEnd || f[1] == r && f[2] == l
		}
	}
	return localEnd, remoteEnd, nil
}

// procAddr writes an IPv4 address as /proc/net/tcp does: its 32 bits in
// host order (little-endian here), then the port, in hex.
func procAddr(addr string) (string, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return "", fmt.Errorf("tcpstate: address %q: want IPv4", addr)
	}
	ip := ap.Addr().As4()
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port()), nil
}
