# PROXY protocol interop tests: lbkit sends headers to HAProxy
# (accept-proxy) and nginx (listen ... proxy_protocol), started by the tests
# on loopback. Sourced by scripts/test.sh, which defines apt_install.
apt_install haproxy nginx
