// Command lbproxy is the command-line load balancer: one frontend, one pool
// of servers, every mode lbkit supports.
//
//	lbproxy -mode http -listen 127.0.0.1:8080 -backends 127.0.0.1:8001,127.0.0.1:8002
//	lbproxy -mode tcp  -listen 127.0.0.1:9000 -backends 127.0.0.1:5432,127.0.0.1:5433
//	lbproxy -mode https -cert site.pem -key site.key -backends 127.0.0.1:8001 -health http:/healthz
//
// Modes:
//
//	http             HTTP/1.1 reverse proxy (L7), X-Forwarded-* rebuilt
//	https            HTTPS front (TLS offloading), HTTP/2 and HTTP/1.1 through
//	                 ALPN, plain HTTP to the servers
//	https-bridge     HTTPS front, HTTPS to the servers (HTTP/2 with
//	                 -backend-h2), verified unless -backend-insecure
//	tcp              TCP proxy (L4), bytes copied both ways (on an epoll
//	                 event loop on Linux)
//	tls              TLS terminated at L4, plain TCP to the servers
//	tls-bridge       TLS terminated at L4, new TLS sessions to the servers
//	tls-passthrough  L4, the ClientHello peeked for SNI routes (-sni-route),
//	                 the client's TLS session copied to the servers as is
//
// The TLS modes present -cert and -key, reloaded when the files change, or
// a certificate for localhost from a CA generated at start. Session ticket
// keys rotate daily and resume sessions for up to seven days (random, or
// derived from -ticket-key-file's secret); -hsts
// MAXAGE adds Strict-Transport-Security to the https modes' responses. With an empty
// -backends lbproxy starts demo backends on loopback and says so.
// Benchmarks of https-bridge against servers with self-signed certificates
// pass -backend-insecure (or -backend-ca with their CA).
//
// It stays in the foreground and on SIGINT or SIGTERM stops accepting and
// drains open work for -grace. It logs nothing per request unless
// -access-log json|haproxy asks for an access log (to stderr,
// -access-log-file or -access-log-syslog; see accesslog.go).
//
// -failover-host HOST (http modes; the configuration model's
// failover_host) forwards the requests that find no server up to HOST, a
// static site for instance, with HOST as their Host header, instead of
// answering 503: lb.FailoverHost as the proxy's Fallback.
//
// -servers-dns NAME[:PORT] (or -servers-port PORT) and -servers-srv NAME
// take the servers from DNS instead of -backends: NAME's A and AAAA
// records at the port, or an SRV record's targets with their ports,
// weights, and higher priorities as backups. -dns-server ADDR is the DNS
// server asked (default: /etc/resolv.conf's), -dns-interval D the time
// between resolutions (default 30s; sooner when the TTL is shorter, at
// most once a second). Servers are named by address and keep their state
// while they stay in DNS; a failed resolution keeps the servers as they
// are; the first one happens before serving and must succeed. See dns.go.
//
// -backend-host HOST (the configuration model's host) is the Host header
// of the requests sent to the servers in the http modes, and the TLS name
// (SNI, and the name verified) in the bridge modes unless
// -backend-server-name gives one.
//
// -h2c (http mode) also serves HTTP/2 with prior knowledge (h2c) on the
// plain listener; -backend-h2c speaks h2c to servers that speak only that.
// HTTP/2 to clients, over TLS or h2c, passes lb.ConfigureHTTP2's checks;
// started with GODEBUG=http2xconnect=1 in the environment, lbproxy also
// takes WebSockets over HTTP/2 (RFC 8441) to the servers' HTTP/1.1
// upgrade.
//
// -http3 (https modes) also serves HTTP/3 over QUIC on the UDP port of
// -listen, with the same certificates, handler and drain, and adds
// Alt-Svc: h3=":PORT" to the HTTPS responses so that browsers find it.
// 0-RTT stays off. See http3.go.
//
// -maxconn N bounds the frontend's open connections, and -conn-rate R
// (-conn-rate-burst B) its new connections per second: beyond them,
// accepting pauses and new connections wait in the kernel's queue. -client-maxconn N
// and -client-rate R (-client-rate-burst B) bound each client address's
// open connections and its requests (HTTP) or connections (L4) per
// second: over them HTTP answers 429 and L4 closes the connection. All are
// off by default; see limits.go. With -http3 they apply to QUIC
// connections too, which count with the TCP ones: a QUIC connection beyond
// -maxconn, -conn-rate or -client-maxconn is refused before its handshake
// (CONNECTION_REFUSED), as a UDP socket has no accept queue to pause.
//
// Several instances behind one address agree without -redis for
// -sticky cookie (the same -sticky-secret or -cookie-secret-file, the same
// -backends) and -algorithm hash. -redis ADDR (-redis-password-file,
// -redis-prefix, -redis-timeout) shares the rest through one Redis: -sticky table keeps
// its table there, and -client-rate counts there, over the fleet; while
// Redis is away each instance pins locally and admits -client-rate divided
// by -redis-instances, counted in /metrics as fallbacks. -ticket-key-file
// derives the TLS session ticket keys from a shared secret, so sessions
// resume on every instance. See redis.go.
//
// -admin ADDR (keep it on loopback, e.g. 127.0.0.1:9100) serves /healthz
// (200 while serving; 503 while draining or when a self-check of the
// accept path or of the event loops fails), the live status page at /,
// its data as JSON at /stats, and the Prometheus exposition at /metrics.
// With -admin-token-file or LBKIT_ADMIN_TOKEN, all but /healthz require
// "Authorization: Bearer TOKEN". The admin server stops last, after the
// drain. See admin.go.
//
// -upgrade-socket PATH makes upgrades seamless (lb/upgrade, upgrade.go): a
// new lbproxy started with the same PATH (the new binary, the same flags)
// takes the listening sockets of the one serving PATH, which drains once
// the new one serves and exits; SIGUSR2 starts the executable file again
// for the same effect. No connection is refused. A new lbproxy whose
// readiness the old one does not acknowledge exits, leaving it serving.
// Off by default.
//
// -config FILE runs the load balancer a configuration document describes
// (many frontends and backends, ACLs, routes, certificates), reloaded when
// the file changes and on SIGHUP; -check validates the file; -ip lists the
// addresses the frontends listen on. See configmode.go. -config
// etcd://HOST:PORT[,HOST:PORT]/KEY keeps the document in etcd instead,
// shared by a fleet of instances; see etcd.go. With -admin, it
// also serves the REST API (the seed's lb/v1) under /lb/v1/, behind
// "X-Auth-Token: TOKEN". See api.go.
//
// -freebind (Linux; off by default) binds -listen, and -http3's UDP
// socket, with IP_FREEBIND: lbproxy starts on a virtual IP that this host
// does not hold yet, and serves it from the moment keepalived (or anything
// else) assigns it, without a restart. The sysctl
// net.ipv4.ip_nonlocal_bind=1 does the same for every program. While the
// address is not held, the accept self-check waits for it: the standby of
// a master/backup pair reports healthy. examples/ha runs such a pair.
//
// run builds the stack in the order a connection meets it: the listener,
// PROXY protocol reception, TLS, accept-time ACLs, the accept-path limits
// (-maxconn, -conn-rate, -client-maxconn, -client-rate; see limits.go), the pool with its health
// checks and stickiness, the proxy (HTTP) or connection chain (TCP), and
// serves it. The other files hold the parsing of each capability's flags.
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/health"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/accesslog"
	"github.com/lbkit/lbkit/lb/demo"
	"github.com/lbkit/lbkit/lb/dnsservers"
	"github.com/lbkit/lbkit/lb/metrics"
	"github.com/lbkit/lbkit/lb/proxyproto"
	"github.com/lbkit/lbkit/lb/statuspage"
	"github.com/lbkit/lbkit/sticky"
	"github.com/lbkit/lbkit/sticky/redistable"
	"github.com/lbkit/lbkit/tlsmode"
)

