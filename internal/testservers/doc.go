// Package testservers starts real database, directory, key-value and DNS
// servers for tests: MariaDB, PostgreSQL, Redis, OpenLDAP, etcd and
// dnsmasq from Debian's packages, each on a free loopback port with its data in a temporary
// directory, stopped and removed when the test ends.
//
// A missing binary skips the test, or fails it under CI=true (see
// testutil.LookBinary); scripts/deps/health.sh, scripts/deps/etcd.sh and
// scripts/deps/dns.sh install the packages. A test of several servers
// starts each through Optional, which reports a missing one instead of
// skipping, and skips only the cases that need it.
//
//	srv := testservers.Redis(t)
//	... check srv.Addr ...
//	srv.Stop(t)  // the port now refuses connections
//	srv.Start(t) // same port, same data
package testservers
