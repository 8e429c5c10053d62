package testservers

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
)

// Dnsmasq starts dnsmasq as an authoritative-style local DNS server on
// 127.0.0.1 (UDP and TCP): it answers from the hosts file Dir/hosts (A and
// AAAA records, "ADDRESS NAME" lines, written from hosts) and from the
// configuration file Dir/dnsmasq.conf (written from conf: srv-host= lines
// for SRV records, say), with the TTL ttl seconds, for names under the
// domain "test." only: other names of that domain are NXDOMAIN, and
// names outside it are refused, as no upstream server is configured.
// extra are more command-line options.
//
// dnsmasq rereads the hosts file on SIGHUP (see Reload), not its
// configuration file: to change SRV records, write the file, then Stop
// and Start the server on the same port.
func Dnsmasq(tb testing.TB, hosts, conf string, ttl int, extra ...string) *Server {
	tb.Helper()
	bin := testutil.LookBinary(tb, "dnsmasq", "dnsmasq-base")
	dir := tb.TempDir()
	writeFile(tb, filepath.Join(dir, "hosts"), hosts)
	writeFile(tb, filepath.Join(dir, "dnsmasq.conf"), conf)
	return newServer(tb, "dnsmasq", dir, syscall.SIGTERM, func(s *Server) *exec.Cmd {
		args := []string{"--keep-in-foreground", "--log-facility=-", "--pid-file=",
			"--port=" + strconv.Itoa(s.Port), "--listen-address=127.0.0.1", "--bind-interfaces",
			"--no-resolv", "--no-hosts", "--local=/test/",
			"--conf-file=" + filepath.Join(dir, "dnsmasq.conf"),
			"--addn-hosts=" + filepath.Join(dir, "hosts"),
			"--local-ttl=" + strconv.Itoa(ttl), "--user=root"}
		return exec.Command(bin, append(args, extra...)...)
	})
}

// WriteHosts replaces the hosts file of a server started by Dnsmasq; Reload
// makes a running dnsmasq read it.
func (s *Server) WriteHosts(tb testing.TB, hosts string) {
	tb.Helper()
	writeFile(tb, filepath.Join(s.Dir, "hosts"), hosts)
}

// WriteConf replaces the configuration file of a server started by
// Dnsmasq; it takes effect at the next Start.
func (s *Server) WriteConf(tb testing.TB, conf string) {
	tb.Helper()
	writeFile(tb, filepath.Join(s.Dir, "dnsmasq.conf"), conf)
}

// Reload sends SIGHUP to the running server: dnsmasq rereads its hosts
// file. It fails tb when the server is not running.
func (s *Server) Reload(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		tb.Fatalf("testservers: %s is not running", s.Name)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		tb.Fatalf("testservers: %v", fmt.Errorf("reload %s: %w", s.Name, err))
	}
}
