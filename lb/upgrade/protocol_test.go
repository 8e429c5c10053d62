package upgrade

import (
	"strings"
	"testing"
)

func TestSocketsMessageRoundTrip(t *testing.T) {
	names := []socketName{
		{"tcp", ":8443", "[::]:8443"},
		{"udp", "127.0.0.1:8443", "127.0.0.1:8443"},
		{"unix", "/run/app.sock", "/run/app.sock"},
	}
	msg, err := socketsMessage(names)
	if err != nil {
		t.Fatal(err)
	}
	// The answer may arrive in parts: every prefix is incomplete.
	for i := range len(msg) {
		if _, complete, err := parseSockets(msg[:i]); complete || err != nil {
			t.Fatalf("prefix %q: complete %v, %v", msg[:i], complete, err)
		}
	}
	got, complete, err := parseSockets(msg)
	if !complete || err != nil || len(got) != len(names) {
		t.Fatalf("parse = %v, %v, %v", got, complete, err)
	}
	for i := range names {
		if got[i] != names[i] {
			t.Errorf("socket %d = %v, want %v", i, got[i], names[i])
		}
	}
	if _, err := socketsMessage([]socketName{{"unix", "/a b", "/a b"}}); err == nil {
		t.Error("a name with a space was written")
	}
}

func TestParseSocketsRefusals(t *testing.T) {
	for _, tt := range []struct{ msg, want string }{
		{"LBKIT-UPGRADE 1 ERR another user\n", "refused: another user"},
		{"LBKIT-UPGRADE 2 OK 0\n", "version"},
		{"HTTP/1.1 200 OK\n", "protocol error"},
		{"LBKIT-UPGRADE 1 OK 65\n", "socket count"},
		{"LBKIT-UPGRADE 1 OK -1\n", "socket count"},
		{"LBKIT-UPGRADE 1 OK 1\ntcp :80\n", "socket"},
		{"LBKIT-UPGRADE 1 OK 0\nextra", "after the sockets"},
	} {
		_, complete, err := parseSockets([]byte(tt.msg))
		if !complete || err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: complete %v, %v; want an error about %q", tt.msg, complete, err, tt.want)
		}
	}
}

func TestMatches(t *testing.T) {
	n := socketName{"tcp", ":8443", "[::]:8443"}
	for _, tt := range []struct {
		network, addr string
		want          bool
	}{
		{"tcp", ":8443", true},
		{"tcp", "[::]:8443", true},
		{"udp", ":8443", false},
		{"tcp", ":8444", false},
		{"tcp4", ":8443", false},
	} {
		if got := n.matches(tt.network, tt.addr); got != tt.want {
			t.Errorf("matches(%s, %s) = %v", tt.network, tt.addr, got)
		}
	}
	if (socketName{"tcp", "127.0.0.1:0", "127.0.0.1:0"}).matches("tcp", "127.0.0.1:0") {
		t.Error("port 0 matched")
	}
}

func FuzzParseSockets(f *testing.F) {
	f.Add([]byte("LBKIT-UPGRADE 1 OK 1\ntcp :80 [::]:80\n"))
	f.Add([]byte("LBKIT-UPGRADE 1 ERR no\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		names, complete, err := parseSockets(msg)
		if err != nil || !complete {
			return
		}
		again, err := socketsMessage(names)
		if err != nil {
			t.Fatalf("parsed names %v cannot be written: %v", names, err)
		}
		back, complete, err := parseSockets(again)
		if err != nil || !complete || len(back) != len(names) {
			t.Fatalf("round trip of %v: %v, %v, %v", names, back, complete, err)
		}
	})
}
