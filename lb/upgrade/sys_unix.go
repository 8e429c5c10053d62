//go:build linux || darwin || freebsd

package upgrade

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// supported reports whether this system can hand sockets over.
const supported = true

// dupSocket returns a new descriptor of the socket under sc, close-on-exec,
// which the caller closes.
func dupSocket(sc syscall.Conn) (int, error) {
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(s uintptr) {
		fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	})
	if cerr != nil {
		return -1, cerr
	}
	if err != nil {
		return -1, fmt.Errorf("duplicating the socket: %w", err)
	}
	return fd, nil
}

// rights returns the SCM_RIGHTS message carrying fds.
func rights(fds []int) []byte {
	if len(fds) == 0 {
		return nil
	}
	return unix.UnixRights(fds...)
}

// parseRights returns the descriptors that the control messages oob carry.
// It returns those it found even with an error, for the caller to close.
func parseRights(oob []byte, flags int) ([]int, error) {
	var fds []int
	var err error
	if len(oob) > 0 {
		var msgs []unix.SocketControlMessage
		if msgs, err = unix.ParseSocketControlMessage(oob); err == nil {
			for _, m := range msgs {
				got, perr := unix.ParseUnixRights(&m)
				if perr != nil {
					err = perr
					continue
				}
				// Only Linux receives them close-on-exec
				// (MSG_CMSG_CLOEXEC): a program that starts
				// another must not leak them to it.
				for _, fd := range got {
					unix.CloseOnExec(fd)
				}
				fds = append(fds, got...)
			}
		}
	}
	if err == nil && flags&unix.MSG_CTRUNC != 0 {
		err = errors.New("control message truncated: too many sockets")
	}
	return fds, err
}

// oobSpace returns the size of a control message carrying n descriptors.
func oobSpace(n int) int { return unix.CmsgSpace(n * 4) }

// inode returns the inode number of fi.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

// closeFD closes a descriptor received or duplicated.
func closeFD(fd int) { unix.Close(fd) }
