package balancer_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lbkit/lbkit/balancer"
	"github.com/lbkit/lbkit/lb"
)

func TestByName(t *testing.T) {
	req := &http.Request{URL: &url.URL{Path: "/p", RawQuery: "q=1"}, Header: http.Header{
		"X-User": {"bob"},
		"Cookie": {"sid=s1"},
	}}
	info := lb.PickInfo{Request: req, SNI: "example.com"}
	tests := []struct {
		spec    string
		typ     string
		keyText string  // for hashes: the text the key hashes; "" when none
		bounded float64 // for hashes
	}{
		{"", "*balancer.RoundRobin", "", 0},
		{"roundrobin", "*balancer.RoundRobin", "", 0},
		{"RR", "*balancer.RoundRobin", "", 0},
		{" leastconn ", "*balancer.LeastConn", "", 0},
		{"first", "balancer.First", "", 0},
		{"random", "balancer.Random", "", 0},
		{"P2C", "balancer.P2C", "", 0},
		{"hash", "*balancer.Hash", "", 0},
		{"source", "*balancer.Hash", "", 0},
		{"hash:source", "*balancer.Hash", "", 0},
		{"hash:header:x-user", "*balancer.Hash", "bob", 0},
		{"hash:cookie:sid", "*balancer.Hash", "s1", 0},
		{"hash:uri", "*balancer.Hash", "/p?q=1", 0},
		{"hash:sni", "*balancer.Hash", "example.com", 0},
		{"hash:uri,bounded=1.5", "*balancer.Hash", "/p?q=1", 1.5},
		{"hash:cookie:sid, bounded", "*balancer.Hash", "s1", balancer.DefaultBoundedLoad},
	}
	for _, tt := range tests {
		b, err := balancer.ByName(tt.spec)
		if err != nil {
			t.Errorf("ByName(%q): %v", tt.spec, err)
			continue
		}
		if got := fmt.Sprintf("%T", b); got != tt.typ {
			t.Errorf("ByName(%q) is a %s, want %s", tt.spec, got, tt.typ)
		}
		h, ok := b.(*balancer.Hash)
		if !ok {
			continue
		}
		if h.BoundedLoad != tt.bounded {
			t.Errorf("ByName(%q).BoundedLoad = %v, want %v", tt.spec, h.BoundedLoad, tt.bounded)
		}
		if tt.keyText != "" {
			hv, ok := h.Key(info)
			if !ok || hv != balancer.HashString(tt.keyText) {
				t.Errorf("ByName(%q): key does not hash %q", tt.spec, tt.keyText)
			}
		}
	}
	// Every listed name (with NAME filled in) is accepted.
	for _, name := range balancer.Names() {
		if _, err := balancer.ByName(strings.ReplaceAll(name, "NAME", "X")); err != nil {
			t.Errorf("listed name %q: %v", name, err)
		}
	}
}

func TestByNameErrors(t *testing.T) {
	for _, spec := range []string{
		"fastest", "hash:body", "hash:header:", "hash:cookie", "source:x", "hash:uri:x",
		"roundrobin,bounded=2", "hash,bounded=0.5", "hash,bounded=x", "hash,weird=1",
	} {
		_, err := balancer.ByName(spec)
		if err == nil {
			t.Errorf("ByName(%q) succeeded", spec)
		}
	}
	_, err := balancer.ByName("fastest")
	if !errors.Is(err, balancer.ErrUnknown) {
		t.Errorf("unknown algorithm: %v, want ErrUnknown", err)
	}
	for _, name := range balancer.Names() {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not list %q", err, name)
		}
	}
}
