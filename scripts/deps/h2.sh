# HTTP/2: h2spec, the conformance suite of RFC 9113 and RFC 7541, run
# against lbproxy's HTTPS and h2c frontends, at the version pinned in
# scripts/tools/go.mod; curl (--http2-prior-knowledge) as an h2c client.
# Sourced by scripts/test.sh, which defines apt_install and go_tool.
apt_install curl
go_tool github.com/summerwind/h2spec/cmd/h2spec
