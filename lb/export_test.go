package lb

// ClientIPForTest exposes clientIP to the external tests.
var ClientIPForTest = clientIP

// UnwrapConnForTest exposes unwrapConn, which finds the socket under a
// client connection for the L4 copy.
var UnwrapConnForTest = unwrapConn
