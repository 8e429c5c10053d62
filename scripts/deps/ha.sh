# High availability (examples/ha): keepalived runs a master/backup pair of
# lbproxy in network namespaces, made with iproute2's ip; its health check
# is curl on lbproxy's /healthz. The test needs root. Sourced by
# scripts/test.sh, which defines apt_install (and keeps keepalived's own
# service from starting).
apt_install keepalived iproute2 curl
