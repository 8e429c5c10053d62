// Package clienthello reads the server name (SNI) and the application
// protocols (ALPN) of a TLS ClientHello without allocating: the parser of
// the passthrough peek, which runs once per connection before lbkit knows
// where the connection goes.
//
// [Parse] reads the handshake records at the start of a buffer, however the
// client split the ClientHello among them, into a caller-provided [Hello]
// of fixed size. It checks what crypto/tls checks before a server sees the
// hello (the message's structure, every extension crypto/tls parses, no
// extension twice, pre_shared_key last, a server name without a trailing
// dot, the form of an encrypted_client_hello extension), so that a hello
// accepted here is one crypto/tls accepts, with the same server name and
// protocols; FuzzParse compares the two on every input.
//
// Where the two differ, by design:
//
//   - Records: every record that carries the hello must be a handshake
//     record (type 22) of version 3.x with 1 to 16384 bytes, and the records
//     together at most [MaxLen] bytes, headers included. crypto/tls also
//     accepts empty handshake records, warning alerts between the records,
//     record versions other than 3.x, and hellos up to 64 KiB; a proxy
//     that buffers the hello before choosing a server bounds it instead.
//   - Sizes: a server name longer than [MaxServerName] bytes (a DNS name
//     has at most 253) or ALPN protocol lists longer than [MaxALPN] bytes
//     make Parse fail with [ErrTooLarge], after the rest of the hello has
//     been checked. crypto/tls accepts them.
//
// Parse does not allocate, except one 8 KiB set for hellos with more than
// 32 extensions (browsers send about 20), where a short list no longer
// detects duplicates cheaply.
package clienthello
