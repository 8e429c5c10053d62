# TLS modes: curl and openssl s_client as real clients, and Pebble (the
# ACME test server of Let's Encrypt) with its DNS companion for the ACME
# end-to-end test. Sourced by scripts/test.sh, which defines apt_install.
apt_install curl openssl ca-certificates
PEBBLE_VERSION=v2.8.0
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
if [ ! -x "$gobin/pebble" ] && ! command -v pebble >/dev/null 2>&1; then
  go install "github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION"
fi
if [ ! -x "$gobin/pebble-challtestsrv" ] && ! command -v pebble-challtestsrv >/dev/null 2>&1; then
  go install "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$PEBBLE_VERSION"
fi
