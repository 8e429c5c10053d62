//go:build !linux

package pipe

// canSplice reports whether (*net.TCPConn).ReadFrom moves data between two
// TCP sockets with splice(2) on this system. Elsewhere it falls back to a
// copy through a buffer it allocates per call, so the pooled-buffer path is
// used instead.
const canSplice = false
