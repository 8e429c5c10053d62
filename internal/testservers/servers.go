package testservers

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/lbkit/lbkit/internal/testutil"
)

// Redis starts redis-server without persistence. extra are more
// command-line settings, such as "--requirepass", "secret".
func Redis(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	bin := testutil.LookBinary(tb, "redis-server", "redis-server")
	dir := tb.TempDir()
	return newServer(tb, "redis", dir, syscall.SIGTERM, func(s *Server) *exec.Cmd {
		args := []string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no"}
		return exec.Command(bin, append(args, extra...)...)
	})
}

// MySQLUser is the password-less user MariaDB creates for health checks
// ('check'@'127.0.0.1', no privileges).
const MySQLUser = "check"

// MariaDB starts mariadbd with a fresh data directory and creates
// MySQLUser. Stop kills it (SIGKILL: a graceful shutdown can take seconds);
// Start recovers the data directory.
func MariaDB(tb testing.TB) *Server {
	tb.Helper()
	bin := testutil.LookBinary(tb, "mariadbd", "mariadb-server")
	install := testutil.LookBinary(tb, "mariadb-install-db", "mariadb-server")
	client := testutil.LookBinary(tb, "mariadb", "mariadb-server")
	dir := tb.TempDir()
	data := filepath.Join(dir, "data")
	sock := filepath.Join(dir, "mysqld.sock")
	run(tb, exec.Command(install, "--no-defaults", "--auth-root-authentication-method=normal",
		"--skip-test-db", "--datadir="+data, "--user=root"))
	s := newServer(tb, "mariadb", dir, syscall.SIGKILL, func(s *Server) *exec.Cmd {
		return exec.Command(bin, "--no-defaults", "--datadir="+data, "--socket="+sock,
			"--bind-address=127.0.0.1", "--port="+strconv.Itoa(s.Port), "--user=root",
			"--innodb-buffer-pool-size=16M", "--skip-log-bin",
			"--pid-file="+filepath.Join(dir, "mysqld.pid"), "--skip-name-resolve",
			"--max-connect-errors=1000000")
	})
	sql := fmt.Sprintf("CREATE USER '%s'@'127.0.0.1'; FLUSH PRIVILEGES;", MySQLUser)
	run(tb, exec.Command(client, "--no-defaults", "--socket="+sock, "-uroot", "-e", sql))
	return s
}

// PGUser is the PostgreSQL superuser name of the cluster PostgreSQL starts.
const PGUser = "postgres"

// PostgreSQL runs initdb and starts postgres, as nobody when running as
// root (postgres refuses root).
func PostgreSQL(tb testing.TB) *Server {
	tb.Helper()
	const versions = "/usr/lib/postgresql/*/bin"
	initdb := testutil.LookBinary(tb, "initdb", "postgresql", versions)
	bin := testutil.LookBinary(tb, "postgres", "postgresql", versions)
	isready := testutil.LookBinary(tb, "pg_isready", "postgresql", versions)
	dir := sharedDir(tb, "lbkit-pg-")
	data := filepath.Join(dir, "data")
	cred := unprivileged()
	cmd := exec.Command(initdb, "-D", data, "-U", PGUser, "--auth=trust", "--no-sync", "--locale=C", "-E", "UTF8")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	run(tb, cmd)
	return newServer(tb, "postgresql", dir, syscall.SIGINT, func(s *Server) *exec.Cmd {
		cmd := exec.Command(bin, "-D", data, "-k", dir, "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port),
			"-c", "fsync=off", "-c", "shared_buffers=8MB", "-c", "max_connections=20")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}, func(s *Server) error { // accepting connections, not starting up
		return exec.Command(isready, "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", PGUser).Run()
	})
}

// LDAP starts slapd with an empty directory that allows anonymous binds.
// extra are more lines of slapd.conf, such as "disallow bind_anon".
func LDAP(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	bin := testutil.LookBinary(tb, "slapd", "slapd")
	dir := tb.TempDir()
	conf := filepath.Join(dir, "slapd.conf")
	writeFile(tb, conf, fmt.Sprintf(`include /etc/ldap/schema/core.schema
pidfile %s
argsfile %s
%s
`, filepath.Join(dir, "slapd.pid"), filepath.Join(dir, "slapd.args"), strings.Join(extra, "\n")))
	return newServer(tb, "slapd", dir, syscall.SIGTERM, func(s *Server) *exec.Cmd {
		return exec.Command(bin, "-f", conf, "-h", fmt.Sprintf("ldap://127.0.0.1:%d/", s.Port), "-d", "0")
	})
}

// Etcd starts a single-member etcd cluster with its data in a temporary
// directory; its peer port is another free loopback port (Dir holds the
// data directory). Stop and Start
// keep the data: a restarted member has the keys and revisions it had.
// Addr is the client address (endpoint "127.0.0.1:port").
func Etcd(tb testing.TB) *Server {
	tb.Helper()
	return etcd(tb, "http")
}

// EtcdTLS is Etcd serving its clients over TLS with the certificate in
// certFile and keyFile (PEM), and requiring client certificates that
// clientCAFile verifies. It is ready once it accepts connections: the
// first calls may wait for its leader.
func EtcdTLS(tb testing.TB, certFile, keyFile, clientCAFile string) *Server {
	tb.Helper()
	return etcd(tb, "https", "--cert-file", certFile, "--key-file", keyFile,
		"--client-cert-auth", "--trusted-ca-file", clientCAFile)
}

func etcd(tb testing.TB, scheme string, extra ...string) *Server {
	tb.Helper()
	bin := testutil.LookBinary(tb, "etcd", "etcd-server")
	ctl := testutil.LookBinary(tb, "etcdctl", "etcd-client")
	dir := tb.TempDir()
	var ready []func(*Server) error
	if scheme == "http" {
		ready = append(ready, func(s *Server) error { // serving requests: a member has a leader
			out, err := exec.Command(ctl, "--endpoints", s.Addr,
				"--dial-timeout", "1s", "--command-timeout", "1s", "endpoint", "health").CombinedOutput()
			if err != nil {
				return fmt.Errorf("etcdctl endpoint health: %w: %s", err, out)
			}
			return nil
		})
	}
	return newServer(tb, "etcd", dir, syscall.SIGTERM, func(s *Server) *exec.Cmd {
		// Both ports are chosen again when a start fails (another process
		// took one): each pair has its own data directory.
		client := scheme + "://" + s.Addr
		peer := fmt.Sprintf("http://127.0.0.1:%d", s.auxPort)
		data := filepath.Join(dir, fmt.Sprintf("data-%d-%d", s.Port, s.auxPort))
		args := []string{"--name", "lbkit", "--data-dir", data,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", "lbkit=" + peer, "--initial-cluster-state", "new",
			"--log-level", "warn", "--logger", "zap"}
		return exec.Command(bin, append(args, extra...)...)
	}, ready...)
}
