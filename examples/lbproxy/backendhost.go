package main

import (
	"net"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// validBackendHost reports whether h is a Host value -backend-host may
// send: a name or address, with an optional port.
func validBackendHost(h string) bool {
	return h != "" && hostOnly(h) != "" && httpguts.ValidHostHeader(h) && !strings.ContainsAny(h, "/?#@")
}

// hostOnly returns the host of a Host value, without its port or the
// brackets of an IPv6 address; "" for "".
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}
