// Package acl decides, per connection and per request, who gets in and
// which backend serves them: ordered access-control rules (allow, deny,
// redirect) and HTTP routes by Host and path.
//
// # Rules
//
// A Rule matches on the client IP (netip.Prefix lists, IPv4 and IPv6), the
// HTTP path (begins with, ends with, regular expression; the path without
// the query, decoded and cleaned), a header (name case-insensitive, values
// OR-ed), the Host and the TLS server name (SNI). The filters of one rule
// are AND-ed; Invert negates the whole rule. Compile validates a list of
// rules once; the compiled Rules are evaluated in index order, the first
// rule that matches decides, and when none matches traffic is allowed.
// Actions: Allow, Deny (HTTP 403, PERMISSION_DENIED for gRPC requests, or
// the TCP connection closed) and
// RedirectTo (a Location template with {{host}}, {{path}}, {{query}} and
// {{scheme}}, or a change of scheme; 301, 302 by default, 303, 307, 308).
// Placeholders are escaped so that no header can be injected and no target
// leaves what the template names.
//
// Evaluating IP, path prefix and suffix, header, Host and SNI filters does
// not allocate. Each decision is counted per rule (Rules.Stats), and each
// denial or redirect is logged at Debug level with the rule's index and
// name.
//
// # Layers
//
// Each layer applies what it can see, and all can share one Rules value:
//
//   - Listener wraps a net.Listener and closes denied connections at accept
//     time, before any TLS work, when the client address alone decides.
//   - Filter decorates an lb.Backend (L4): IP and SNI rules, after a tlsmode
//     adapter has filled lb.ConnInfo.SNI. Only rules without HTTP filters
//     apply; a redirect needs HTTP and never happens there.
//   - FilterHTTP decorates an http.Handler (L7): every rule.
//
// The client address is lb.ConnInfo.Remote or http.Request.RemoteAddr: the
// address of a PROXY header when the frontend is configured to accept
// them, the socket's peer otherwise.
//
// # Routes
//
// Router picks the lb.Pool of each HTTP request by Host (exact, or any
// subdomain with "*.example.com") and path prefix, first match in order, or
// its Default. It is evaluated on every request, so HTTP/2 connections
// reused for several hosts are routed correctly; plug Router.Route into
// lb.ReverseProxy.Route. TCP routes by SNI are lb.Mux, behind Filter.
//
// # Usage
//
//	rules, err := acl.Compile(
//		acl.Rule{Name: "office only", IPs: office, Invert: true, Action: acl.Deny},
//		acl.Rule{Name: "no admin", PathPrefix: []string{"/admin"}, Action: acl.Deny},
//	)
//	if err != nil {
//		return err
//	}
//	router, err := acl.NewRouter(web,
//		acl.Route{Host: []string{"api.example.com"}, Pool: api},
//		acl.Route{Host: []string{"example.com", "*.example.com"}, Pool: web},
//	)
//	if err != nil {
//		return err
//	}
//	proxy := &lb.ReverseProxy{Pool: web, Route: router.Route}
//	srv := &http.Server{Handler: acl.FilterHTTP(rules, proxy)}
//	return lb.Serve(ctx, srv, acl.Listener(rules, ln), 30*time.Second, proxy)
//
// At L4, with routes by SNI:
//
//	mux := &lb.Mux{Default: web}
//	mux.Handle("db.example.com", db)
//	backend := tlsmode.Passthrough(acl.Filter(rules, mux)) // Filter after the SNI peek
package acl