// modes lists the -mode values.
const modes = "http, https, https-bridge, tcp, tls, tls-bridge, tls-passthrough"

// config is the parsed command line.
type config struct {
	mode, listen, backends, algorithm string
	certFile, keyFile                 string
	grace, connectTimeout, timeout    time.Duration

	// TCP keep-alive idle times (keepalive.go); 0: off
	clientTCPKeepAlive, serverTCPKeepAlive time.Duration

	// HTTP modes: client timeouts
	requestTimeout, clientTimeout, minBodyRateGrace time.Duration
	minBodyRate                                     int
	retries, maxConns, gcPercent                    int
	gcHeadroomMiB                                   uint64
	idleTrim                                        time.Duration
	redispatchEvery                                 int
	verbose                                         bool
	httpEngine                                      string
	quickAck                                        bool
	dropUnderscoreHeaders                           bool
	maxHeaderCount                                  int
	maxBodyBytes                                    int64

	// servers from DNS
	serversDNS, serversSRV, dnsServer string
	serversPort                       int
	dnsInterval                       time.Duration

	// health checks
	health         string
	healthInterval time.Duration

	// PROXY protocol
	proxyProtocol, acceptProxy string

	// ACLs
	allow, deny string

	// stickiness
	sticky, stickyCookie, stickySecret string
	stickyTableSize, stickyIPv6Prefix  int
	stickyTTL                          time.Duration
	cookieSecretFile                   string

	// state shared between instances
	redis, redisPasswordFile, redisPrefix string
	redisInstances                        int
	redisTimeout                          time.Duration
	ticketKeyFile                         string

	// TLS
	tlsProfile, clientCA         string
	certReload                   time.Duration
	backendCA, backendServerName string
	backendInsecure, backendH2   bool
	backendSNI                   bool
	backendHost                  string
	sniRoutes                    string
	hsts                         int

	// HTTP/3
	http3 bool

	// cleartext HTTP/2
	h2c, h2Only, backendH2C bool

	// the backend's failover host (HTTP modes)
	failoverHost string

	// access log
	accessLog, accessLogFile, accessLogSyslog, accessLogSyslogFormat string

	// accept-path limits
	maxConn, clientMaxConn           int
	connRate                         float64
	connRateBurst                    int
	clientRate                       float64
	clientRateBurst, clientTableSize int
	clientIdle                       time.Duration
	clientIPv6Prefix                 int

	// admin endpoints
	admin, adminTokenFile string

	// binding an address not held yet (IP_FREEBIND)
	freebind bool
	// binary upgrade (upgrade.go)
	upgradeSocket string

	// Set by tests only: the time between self-checks (0: checkInterval),
	// and a wrapper of the listener as the frontend gets it (nil: none).
	checkInterval time.Duration
	wrapListener  func(net.Listener) net.Listener

	// the configuration-file mode (configmode.go) and its etcd store (etcd.go)
	cm   configFlags
	etcd *etcdFlags

	// the flag set parsed into this config, for the flags set explicitly
	// (nil: none known)
	fs *flag.FlagSet
}

