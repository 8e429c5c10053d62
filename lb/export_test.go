package lb

// ClientIPForTest exposes clientIP to the external tests.
var ClientIPForTest = clientIP
