//go:build !(linux || darwin || freebsd)

package upgrade

import (
	"net"
	"os"
	"syscall"
)

// supported reports whether this system can hand sockets over.
const supported = false

func dupSocket(syscall.Conn) (int, error)              { return -1, ErrUnsupported }
func rights([]int) []byte                              { return nil }
func parseRights([]byte, int) ([]int, error)           { return nil, ErrUnsupported }
func oobSpace(int) int                                 { return 0 }
func inode(os.FileInfo) uint64                         { return 0 }
func closeFD(int)                                      {}
func peerCred(*net.UnixConn) (uid, pid int, err error) { return 0, 0, ErrUnsupported }
