// Package tlsmode adapts lbkit frontends and backends to the three ways a
// load balancer handles encrypted traffic, and manages the certificates a
// frontend presents.
//
//   - Passthrough: Passthrough peeks the client's ClientHello without
//     consuming it (PeekSNI, an allocation-free parser that accepts what
//     crypto/tls accepts; PeekClientHello for crypto/tls's full view), records
//     the SNI and ALPN in lb.ConnInfo and hands the connection on, bytes
//     untouched, typically to an lb.Mux routing by SNI. The client's TLS
//     session ends at the server, and the Pool still splices.
//   - Offloading: Offload terminates TLS on L4 connections and passes plain
//     bytes on; Config.HTTPConfig builds the *tls.Config of an http.Server
//     (L7), with HTTP/2 offered through ALPN. lb.ReverseProxy sets
//     X-Forwarded-Proto: https and rebuilds X-Forwarded-For, -Host and
//     -Port.
//   - Bridging: Upstream.Bridge makes an lb.Pool open TLS to its servers
//     (after any PROXY header), Upstream.BridgeHTTP makes an
//     lb.ReverseProxy speak HTTPS (HTTP/1.1, or HTTP/2 when asked for) to
//     them. Server certificates
//     are verified by default, against RootCAs or the system roots, for
//     ServerName, the client's SNI (UseClientSNI) or the server's address;
//     InsecureSkipVerify must be asked for.
//
// Profiles (Old, Intermediate by default, Modern) follow Mozilla's
// server-side TLS guidelines. Config.ClientAuth and ClientCAs ask clients
// for certificates (mTLS); ClientCN reads the verified name from
// lb.ConnInfo, for PROXY protocol v2-ssl-cn. Config.TicketKeys shares
// rotated session ticket keys among frontends (TicketKeys); with
// TicketKeys.Secret set, the keys derive from the secret and the time
// (HKDF-SHA256 per Rotation period, the previous periods within Lifetime
// and the next one accepted), so load balancers that share the secret
// resume each other's sessions, across failovers and restarts, without
// talking to each other. HSTS adds Strict-Transport-Security to HTTPS
// responses, opt-in.
//
// A Store holds several certificates chosen by SNI (exact, one-label
// wildcard, default for missing or unknown names), loaded from memory or PEM
// files (chain and key in one file or two), reloaded on demand (Reload) or
// when the files change (Watch), atomically and without dropping
// connections. ACME obtains and renews certificates from Let's Encrypt or
// any RFC 8555 service over TLS-ALPN-01 and HTTP-01, with
// golang.org/x/crypto/acme/autocert.
//
// Typical usage, L7 offloading with SNI certificates and reload, and L4
// passthrough routing by SNI:
//
//	certs := &tlsmode.Store{}
//	certs.AddFiles("example.com.pem", "example.com.key")
//	certs.AddFiles("api.example.com.pem", "") // chain and key in one file
//	go certs.Watch(ctx, 5*time.Second)
//
//	srv := &http.Server{
//		Handler:   &lb.ReverseProxy{Pool: web},
//		TLSConfig: tlsmode.Config{Certificates: certs}.HTTPConfig(),
//	}
//	go srv.ServeTLS(ln443, "", "")
//
//	mux := &lb.Mux{Default: other}
//	mux.Handle("db.example.com", dbPool)
//	l4 := &lb.TCPFrontend{Backend: tlsmode.Passthrough(mux)}
//	go l4.Serve(ln8443)
//
// Design notes. Passthrough reads the ClientHello with lbkit's own parser
// (internal/clienthello): crypto/tls, through a server handshake over the
// peeked bytes that stops in GetConfigForClient (the technique of
// inetaf/tcpproxy, which ParseClientHello and PeekClientHello keep),
// cost about 15 µs and 45 allocations per connection, where the parser
// takes about 1 µs and none. It checks what crypto/tls checks before a
// server sees the hello, a fuzz target compares the two, and the few
// differences (records crypto/tls tolerates, names over 255 bytes, ALPN
// lists over 512 bytes, all refused) are listed at PeekSNI.
// Certificate wildcards cover exactly one label, as in X.509 name
// matching, whereas lb.Mux wildcards route any depth. File changes are
// detected by polling modification time and size rather than inotify: it
// works for every file system and for the symbolic-link swaps of
// Kubernetes secrets, at the cost of the poll interval.
package tlsmode
