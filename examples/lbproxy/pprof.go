//go:build lbproxy_pprof

package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"net/netip"
	"os"
	"time"
)

// Built with -tags lbproxy_pprof (scripts/idlemem.sh does, with PPROF_DIR
// set), lbproxy serves net/http/pprof on the loopback address in
// $LBPROXY_PPROF (HOST:PORT, HOST a loopback IP address; others are
// refused), for profiling its memory and goroutines under load. Ordinary
// builds have no such endpoint.
func init() {
	addr := os.Getenv("LBPROXY_PPROF")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip, perr := netip.ParseAddr(host); err != nil || perr != nil || !ip.IsLoopback() {
		fmt.Fprintf(os.Stderr, "lbproxy: LBPROXY_PPROF=%q: want a loopback IP address and port; not serving pprof\n", addr)
		return
	}
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil {
			fmt.Fprintln(os.Stderr, "lbproxy: pprof:", err)
		}
	}()
}
