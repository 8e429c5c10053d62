package etcdstore

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
)

// ParseURL reads the address of a document in etcd, as lbproxy's -config
// flag takes it: etcd://HOST:PORT[,HOST:PORT...][/KEY] connects in plain
// text, etcds://... over TLS (Options.TLS is then an empty *tls.Config:
// system roots; the caller may replace it). The key is the path, with its
// leading slash ("etcd://10.0.0.5:2379/lbkit/config" is the key
// "/lbkit/config"); without a path it is DefaultKey. The other fields of
// the result are zero: their defaults.
func ParseURL(raw string) (Options, error) {
	var o Options
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (scheme != "etcd" && scheme != "etcds") {
		return o, fmt.Errorf("etcdstore: %q: want etcd://HOST:PORT[,HOST:PORT]/KEY or etcds://...", raw)
	}
	hosts, key, _ := strings.Cut(rest, "/")
	if strings.Contains(hosts, "@") || strings.ContainsAny(rest, "?#") {
		return o, fmt.Errorf("etcdstore: %q: credentials, queries and fragments are not taken in the address", raw)
	}
	for h := range strings.SplitSeq(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return o, fmt.Errorf("etcdstore: %q: endpoint %q is not HOST:PORT", raw, h)
		}
		if scheme == "etcds" {
			h = "https://" + h
		}
		o.Endpoints = append(o.Endpoints, h)
	}
	if key != "" {
		o.Key = "/" + key
	}
	if scheme == "etcds" {
		o.TLS = newTLSConfig()
	}
	return o, nil
}

func newTLSConfig() *tls.Config { return &tls.Config{MinVersion: tls.VersionTLS12} }
