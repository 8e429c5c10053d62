// Package h1 is lbkit's HTTP/1.1 client engine, the transport of
// lb.ReverseProxy towards servers. Each round trip runs on the calling
// goroutine: the request is written into the connection's buffer and
// flushed once, the response headers are parsed (a plain head, the
// common case, by the engine's own reader in response.go, which keeps the
// values in one string and frames the body itself; anything else, errors
// included, by http.ReadResponse, so both accept and reject the same
// responses), and the connection returns to its server's idle stack (the most recent is
// reused first) when the body has been read. net/http's Transport hands
// every request to a writing and a reading goroutine per connection, and
// those hand-offs cost more CPU than the parsing itself on keep-alive
// connections to nearby servers (measurements in BENCHMARKS.md).
//
// The engine handles requests without a body or with a body of known length
// up to [MaxBody], without Upgrade or Expect headers. Anything else (streamed
// or larger bodies, WebSockets and other upgrades, Expect: 100-continue)
// goes to [Transport.Fallback], which keeps net/http's behavior for them.
//
// A reused connection may have been closed by the server meanwhile. A
// request net/http would replay (GET, HEAD, OPTIONS, TRACE or with an
// Idempotency-Key, without a body) is sent again once on a new connection
// when the reused one fails before any byte of the response, or answers
// with a 408 (an idle server's notice). Before writing any other request on
// a reused connection, the engine peeks at the socket (non-blocking
// MSG_PEEK) and drops the connection when the server closed it or sent
// something unasked. The request's context interrupts the exchange and the
// body: through the request's hook when the Server (or its HTTP/2 stream
// goroutine) cancels it (abort.go), otherwise through context.AfterFunc.
// No goroutine is started per request or per connection.
//
// The package also holds the server side, [Server] (files server*.go): an
// HTTP/1.1 server engine for proxied traffic, configured from an
// http.Server and serving its Handler, behind lb.HTTPFrontend. It parses
// requests at least as strictly as net/http's server, and parks idle
// keep-alive connections (package internal/park) after a short hot window,
// so that they hold neither a goroutine nor a buffer; buffers come from
// pools while bytes move. Connections, wake-ups of parked ones, and the
// handlers of HTTP/2 streams (served by golang.org/x/net/http2 through
// TLSNextProto) run on the workers of internal/gopool, whose stacks have
// grown already to what serving a request takes (stream.go). On Linux
// its listeners delay ACKs (TCP_QUICKACK off, inherited by accepted
// sockets), so that a new connection's request is acknowledged by its
// response, as HAProxy's tcp-smart-accept does (quickack_linux.go).
package h1