// newConfig defines lbproxy's flags on fs, each with its default, and
// returns the config that parsing fs fills in.
func newConfig(fs *flag.FlagSet) *config {
	c := &config{fs: fs}
	fs.StringVar(&c.mode, "mode", "http", "frontend mode: "+modes)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "address to serve on")
	fs.BoolVar(&c.freebind, "freebind", false, "Linux: bind -listen (and -http3's UDP socket) even when this host does not hold its address yet (IP_FREEBIND), as a virtual IP that keepalived moves here later; with -config, the frontends' -ip addresses (default: the address must be local)")
	fs.StringVar(&c.backends, "backends", "", "comma-separated server addresses; empty starts demo backends (unless -servers-dns or -servers-srv)")
	fs.StringVar(&c.serversDNS, "servers-dns", "", "take the servers from DNS instead of -backends: NAME[:PORT], each address of NAME's A and AAAA records at PORT (or -servers-port), named by address; re-resolved every -dns-interval")
	fs.IntVar(&c.serversPort, "servers-port", 0, "-servers-dns: the servers' port, when NAME has none")
	fs.StringVar(&c.serversSRV, "servers-srv", "", "take the servers from an SRV record instead of -backends: NAME (_service._proto.domain); each target's addresses at the record's port, with its weight; higher priorities than the lowest are backups")
	fs.StringVar(&c.dnsServer, "dns-server", "", "-servers-dns, -servers-srv: DNS server asked, HOST:PORT or an IP address (port 53) (empty: the nameservers of /etc/resolv.conf)")
	fs.DurationVar(&c.dnsInterval, "dns-interval", dnsservers.DefaultInterval, "-servers-dns, -servers-srv: time between resolutions, shortened to the records' TTL (never below 1s); a failed resolution keeps the servers and is retried sooner")
	fs.StringVar(&c.algorithm, "algorithm", "roundrobin", "balancing algorithm: "+strings.Join(balancer.Names(), ", "))
	fs.StringVar(&c.certFile, "cert", "", "certificate PEM file, for the TLS modes")
	fs.StringVar(&c.keyFile, "key", "", "private key PEM file, for the TLS modes")
	fs.DurationVar(&c.grace, "grace", 10*time.Second, "how long open work may finish after SIGTERM")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", lb.DefaultConnectTimeout, "timeout to connect to a server")
	fs.DurationVar(&c.timeout, "timeout", 0, "http: server response timeout (default 5m); tcp: tunnel inactivity timeout (default 15m)")
	fs.DurationVar(&c.requestTimeout, "request-timeout", 10*time.Second, "http modes: time a client has to send a request's line and headers, as HAProxy's timeout http-request (0: none)")
	fs.DurationVar(&c.clientTimeout, "client-timeout", lb.DefaultClientTimeout, "http modes: longest wait on a client that makes no progress sending its request body or reading the response, as HAProxy's timeout client (0: none)")
	fs.IntVar(&c.minBodyRate, "min-body-rate", lb.DefaultMinBodyRate, "http modes: lowest average rate of a request body, in bytes/s of waiting, once -min-body-rate-grace is spent; a slower client gets 408 (0: none)")
	fs.DurationVar(&c.minBodyRateGrace, "min-body-rate-grace", lb.DefaultMinBodyRateGrace, "http modes: wait for a request body that -min-body-rate does not count (0: none)")
	fs.IntVar(&c.retries, "retries", lb.DefaultRetries, "failed connection attempts retried on another server, and HTTP requests safe to repeat (GET, HEAD, OPTIONS, TRACE, no body) whose server reset the connection before answering (0: none)")
	fs.IntVar(&c.redispatchEvery, "redispatch-every", 0, "which -retries go to another server, as redispatch_attempt_count and HAProxy's option redispatch N: 0 or 1 every retry, N every Nth retry (the others retry the server that failed), negative none")
	fs.IntVar(&c.maxConns, "max-conns", 0, "per-server limit of connections or requests in flight (0: none); beyond it work queues")
	fs.IntVar(&c.gcPercent, "gc-percent", 400, "garbage collection target percentage, as GOGC (0: the runtime's default); GOGC in the environment wins")
	fs.DurationVar(&c.idleTrim, "idle-trim", 2*time.Second, "how often to look whether the proxy went quiet, to return its free heap memory to the operating system once per quiet spell (0: leave it to the runtime)")
	fs.Uint64Var(&c.gcHeadroomMiB, "gc-headroom", 12, "MiB of new heap between garbage collections: after each one the target becomes this much over the live heap, within 100% and -gc-percent, so that many idle connections do not multiply their memory (0: -gc-percent always)")
	fs.BoolVar(&c.verbose, "v", false, "log per-connection events")
	fs.StringVar(&c.httpEngine, "http-engine", defaultHTTPEngine, "http modes: the HTTP/1.x server engine, lbkit (idle keep-alive clients parked without goroutine or buffers, lb.HTTPFrontend) or net/http")
	fs.BoolVar(&c.quickAck, "quick-ack", false, "http modes and -config, lbkit engine: keep the kernel's quick ACKs on accepted connections (HAProxy's no option tcp-smart-accept); by default a new connection's request is acknowledged by its response")
	fs.IntVar(&c.maxHeaderCount, "max-header-count", lb.DefaultMaxHeaderCount, "HTTP modes: most header fields in a request; more are answered 431 (negative: no limit)")
	fs.Int64Var(&c.maxBodyBytes, "max-body-bytes", 0, "HTTP modes: largest request body in bytes; larger ones are answered 413 (0: no limit)")
	fs.BoolVar(&c.dropUnderscoreHeaders, "drop-underscore-headers", false, "HTTP modes: drop every request header whose name has \"_\" (default: only aliases of framing and forwarding headers, such as Transfer_Encoding)")

	fs.StringVar(&c.health, "health", "", "health check: tcp, http:/PATH, https:/PATH, mysql[:USER], pgsql[:USER], redis, ldap (empty: none)")
	fs.DurationVar(&c.healthInterval, "health-interval", health.DefaultInterval, "time between health checks of an up server")

	fs.StringVar(&c.proxyProtocol, "proxy-protocol", "none", "PROXY protocol header sent first to servers: none, v1, v2, v2-ssl, v2-ssl-cn")
	fs.StringVar(&c.acceptProxy, "accept-proxy", "", "comma-separated networks (CIDR or address) allowed to send PROXY headers; others are refused")

	fs.StringVar(&c.allow, "allow", "", "comma-separated client networks (CIDR) let in; others are refused (empty: all)")
	fs.StringVar(&c.deny, "deny", "", "comma-separated client networks (CIDR) refused; checked before -allow")

	fs.IntVar(&c.maxConn, "maxconn", 0, "the frontend's open connections (0: no limit); beyond it accepting pauses and new connections wait in the kernel's queue, while -http3 refuses new QUIC connections (not -max-conns, per server)")
	fs.Float64Var(&c.connRate, "conn-rate", 0, "the frontend's new connections per second, as connection_rate_limit and HAProxy's rate-limit sessions (0: no limit); beyond it accepting pauses and new connections wait in the kernel's queue, never reset, while -http3 refuses new QUIC connections")
	fs.IntVar(&c.connRateBurst, "conn-rate-burst", 0, "connections the frontend may accept at once above -conn-rate (0: -conn-rate rounded up)")
	fs.IntVar(&c.clientMaxConn, "client-maxconn", 0, "one client address's open connections (0: no limit); beyond it tcp modes close the connection, http modes answer 429 and close, -http3 refuses the QUIC connection")
	fs.Float64Var(&c.clientRate, "client-rate", 0, "one client address's requests (http modes) or connections (tcp modes) per second (0: no limit); beyond it 429 with Retry-After, or the connection is closed")
	fs.IntVar(&c.clientRateBurst, "client-rate-burst", 0, "requests or connections a client may make at once above -client-rate (0: -client-rate rounded up)")
	fs.IntVar(&c.clientTableSize, "client-table-size", lb.DefaultMaxClients, "-client-maxconn, -client-rate: most client addresses tracked; when full the least recently seen idle one is forgotten")
	fs.DurationVar(&c.clientIdle, "client-idle", lb.DefaultClientIdle, "-client-maxconn, -client-rate: how long a client without connections is remembered")
	fs.IntVar(&c.clientIPv6Prefix, "client-ipv6-prefix", 0, "-client-maxconn, -client-rate: count IPv6 clients by this prefix length (0: whole address)")

	fs.StringVar(&c.sticky, "sticky", "none", "sticky sessions: none, cookie (HTTP modes) or table (client IP)")
	fs.StringVar(&c.stickyCookie, "sticky-cookie", sticky.DefaultCookieName, "name of the sticky cookie")
	fs.StringVar(&c.stickySecret, "sticky-secret", "", "hex-encoded sticky cookie key, at least 16 bytes (share it between instances); empty generates one")
	fs.IntVar(&c.stickyTableSize, "sticky-table-size", sticky.DefaultMaxEntries, "sticky table: most clients remembered")
	fs.DurationVar(&c.stickyTTL, "sticky-ttl", sticky.DefaultTTL, "sticky table: lifetime of an unused pin")
	fs.IntVar(&c.stickyIPv6Prefix, "sticky-ipv6-prefix", 0, "sticky table: pin IPv6 clients by this prefix length (0: whole address)")
	fs.StringVar(&c.cookieSecretFile, "cookie-secret-file", "", "file holding the sticky cookie key (its content without surrounding white space, at least 16 bytes), instead of -sticky-secret; give every instance the same one; with -config, the key of documents without secrets.sticky_cookie_secret")

	fs.StringVar(&c.redis, "redis", "", "HOST:PORT of a Redis server shared by the instances of a fleet: -sticky table and -client-rate then hold across them, with local decisions while Redis is away; with -config, the stick tables of sticky_sessions table backends and the frontends' lbkit client_rate, keyed by -redis-prefix and their ids (empty: each instance on its own)")
	fs.StringVar(&c.redisPasswordFile, "redis-password-file", "", "-redis: file holding the Redis password (its content without surrounding white space)")
	fs.StringVar(&c.redisPrefix, "redis-prefix", "lbproxy:", "-redis: start of the keys, the same on every instance of a fleet and different between fleets sharing a Redis")
	fs.DurationVar(&c.redisTimeout, "redis-timeout", redistable.DefaultTimeout, "-redis: longest wait for Redis on the data path, per sticky lookup or rate decision; beyond it the instance decides alone")
	fs.IntVar(&c.redisInstances, "redis-instances", 1, "-redis with -client-rate: number of instances in the fleet; while Redis is away each admits -client-rate divided by it")
	fs.StringVar(&c.ticketKeyFile, "ticket-key-file", "", "TLS modes: file holding a secret (at least 16 bytes; 32 random bytes recommended) the session ticket keys derive from, so that every instance that has it resumes the others' sessions; with -config, the secret of documents without secrets.session_ticket_secret (empty: random keys of this process)")

	fs.StringVar(&c.tlsProfile, "tls-profile", "intermediate", "TLS modes: old, intermediate or modern (Mozilla's profiles)")
	fs.StringVar(&c.clientCA, "client-ca", "", "TLS modes: PEM bundle; when set, clients must present a certificate it verifies (mTLS)")
	fs.DurationVar(&c.certReload, "cert-reload", 5*time.Second, "TLS modes: how often -cert and -key are checked for changes (0: never)")
	fs.StringVar(&c.backendCA, "backend-ca", "", "bridge modes, and -config's ssl_bridging backends, https checks and failover hosts: PEM bundle verifying the servers' certificates (default: system roots)")
	fs.BoolVar(&c.backendInsecure, "backend-insecure", false, "bridge modes: do not verify the servers' certificates")
	fs.BoolVar(&c.backendH2, "backend-h2", false, "https-bridge: speak HTTP/2 to servers that offer it (default HTTP/1.1)")
	fs.StringVar(&c.backendServerName, "backend-server-name", "", "bridge modes: server name to send and verify (default: each server's host)")
	fs.StringVar(&c.backendHost, "backend-host", "", "http and bridge modes: the Host header (http modes) and TLS server name (bridge modes, unless -backend-server-name) sent to the servers, as the configuration model's host (empty: the client's Host, and each server's address as the TLS name)")
	fs.BoolVar(&c.backendSNI, "backend-sni", false, "bridge modes: send and verify the client's SNI")
	fs.IntVar(&c.hsts, "hsts", 0, "https modes: Strict-Transport-Security max-age in seconds, e.g. 31536000 (0: no header); a server's own header is kept")
	fs.BoolVar(&c.http3, "http3", false, "https modes: also serve HTTP/3 (QUIC) on the UDP port of -listen, with the same certificates, and announce it to HTTPS clients (Alt-Svc); 0-RTT stays off")
	fs.BoolVar(&c.h2c, "h2c", false, "http mode: also serve cleartext HTTP/2 to clients with prior knowledge (h2c); \"Upgrade: h2c\" stays refused")
	fs.BoolVar(&c.h2Only, "h2-only", false, "http, https and https-bridge modes: serve HTTP/2 only, as HAProxy's \"proto h2\" (http mode: h2c, needs -h2c; https modes: ALPN h2); other clients are refused")
	fs.StringVar(&c.failoverHost, "failover-host", "", "http modes: when no server is up, forward requests to this host (failover_host: name, name:port, http:// or https:// URL without a path) with its name as Host, instead of answering 503 (empty: 503)")
	fs.BoolVar(&c.backendH2C, "backend-h2c", false, "http and https modes: speak cleartext HTTP/2 with prior knowledge (h2c) to the servers, for servers that speak only that (default HTTP/1.1)")
	fs.StringVar(&c.sniRoutes, "sni-route", "", "tls-passthrough: comma-separated SNI routes NAME=ADDR (NAME may be *.domain); others go to -backends")

	fs.StringVar(&c.accessLog, "access-log", "off", "access log of every request or session: off, json or haproxy (HAProxy's httplog/tcplog lines, which halog reads)")
	fs.StringVar(&c.accessLogFile, "access-log-file", "", "file the access log is appended to (default: stderr)")
	fs.StringVar(&c.accessLogSyslog, "access-log-syslog", "", "syslog server the access log is sent to: udp://HOST:PORT or tcp://HOST:PORT")
	fs.StringVar(&c.accessLogSyslogFormat, "access-log-syslog-format", accesslog.RFC5424, "syslog framing: "+accesslog.RFC5424+" or "+accesslog.RFC3164)

	fs.StringVar(&c.admin, "admin", "", "address of the admin endpoints /healthz, /stats, /metrics and /, and with -config the REST API under /lb/v1/ (empty: none); keep it on loopback, e.g. 127.0.0.1:9100")
	addKeepAliveFlags(fs, c) // keepalive.go
	addConfigFlags(fs, &c.cm)
	c.etcd = addEtcdFlags(fs)
	fs.StringVar(&c.adminTokenFile, "admin-token-file", "", "file holding a token that /stats, /metrics and / require as \"Authorization: Bearer TOKEN\", and the REST API (-config) as \"X-Auth-Token: TOKEN\" (default: $"+tokenEnv+"; empty: none, and the REST API refuses every request)")
	fs.StringVar(&c.upgradeSocket, "upgrade-socket", "", "unix socket of binary upgrades: at start, take the listening sockets of the lbproxy serving it and have it drain once this one serves, then serve it for the next upgrade; SIGUSR2 starts the new binary so (empty: none)")
	return c
}

