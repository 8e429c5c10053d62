//go:build darwin || freebsd

package upgrade

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerCred returns the user id of the peer of c, as the kernel recorded it
// when it connected (LOCAL_PEERCRED); the process id is not reported (-1).
func peerCred(c *net.UnixConn) (uid, pid int, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Xucred
	cerr := rc.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	})
	if cerr != nil {
		return 0, 0, cerr
	}
	if err != nil {
		return 0, 0, err
	}
	return int(cred.Uid), -1, nil
}
