package api_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lbkit/lbkit/lb/config/api"
)

// FuzzWriteBodies sends arbitrary bodies to the writes: each is accepted or
// refused with a 4xx naming what is wrong, never a 5xx, and a refused one
// changes nothing.
func FuzzWriteBodies(f *testing.F) {
	for _, s := range []string{
		`{"name": "x", "forward_protocol": "http", "forward_port": 80, "server_ip": ["10.0.0.1"]}`,
		`{"name": "x", "forward_port": 80, "health_check": {"transient_check_delay": "0.5s", "check_delay": 1000}}`,
		`{"name": "f", "inbound_port": 81, "backend_id": "b1", "timeout_client": 1}`,
		`{"name": "a", "index": 0, "action": {"type": "redirect", "redirect": {"code": 301}}}`,
		`{"acls": [{"name": "a", "match": {"ip_subnet": ["::/0"]}}]}`,
		`{"lbkit": {"servers": [{"ip": "10.0.0.1", "weight": 3}]}}`,
		`{"timeout_queue": "1.5s"}`, `[]`, `null`, `{"name": 1}`, `{`,
	} {
		f.Add(0, []byte(s))
	}
	paths := []struct{ method, path string }{
		{"POST", lbPath + "/backends"}, {"PUT", z + "/backends/b1"}, {"PUT", z + "/backends/b1/healthcheck"},
		{"POST", lbPath + "/frontends"}, {"PUT", z + "/frontends/f1"}, {"POST", z + "/frontends/f1/acls"},
		{"PUT", z + "/frontends/f1/acls"}, {"POST", z + "/routes"}, {"POST", lbPath + "/certificates"},
		{"PUT", z + "/backends/b1/servers"}, {"PUT", lbPath}, {"POST", z + "/subscribers"},
	}
	e := start(f, base)
	h := &api.Handler{Manager: e.m, Token: token}
	f.Fuzz(func(t *testing.T, which int, body []byte) {
		p := paths[uint(which)%uint(len(paths))]
		before := e.running()
		req := httptest.NewRequest(p.method, p.path, bytes.NewReader(body))
		req.Header.Set("X-Auth-Token", token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code >= 500:
			t.Fatalf("%s %s %q: %d %s", p.method, p.path, body, rec.Code, rec.Body)
		case rec.Code >= 400 && e.running() != before:
			t.Fatalf("%s %s %q: refused with %d but changed the document", p.method, p.path, body, rec.Code)
		case rec.Code < 300 && rec.Code != http.StatusOK:
			t.Fatalf("%s %s: %d", p.method, p.path, rec.Code)
		}
	})
}
