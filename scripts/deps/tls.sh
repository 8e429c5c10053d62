# TLS modes: curl and openssl s_client as real clients, and Pebble (the
# ACME test server of Let's Encrypt) with its DNS companion for the ACME
# end-to-end test, at the version pinned in scripts/tools/go.mod. Sourced
# by scripts/test.sh, which defines apt_install and go_tool.
apt_install curl openssl ca-certificates
go_tool github.com/letsencrypt/pebble/v2/cmd/pebble github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv
