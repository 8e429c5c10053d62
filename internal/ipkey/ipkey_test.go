package ipkey

import (
	"net/netip"
	"testing"
)

func TestOf(t *testing.T) {
	for _, c := range []struct {
		in     string
		v4, v6 int
		want   string
	}{
		{"192.0.2.77", 0, 0, "192.0.2.77"},
		{"192.0.2.77", 24, 0, "192.0.2.0"},
		{"::ffff:192.0.2.77", 24, 0, "192.0.2.0"},
		{"192.0.2.77", 32, 0, "192.0.2.77"},
		{"2001:db8:1:2:3:4:5:6", 0, 64, "2001:db8:1:2::"},
		{"fe80::1%eth0", 0, 0, "fe80::1"},
		{"2001:db8::1", 24, 128, "2001:db8::1"},
	} {
		k, ok := Of(netip.MustParseAddr(c.in), c.v4, c.v6)
		if got := netip.AddrFrom16(k).Unmap(); !ok || got != netip.MustParseAddr(c.want) {
			t.Errorf("Of(%s, %d, %d) = %s, %v; want %s", c.in, c.v4, c.v6, got, ok, c.want)
		}
	}
	if _, ok := Of(netip.Addr{}, 0, 0); ok {
		t.Error("the zero address has a key")
	}
}
