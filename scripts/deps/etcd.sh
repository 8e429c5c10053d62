# The server and command-line client of etcd, the shared configuration
# store of a fleet (lb/config/etcdstore, examples/lbproxy): the tests start
# etcd on loopback (internal/testservers.Etcd). Sourced by scripts/test.sh,
# which defines apt_install.
apt_install etcd-server etcd-client
