package etcdstore_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/lb/config/etcdstore"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in        string
		endpoints []string
		key       string
		tls       bool
	}{
		{"etcd://127.0.0.1:2379/lbkit/config", []string{"127.0.0.1:2379"}, "/lbkit/config", false},
		{"etcd://10.0.0.1:2379,10.0.0.2:2379/fleet/a", []string{"10.0.0.1:2379", "10.0.0.2:2379"}, "/fleet/a", false},
		{"etcd://[::1]:2379", []string{"[::1]:2379"}, "", false},
		{"etcd://etcd.internal:2379/", []string{"etcd.internal:2379"}, "", false},
		{"etcds://etcd.internal:2379/k", []string{"https://etcd.internal:2379"}, "/k", true},
	} {
		o, err := etcdstore.ParseURL(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !slices.Equal(o.Endpoints, tc.endpoints) || o.Key != tc.key || (o.TLS != nil) != tc.tls {
			t.Errorf("%s: endpoints %v key %q tls %v; want %v %q %v", tc.in, o.Endpoints, o.Key, o.TLS != nil, tc.endpoints, tc.key, tc.tls)
		}
	}
	for _, in := range []string{
		"", "127.0.0.1:2379", "http://127.0.0.1:2379/k", "etcd://", "etcd:///k", "etcd://127.0.0.1/k",
		"etcd://127.0.0.1:2379,/k", "etcd://user:pw@127.0.0.1:2379/k", "etcd://127.0.0.1:2379/k?x=1",
		"etcd://:2379/k",
	} {
		if _, err := etcdstore.ParseURL(in); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	f.Add("etcd://127.0.0.1:2379,10.0.0.2:2379/lbkit/config")
	f.Add("etcds://[::1]:2379/k")
	f.Fuzz(func(t *testing.T, in string) {
		o, err := etcdstore.ParseURL(in)
		if err != nil {
			return
		}
		if len(o.Endpoints) == 0 {
			t.Fatalf("%q: accepted without an endpoint", in)
		}
		if o.Key != "" && !strings.HasPrefix(o.Key, "/") {
			t.Fatalf("%q: key %q without its slash", in, o.Key)
		}
	})
}
