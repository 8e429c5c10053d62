package pipe

// canSplice reports whether (*net.TCPConn).ReadFrom moves data between two
// TCP sockets with splice(2) on this system.
const canSplice = true