func main() {
	cfg := newConfig(flag.CommandLine)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		if errors.Is(err, errUsage) { // as flag.Parse's errors
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		log.Fatal(err)
	}
}

// run checks cfg, builds the stack and serves it until ctx is done,
// reporting to out. A bad command line is reported before anything starts.
func run(ctx context.Context, cfg *config, out io.Writer) error {
	if cfg.cm.file != "" || cfg.cm.check {
		return runConfig(ctx, cfg, out) // configmode.go
	}
	// Check the command line.
	var l7 bool // an HTTP frontend (else TCP)
	switch cfg.mode {
	case "http", "https", "https-bridge":
		l7 = true
	case "tcp", "tls", "tls-bridge", "tls-passthrough":
	default:
		return fmt.Errorf("lbproxy: unknown -mode %q (want one of %s)", cfg.mode, modes)
	}
	tlsFront := cfg.mode == "https" || cfg.mode == "https-bridge" || cfg.mode == "tls" || cfg.mode == "tls-bridge"
	bridge := cfg.mode == "https-bridge" || cfg.mode == "tls-bridge"
	algo, err := balancer.ByName(cfg.algorithm)
	if err != nil {
		return err
	}
	sendProxy, err := proxyHeader(cfg.proxyProtocol)
	if err != nil {
		return err
	}
	var acceptProxy []netip.Prefix
	if cfg.acceptProxy != "" {
		if acceptProxy, err = parsePrefixes(cfg.acceptProxy); err != nil {
			return fmt.Errorf("lbproxy: -accept-proxy: %w", err)
		}
		if len(acceptProxy) == 0 {
			return fmt.Errorf("lbproxy: -accept-proxy: no network in %q", cfg.acceptProxy)
		}
	}
	rules, err := aclRules(cfg.allow, cfg.deny) // nil: no ACL
	if err != nil {
		return err
	}
	// https checks verify the servers as the proxy does: set below in
	// https-bridge mode, read when checks run.
	checkTLS := &tls.Config{}
	var probe health.Probe
	if cfg.health != "" {
		if cfg.healthInterval <= 0 {
			return fmt.Errorf("lbproxy: -health-interval %v must be positive", cfg.healthInterval)
		}
		if probe, err = parseHealth(cfg.health, func() *tls.Config { return checkTLS }); err != nil {
			return err
		}
	}
	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	rdb, err := newRedis(cfg, logger) // nil: no -redis
	if err != nil {
		return err
	}
	if rdb != nil {
		defer rdb.Close() // after the goroutines that use it (wg.Wait below)
	}
	affinity, err := newAffinity(cfg, l7, logger, rdb) // nil: none
	if err != nil {
		return err
	}
	if cfg.ticketKeyFile != "" && !tlsFront {
		return fmt.Errorf("lbproxy: -ticket-key-file needs a TLS-terminating mode (https, https-bridge, tls, tls-bridge), not %q", cfg.mode)
	}
	tickets, err := ticketKeys(cfg)
	if err != nil {
		return err
	}
	if cfg.hsts < 0 {
		return fmt.Errorf("lbproxy: -hsts %d must not be negative", cfg.hsts)
	}
	if cfg.hsts > 0 && cfg.mode != "https" && cfg.mode != "https-bridge" {
		return fmt.Errorf("lbproxy: -hsts needs -mode https or https-bridge, not %q", cfg.mode)
	}
	if cfg.http3 && cfg.mode != "https" && cfg.mode != "https-bridge" {
		return fmt.Errorf("lbproxy: -http3 needs -mode https or https-bridge, not %q", cfg.mode)
	}
	if cfg.http3 && acceptProxy != nil {
		return errors.New("lbproxy: -http3 cannot be combined with -accept-proxy: QUIC clients send no PROXY header")
	}
	if cfg.h2c && cfg.mode != "http" {
		return fmt.Errorf("lbproxy: -h2c needs -mode http, not %q (the https modes offer HTTP/2 through ALPN)", cfg.mode)
	}
	if cfg.h2Only && !cfg.h2c && cfg.mode != "https" && cfg.mode != "https-bridge" {
		return fmt.Errorf("lbproxy: -h2-only needs -h2c in http mode, or -mode https or https-bridge, not %q", cfg.mode)
	}
	if cfg.backendH2C && cfg.mode != "http" && cfg.mode != "https" {
		return fmt.Errorf("lbproxy: -backend-h2c needs -mode http or https, not %q", cfg.mode)
	}
	var profile tlsmode.Profile
	if tlsFront {
		if profile, err = tlsmode.ParseProfile(cfg.tlsProfile); err != nil {
			return err
		}
	}
	var servers []lb.Server
	if cfg.backends != "" {
		if servers, err = parseServers(cfg.backends, cfg.maxConns); err != nil {
			return err
		}
	}
	fromDNS, err := dnsSource(cfg, logger) // nil: -backends or demo backends
	if err != nil {
		return err
	}
	if fromDNS != nil {
		// The first resolution, before anything starts; then the
		// source's Run follows DNS (step 7).
		if servers, err = resolveServers(ctx, fromDNS, out); err != nil {
			return err
		}
	}
	if err := checkAccessLog(cfg); err != nil {
		return err
	}
	if cfg.freebind && !freebindSupported {
		return errors.New("lbproxy: -freebind needs Linux (IP_FREEBIND)")
	}
	limits, err := newLimits(cfg, rdb, logger) // nil: no limit
	if err != nil {
		return err
	}
	if cfg.backendHost != "" {
		if !l7 && !bridge {
			return fmt.Errorf("lbproxy: -backend-host needs an http or bridge mode, not %q", cfg.mode)
		}
		if !validBackendHost(cfg.backendHost) {
			return fmt.Errorf("lbproxy: -backend-host %q is not a host name or address with an optional port", cfg.backendHost)
		}
		if cfg.backendSNI {
			return errors.New("lbproxy: -backend-host and -backend-sni both name the servers' TLS name: choose one")
		}
	}
	var failover *lb.FailoverHost
	if cfg.failoverHost != "" {
		if !l7 {
			return fmt.Errorf("lbproxy: -failover-host needs an http mode, not %q", cfg.mode)
		}
		if failover, err = lb.NewFailoverHost(cfg.failoverHost, nil, logger); err != nil {
			return err
		}
	}
	var token string
	if cfg.admin != "" {
		if token, err = readToken(cfg.adminTokenFile); err != nil {
			return err
		}
	} else if cfg.adminTokenFile != "" {
		return errors.New("lbproxy: -admin-token-file without -admin")
	}
	setGCPercent(cfg.gcPercent, cfg.gcHeadroomMiB<<20)

	// Goroutines started below end with ctx and are waited for.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { idleTrim(ctx, cfg.idleTrim) })
	if table, ok := affinity.(*redistable.Table); ok {
		wg.Go(func() { runTable(ctx, table) })
	}

	// Demo certificates and backends, when no file or address is given.
	var ca *demo.CA
	demoBackends := cfg.backends == "" && fromDNS == nil
	if (tlsFront && cfg.certFile == "") || (demoBackends && (bridge || cfg.mode == "tls-passthrough")) {
		if ca, err = demo.NewCA(); err != nil {
			return err
		}
		file, err := ca.WriteCAFile(os.TempDir())
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "generated a CA for demo certificates: %s\n", file)
	}
	var demoRoots *x509.CertPool // trusted for bridging: the demo servers' CA
	if demoBackends {
		// The demo backends outlive ctx so that draining work reaches them.
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		var addrs []string
		switch cfg.mode {
		case "https-bridge":
			addrs, err = demo.HTTPSBackends(bctx, ca, 2)
		case "tls-bridge", "tls-passthrough":
			addrs, err = demo.TLSBackends(bctx, ca, "a.localhost", "b.localhost")
		case "tcp", "tls":
			addrs, err = demo.TCPBackends(bctx, 2)
		default:
			addrs, err = demo.HTTPBackends(bctx, 2)
		}
		if err != nil {
			return err
		}
		if ca != nil && cfg.mode != "https" && cfg.mode != "tls" {
			demoRoots = ca.Pool()
		}
		if cfg.mode == "tls-passthrough" && cfg.sniRoutes == "" {
			cfg.sniRoutes = "a.localhost=" + addrs[0] + ",b.localhost=" + addrs[1]
			fmt.Fprintf(out, "routing a.localhost to %s and b.localhost to %s\n", addrs[0], addrs[1])
		}
		cfg.backends = strings.Join(addrs, ",")
		fmt.Fprintf(out, "started demo backends on %s\n", cfg.backends)
		if servers, err = parseServers(cfg.backends, cfg.maxConns); err != nil {
			return err
		}
	}

	// 0. The access log, closed (flushed) once everything has drained.
	accessLog, err := openAccessLog(cfg)
	if err != nil {
		return err
	}
	if accessLog != nil {
		defer accessLog.Close()
	}

	// 1. The listener: inherited from the process serving -upgrade-socket,
	// if one does (upgrade.go), or fresh; with -freebind, on an address
	// that may arrive later.
	socks, err := startUpgrade(ctx, cfg, logger, out)
	if err != nil {
		return err
	}
	defer socks.close()
	raw, err := socks.Listen(ctx, "tcp", cfg.listen)
	if err != nil {
		return err
	}
	defer raw.Close() // on errors before serving; closing twice is harmless
	var ln net.Listener = raw
	// The admin self-check's connections stop here, once accepted.
	var accepts *acceptProbe
	if cfg.admin != "" {
		accepts = &acceptProbe{Listener: raw}
		ln = accepts
	}

	// 2. PROXY protocol reception: the carried client address replaces the
	// socket's for every layer above (ACLs, balancing, headers sent on).
	if acceptProxy != nil {
		ln = &proxyproto.Listener{Listener: ln, Trusted: acceptProxy, Logger: logger}
	}

	// 3. TLS: the certificates clients see, and the settings towards the
	// servers when bridging.
	var front tlsmode.Config
	if tlsFront {
		certs := &tlsmode.Store{Logger: logger}
		if cfg.certFile != "" {
			if err := certs.AddFiles(cfg.certFile, cfg.keyFile); err != nil {
				return err
			}
			if cfg.certReload > 0 {
				wg.Go(func() { certs.Watch(ctx, cfg.certReload) })
			}
		} else {
			cert, err := ca.Issue("localhost", "127.0.0.1", "::1")
			if err != nil {
				return err
			}
			if err := certs.Add(cert); err != nil {
				return err
			}
		}
		// Session ticket keys, rotated daily, shared by every TLS
		// configuration this process serves, and by every instance with
		// the same -ticket-key-file.
		wg.Go(func() { tickets.Run(ctx) })
		front = tlsmode.Config{Profile: profile, Certificates: certs, TicketKeys: tickets}
		if cfg.clientCA != "" {
			if front.ClientCAs, err = tlsmode.LoadCertPool(cfg.clientCA); err != nil {
				return err
			}
			front.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	up := tlsmode.Upstream{
		ServerName:         cmp.Or(cfg.backendServerName, hostOnly(cfg.backendHost)),
		UseClientSNI:       cfg.backendSNI,
		InsecureSkipVerify: cfg.backendInsecure,
		HTTP2:              cfg.backendH2,
		RootCAs:            demoRoots,
	}
	if bridge && cfg.backendCA != "" {
		if up.RootCAs, err = tlsmode.LoadCertPool(cfg.backendCA); err != nil {
			return err
		}
	}
	if cfg.mode == "https-bridge" {
		checkTLS = up.ClientConfig()
	}

	// 4. ACLs at accept, before any TLS work.
	if rules != nil {
		rules.Logger = logger
		ln = acl.Listener(rules, ln)
	}
	if cfg.wrapListener != nil {
		ln = cfg.wrapListener(ln)
	}

	// 4b. Limits at accept, outermost so that they see the client address
	// PROXY reception gave: HTTP wraps the listener here; a TCPFrontend
	// wraps the listener it is given itself (below, fe.Limits).
	if limits != nil && l7 {
		ln = limits.Listener(ln)
	}

	// 5. The pool.
	retries := cfg.retries
	if retries == 0 {
		retries = -1 // the Pool's "no retry"
	}
	pool := &lb.Pool{
		Name:            "backend",
		Balancer:        algo,
		ConnectTimeout:  cfg.connectTimeout,
		TCPKeepAlive:    tcpKeepAlive(cfg.serverTCPKeepAlive),
		Retries:         retries,
		RedispatchEvery: cfg.redispatchEvery,
		ProxyHeader:     sendProxy,
		Logger:          logger,
	}
	if !l7 {
		pool.TunnelTimeout = cfg.timeout
	}
	if cfg.mode == "tls-bridge" {
		up.Bridge(pool)
	}

	// 6. Health checks; they send the LOCAL form of the pool's PROXY header.
	if probe != nil {
		pool.HealthChecker = &health.Monitor{
			Probe:             probe,
			Interval:          cfg.healthInterval,
			TransientInterval: min(health.DefaultTransientInterval, cfg.healthInterval),
			Logger:            logger,
		}
	}

	// 7. Stickiness, set before the first connection.
	if affinity != nil {
		pool.Affinity = affinity
	}
	if err := pool.Update(servers); err != nil {
		return err
	}
	wg.Go(func() { pool.Run(ctx) })
	// Servers from DNS: the servers that stay keep their state.
	if fromDNS != nil {
		wg.Go(func() { fromDNS.Run(ctx, pool) })
	}

	// 8 and 9, HTTP: the reverse proxy, its ACL, and the server (HTTPS in
	// the TLS modes).
	if l7 {
		proxy := &lb.ReverseProxy{Name: "frontend", Pool: pool, ServerTimeout: cfg.timeout, Logger: logger,
			DropUnderscoreHeaders: cfg.dropUnderscoreHeaders,
			ClientTimeout:         flagDuration(cfg.clientTimeout),
			MinBodyRate:           flagInt(cfg.minBodyRate),
			MinBodyRateGrace:      flagDuration(cfg.minBodyRateGrace),
			MaxHeaderCount:        cfg.maxHeaderCount,
			MaxBodyBytes:          cfg.maxBodyBytes,
			ServerH2C:             cfg.backendH2C,
		}
		if accessLog != nil {
			proxy.AccessLog = accessLog
		}
		if failover != nil {
			proxy.Fallback = failover
		}
		proxy.ServerHost = cfg.backendHost
		if cfg.mode == "https-bridge" {
			up.BridgeHTTP(proxy)
		}
		var handler http.Handler = proxy
		if cfg.hsts > 0 {
			handler = tlsmode.HSTS{MaxAge: time.Duration(cfg.hsts) * time.Second}.Handler(handler)
		}
		if rules != nil {
			handler = acl.FilterHTTP(rules, handler)
		}
		srv := &http.Server{
			Handler: handler,
			// The recommended configuration of lb.ReverseProxy: no
			// ReadTimeout or WriteTimeout, which would cut long transfers;
			// the proxy bounds slow bodies and readers itself.
			ReadHeaderTimeout: max(cfg.requestTimeout, 0),
			IdleTimeout:       5 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
			// Connections count in Stats, and a reader that stopped is
			// cut after -client-timeout even when the response is
			// already in the kernel's buffers.
			// -upgrade-socket: the old process's drain waits for the
			// first request of its last connections (upgrade.go).
			ConnState: socks.trackFresh(proxy.ConnState),
		}
		if sendProxy != nil {
			// Server connections that carry a client's header are that
			// client's own.
			srv.ConnContext = proxy.ConnContext
		}
		if limits != nil {
			// Requests find their connection's verdict (-client-maxconn).
			proxy.Limits = limits
			srv.ConnContext = chainConnContext(limits.ConnContext, srv.ConnContext)
		}
		if cfg.admin != "" {
			stop, err := serveAdmin(ctx, cfg, socks, token, accepts, limits, proxy.Stats, pool, accessLog, &wg, out, logger)
			if err != nil {
				return err
			}
			defer stop()
		}
		// HTTP/2 to clients, checked as RFC 9113 requires (lb.ConfigureHTTP2):
		// through ALPN in the TLS modes, with prior knowledge under -h2c.
		if tlsFront {
			srv.TLSConfig = front.HTTPConfig()
		}
		if tlsFront || cfg.h2c {
			if err := lb.ConfigureHTTP2(srv, lb.HTTP2Options{Cleartext: cfg.h2c, HTTP2Only: cfg.h2Only}); err != nil {
				return err
			}
			if cfg.h2c && cfg.h2Only {
				ln = lb.H2CListener(ln) // refusals end with a FIN
			}
		}
		fe, err := httpFrontend(cfg.httpEngine, cfg.quickAck, srv)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "lbproxy: %s on %s\n", cfg.mode, ln.Addr())
		if tlsFront {
			also := []lb.Shutdowner{proxy}
			// HTTP/3 on the UDP port of the listener (http3.go), drained
			// with the TCP side.
			if cfg.http3 {
				h3, closeSocket, err := startHTTP3(ctx, socks, srv, raw.Addr(), limits, logger, out, cancel)
				if err != nil {
					return err
				}
				defer closeSocket()
				also = append(also, h3)
			}
			if err := socks.ready(ctx, &wg, cancel, logger, out); err != nil {
				return err
			}
			return lb.ServeTLS(ctx, fe, ln, cfg.grace, also...)
		}
		if err := socks.ready(ctx, &wg, cancel, logger, out); err != nil {
			return err
		}
		return lb.Serve(ctx, fe, ln, cfg.grace, proxy)
	}

	// 8 and 9, TCP: the chain in front of the pool, and the server.
	var backend lb.Backend = pool
	switch cfg.mode {
	case "tls", "tls-bridge":
		off := tlsmode.Offload(front.ServerConfig(), backend)
		off.Logger = logger
		backend = off
	case "tls-passthrough":
		mux, err := sniMux(cfg, pool, logger)
		if err != nil {
			return err
		}
		pt := tlsmode.Passthrough(mux)
		pt.Logger = logger
		backend = pt
	}
	if rules != nil {
		backend = acl.Filter(rules, backend)
	}
	fe := &lb.TCPFrontend{Name: "frontend", Backend: backend, Logger: logger, Limits: limits}
	if accessLog != nil {
		fe.AccessLog = accessLog
	}
	if cfg.admin != "" {
		stop, err := serveAdmin(ctx, cfg, socks, token, accepts, limits, fe.Stats, pool, accessLog, &wg, out, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	fmt.Fprintf(out, "lbproxy: %s on %s\n", cfg.mode, ln.Addr())
	if err := socks.ready(ctx, &wg, cancel, logger, out); err != nil {
		return err
	}
	return lb.Serve(ctx, fe, ln, cfg.grace)
}

// serveAdmin starts the admin endpoints on -admin and their self-checks,
// which end with ctx; the returned stop, called once lbproxy has drained,
// stops the admin server within -grace.
func serveAdmin(ctx context.Context, cfg *config, socks *sockets, token string, accepts *acceptProbe, limits *lb.Limits, frontend func() lb.FrontendStats,
	pool *lb.Pool, accessLog *accesslog.Writer, wg *sync.WaitGroup, out io.Writer, logger *slog.Logger) (stop func(), err error) {
	ln, err := socks.Listen(ctx, "tcp", cfg.admin)
	if err != nil {
		return nil, fmt.Errorf("lbproxy: -admin: %w", err)
	}
	check := &selfCheck{ctx: ctx, accept: accepts, interval: cmp.Or(cfg.checkInterval, checkInterval), logger: logger,
		paused: func() bool { return holdingAccepts(limits) }}
	check.shared = func() bool { return socks.sharedAccept(check.interval) }
	if accepts != nil {
		accepts.shared = check.shared
	}
	wg.Go(func() { check.run(ctx) })
	// The frontend and the pool, seen by the status page (and /stats) and by
	// Prometheus; both read their counters only when asked.
	page := &statuspage.Handler{Title: "lbproxy " + cfg.mode}
	page.AddFrontend("frontend", frontendSource(frontend))
	page.AddPool(pool.Name, pool)
	collector := &metrics.Collector{}
	collector.AddFrontend("frontend", frontendSource(frontend))
	collector.AddPool(pool.Name, pool)
	if accessLog != nil {
		collector.AddAccessLog("access", accessLog)
	}
	// State shared through -redis: its fallbacks say when the fleet
	// stopped agreeing.
	if s, ok := pool.Affinity.(metrics.SharedSource); ok {
		collector.AddShared("sticky", s)
	}
	if limits != nil {
		if s, ok := limits.ClientRater.(metrics.SharedSource); ok {
			collector.AddShared("client_rate", s)
		}
	}
	mux := adminMux(check, statsHandler(page), token, metrics.Handler(collector), page)
	fmt.Fprintf(out, "admin endpoints on http://%s/\n", ln.Addr())
	return startAdmin(wg, ln, mux, cfg.grace, logger), nil
}

// defaultHTTPEngine is the default of -http-engine.
var defaultHTTPEngine = "lbkit"

// httpFrontend returns the frontend that serves srv with the engine named
// by -http-engine, with -quick-ack.
func httpFrontend(engine string, quickAck bool, srv *http.Server) (lb.TLSFrontend, error) {
	switch engine {
	case "lbkit":
		fe, err := lb.NewHTTPFrontend(srv)
		if err != nil {
			return nil, err
		}
		fe.QuickAck = quickAck
		return fe, nil
	case "net/http":
		return srv, nil
	}
	return nil, fmt.Errorf("-http-engine %q: want lbkit or net/http", engine)
}

// chainConnContext returns an http.Server.ConnContext hook that runs first,
// then next (nil: none) on the context first returns.
func chainConnContext(first, next func(context.Context, net.Conn) context.Context) func(context.Context, net.Conn) context.Context {
	if next == nil {
		return first
	}
	return func(ctx context.Context, c net.Conn) context.Context { return next(first(ctx, c), c) }
}

// parseServers turns a comma-separated address list into Pool servers named
// after their position (s1, s2, ...), each limited to maxConns.
func parseServers(list string, maxConns int) ([]lb.Server, error) {
	var servers []lb.Server
	for i, addr := range strings.Split(list, ",") {
		if addr = strings.TrimSpace(addr); addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("lbproxy: backend %q: %w", addr, err)
		}
		servers = append(servers, lb.Server{Name: fmt.Sprintf("s%d", i+1), Addr: addr, MaxConns: maxConns})
	}
	if len(servers) == 0 {
		return nil, errors.New("lbproxy: no backend address")
	}
	return servers, nil
}

// flagDuration maps a duration flag to an lb field: the flag's zero means
// none, as its negative does, where the field's zero means its default.
func flagDuration(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// flagInt is flagDuration for an integer flag.
func flagInt(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
