package lb_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
)

func TestParseTraceParent(t *testing.T) {
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		in string
		ok bool
	}{
		{valid, true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true}, // later version, extra fields
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{valid + "-x", false}, // version 00 is exactly 55 characters
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false}, // uppercase
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", false},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"", false},
		{valid[:54], false},
	}
	for _, tt := range tests {
		tp, ok := lb.ParseTraceParent(tt.in)
		if ok != tt.ok {
			t.Errorf("ParseTraceParent(%q) ok = %v, want %v", tt.in, ok, tt.ok)
		}
		if ok && tt.in == valid && tp.String() != valid {
			t.Errorf("String() = %q, want %q", tp.String(), valid)
		}
	}
}

func FuzzParseTraceParent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
	f.Add("ff-00000000000000000000000000000000-0000000000000000-00")
	f.Fuzz(func(t *testing.T, s string) {
		tp, ok := lb.ParseTraceParent(s)
		if !ok {
			return
		}
		out := tp.String()
		if len(out) != 55 || out[2] != '-' || tp.TraceID == [16]byte{} || tp.ParentID == [8]byte{} {
			t.Fatalf("%q parsed into %q", s, out)
		}
		if tp.Version == 0 && out != s {
			t.Fatalf("version 00 %q formats back as %q", s, out)
		}
		if out[3:] != s[3:55] {
			t.Fatalf("%q formats as %q", s, out)
		}
		back, ok := lb.ParseTraceParent(out)
		if !ok || back.TraceID != tp.TraceID || back.ParentID != tp.ParentID || back.Flags != tp.Flags {
			t.Fatalf("%q does not parse back", out)
		}
	})
}

func TestRequestIDAndTracePropagation(t *testing.T) {
	testutil.CheckLeaks(t)
	b := testutil.HTTPBackend(t, "a")
	pool := &lb.Pool{Name: "web"}
	must(t, pool.Update([]lb.Server{{Name: "a", Addr: b.Addr}}))
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, trust := range []bool{false, true} {
		logs := newCollector()
		proxy := &lb.ReverseProxy{Pool: pool, AccessLog: logs, RequestID: true, TrustRequestID: trust, Trace: true}
		url, stop := startL7(t, proxy, time.Second)
		c := client()

		// No ID, no trace: both started.
		get(t, c, url+"/")
		h, r := b.LastHeader(), logs.Next(t)
		if id := h.Get("X-Request-Id"); !hexID.MatchString(id) || r.RequestID != id {
			t.Errorf("generated ID %q, logged %q", id, r.RequestID)
		}
		tp, ok := lb.ParseTraceParent(h.Get("Traceparent"))
		if !ok || tp.Flags != 0 || h.Get("Tracestate") != "" || r.TraceID != h.Get("Traceparent")[3:35] ||
			r.SpanID != h.Get("Traceparent")[36:52] {
			t.Errorf("started trace %q (record %s/%s)", h.Get("Traceparent"), r.TraceID, r.SpanID)
		}

		// A client's ID and a valid trace.
		get(t, c, url+"/", "X-Request-Id", "client-id-1", "Traceparent", incoming, "Tracestate", "k=v")
		h, r = b.LastHeader(), logs.Next(t)
		wantID := "client-id-1"
		if !trust {
			wantID = ""
		}
		if id := h.Get("X-Request-Id"); (trust && id != wantID) || (!trust && !hexID.MatchString(id)) || r.RequestID != id {
			t.Errorf("trust %v: ID sent %q, logged %q", trust, id, r.RequestID)
		}
		out := h.Get("Traceparent")
		if !strings.HasPrefix(out, incoming[:36]) || !strings.HasSuffix(out, "-01") || out == incoming ||
			h.Get("Tracestate") != "k=v" || r.TraceID != incoming[3:35] {
			t.Errorf("kept trace sent as %q, tracestate %q", out, h.Get("Tracestate"))
		}

		// An invalid trace is replaced and its tracestate dropped; an
		// invalid ID is replaced even when trusted.
		get(t, c, url+"/", "X-Request-Id", "bad id", "Traceparent", strings.ToUpper(incoming), "Tracestate", "k=v")
		h, _ = b.LastHeader(), logs.Next(t)
		if id := h.Get("X-Request-Id"); !hexID.MatchString(id) {
			t.Errorf("invalid client ID became %q", id)
		}
		if tp := h.Get("Traceparent"); strings.Contains(strings.ToLower(incoming), tp[3:35]) || h.Get("Tracestate") != "" {
			t.Errorf("invalid trace kept: %q, tracestate %q", tp, h.Get("Tracestate"))
		}
		c.CloseIdleConnections()
		stop()
	}
}
