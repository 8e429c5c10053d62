package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/config"
	"github.com/lbkit/lbkit/lb/config/api"
)

const z = "/lb/v1/zones/fr-par-1"

func TestAuthentication(t *testing.T) {
	e := start(t, seed)
	before, n := e.file(), e.app.count()
	for _, tc := range []struct {
		tok    string
		status int
		typ    string
	}{
		{"", http.StatusUnauthorized, "denied_authentication"},
		{"wrong", http.StatusForbidden, "permissions_denied"},
		{token + "x", http.StatusForbidden, "permissions_denied"},
	} {
		for _, method := range []string{"GET", "PUT"} {
			var body any
			if method == "PUT" {
				body = obj{"name": "changed"}
			}
			st, data := e.callAs(tc.tok, method, lbPath, body, nil)
			var got struct {
				Type, Method, Reason string
				Details              []struct{ Resource, Action string }
			}
			json.Unmarshal(data, &got)
			if st != tc.status || got.Type != tc.typ {
				t.Errorf("token %q %s: %d %s, want %d %s", tc.tok, method, st, data, tc.status, tc.typ)
			}
			// The SDK renders reason invalid_argument as "invalid API key
			// format or empty value"; permissions_denied names the action.
			wantAction := map[string]string{"GET": "read", "PUT": "write"}[method]
			switch {
			case st == http.StatusUnauthorized && (got.Method != "api_key" || got.Reason != "invalid_argument"):
				t.Errorf("token %q %s: %s, want method api_key, reason invalid_argument", tc.tok, method, data)
			case st == http.StatusForbidden && (len(got.Details) != 1 || got.Details[0].Resource != "lb" || got.Details[0].Action != wantAction):
				t.Errorf("token %q %s: %s, want details [{lb %s}]", tc.tok, method, data, wantAction)
			}
		}
	}
	if !bytes.Equal(before, e.file()) || e.app.count() != n {
		t.Fatal("a refused request changed something")
	}
	e.must(200, "GET", lbPath, nil, nil)
}

func TestNoTokenConfiguredRefusesAll(t *testing.T) {
	e := start(t, seed)
	h := &api.Handler{Manager: e.m}
	for _, tok := range []string{"", "anything"} {
		req := httptest.NewRequest("GET", lbPath, nil)
		if tok != "" {
			req.Header.Set("X-Auth-Token", tok)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		want := http.StatusForbidden
		if tok == "" {
			want = http.StatusUnauthorized
		}
		if rec.Code != want || !strings.Contains(rec.Body.String(), `"type"`) {
			t.Fatalf("token %q: %d %s, want %d", tok, rec.Code, rec.Body, want)
		}
	}
}

// TestTutorial builds the seed's tutorial through raw HTTP and checks each
// answer's shape: embedded objects, lists, defaults, secrets kept out.
func TestTutorial(t *testing.T) {
	const ticketSecret = "ticket-secret-0123456789abcdef"
	e := start(t, `{"lb": {"id": "4c3f3f5e-5d0b-4a3e-9d43-3b0f6c0f0001", "name": "demo"},
		"secrets": {"session_ticket_secret": "`+ticketSecret+`"}}`)
	ca := testutil.NewCA(t)

	var lb obj
	e.must(200, "GET", lbPath, nil, &lb)
	if lb["zone"] != "fr-par-1" || len(lb["ip"].([]any)) != 2 || lb["status"] != "ready" {
		t.Fatalf("lb: %v", lb)
	}
	var lbs obj
	e.must(200, "GET", z+"/lbs", nil, &lbs)
	if lbs["total_count"] != 1.0 || str(lbs["lbs"].([]any)[0], "id") != str(lb, "id") {
		t.Fatalf("lbs: %v", lbs)
	}
	var ips obj
	e.must(200, "GET", z+"/ips", nil, &ips)
	ip0 := ips["ips"].([]any)[0]
	var ip obj
	e.must(200, "GET", z+"/ips/"+str(ip0, "id"), nil, &ip)
	if ip["ip_address"] != "127.0.0.1" || str(ip, "lb_id") != str(lb, "id") {
		t.Fatalf("ip: %v", ip)
	}
	e.must(404, "GET", z+"/ips/00000000-0000-0000-0000-000000000000", nil, nil)

	var be obj
	e.must(200, "POST", lbPath+"/backends", obj{
		"name": "web", "forward_protocol": "http", "forward_port": 8080,
		"forward_port_algorithm": "roundrobin", "sticky_sessions": "none",
		"server_ip":    []string{"10.0.0.1", "10.0.0.2"},
		"health_check": obj{"port": 8080, "check_max_retries": 3, "tcp_config": obj{}, "check_delay": 2000},
	}, &be)
	bid := str(be, "id")
	if len(bid) != 36 || str(be, "lb", "id") != str(lb, "id") || be["timeout_connect"] != 5000.0 ||
		be["timeout_queue"] != "5.000000000s" || be["created_at"] == nil {
		t.Fatalf("backend: %v", be)
	}
	if _, err := time.Parse(time.RFC3339, be["created_at"].(string)); err != nil {
		t.Fatal(err)
	}
	if pool := be["pool"].([]any); len(pool) != 2 {
		t.Fatalf("pool %v", pool)
	}

	var crt obj
	created := e.must(200, "POST", lbPath+"/certificates", obj{
		"name": "site", "custom_certificate": obj{"certificate_chain": certPEM(t, ca, "site.example")},
	}, &crt)
	if bytes.Contains(created, []byte("PRIVATE KEY")) || bytes.Contains(created, []byte("BEGIN CERTIFICATE")) {
		t.Fatalf("the created certificate's answer returns its chain or key: %s", created)
	}
	cid := str(crt, "id")
	if crt["common_name"] != "site.example" || crt["status"] != "ready" || crt["type"] != "custom" || len(str(crt, "fingerprint")) != 40 {
		t.Fatalf("certificate: %v", crt)
	}
	if bytes.Contains(e.must(200, "GET", z+"/certificates/"+cid, nil, nil), []byte("PRIVATE KEY")) ||
		bytes.Contains(e.must(200, "GET", lbPath+"/certificates", nil, nil), []byte("PRIVATE KEY")) {
		t.Fatal("a certificate's private key is returned")
	}
	if !bytes.Contains(e.file(), []byte("PRIVATE KEY")) {
		t.Fatal("the private key is not stored")
	}

	var fe obj
	e.must(200, "POST", lbPath+"/frontends", obj{
		"name": "https", "inbound_port": 8443, "backend_id": bid, "certificate_ids": []string{cid},
	}, &fe)
	fid := str(fe, "id")
	if str(fe, "backend", "id") != bid || str(fe, "lb", "id") != str(lb, "id") || fe["timeout_client"] != 300000.0 {
		t.Fatalf("frontend: %v", fe)
	}

	var acl obj
	e.must(200, "POST", z+"/frontends/"+fid+"/acls", obj{
		"name": "office", "index": 0, "action": obj{"type": "deny"},
		"match": obj{"ip_subnet": []string{"192.0.2.0/24"}},
	}, &acl)
	if str(acl, "frontend", "id") != fid || str(acl, "frontend", "backend", "id") != bid {
		t.Fatalf("acl: %v", acl)
	}

	var be2 obj
	e.must(200, "POST", lbPath+"/backends", obj{"name": "api", "forward_protocol": "http", "forward_port": 9090, "server_ip": []string{"10.0.1.1"}}, &be2)
	var rt obj
	e.must(200, "POST", z+"/routes", obj{"frontend_id": fid, "backend_id": str(be2, "id"), "match": obj{"path_begin": "/api"}}, &rt)
	var routes obj
	e.must(200, "GET", z+"/routes?frontend_id="+fid, nil, &routes)
	if routes["total_count"] != 1.0 || str(routes["routes"].([]any)[0], "id") != str(rt, "id") {
		t.Fatalf("routes: %v", routes)
	}

	var st obj
	e.must(200, "GET", lbPath+"/backend-stats?backend_id="+bid, nil, &st)
	if st["total_count"] != 2.0 || str(st["backend_servers_stats"].([]any)[0], "server_state") != "running" {
		t.Fatalf("stats: %v", st)
	}
	e.must(200, "GET", lbPath+"/stats", nil, &st)
	if len(st["backend_servers_stats"].([]any)) != 3 {
		t.Fatalf("lb stats: %v", st)
	}

	// The file holds what the API answered.
	d, _ := e.m.Current()
	if len(d.Backends) != 2 || len(d.Frontends) != 1 || len(d.ACLs) != 1 || len(d.Routes) != 1 || len(d.Certificates) != 1 {
		t.Fatalf("running document: %+v", d)
	}
	if !bytes.Contains(e.file(), []byte(fid)) {
		t.Fatal("the frontend is not stored")
	}

	// No answer of the whole run carries a secret: not their names, not
	// their values (the cookie secret was drawn by the first write), not
	// a private key.
	if d.Secrets.StickyCookieSecret == "" || d.Secrets.SessionTicketSecret != ticketSecret {
		t.Fatalf("secrets of the running document: %+v", d.Secrets)
	}
	if !bytes.Contains(e.file(), []byte(d.Secrets.StickyCookieSecret)) || !bytes.Contains(e.file(), []byte(ticketSecret)) {
		t.Fatal("the secrets are not stored")
	}
	bodies := e.bodies()
	if len(bodies) < 16 {
		t.Fatalf("%d answers recorded, want the whole run", len(bodies))
	}
	for i, body := range bodies {
		for _, secret := range []string{"sticky_cookie_secret", "session_ticket_secret", "secrets",
			d.Secrets.StickyCookieSecret, ticketSecret, "PRIVATE KEY"} {
			if bytes.Contains(body, []byte(secret)) {
				t.Fatalf("answer %d carries %q: %s", i, secret, body)
			}
		}
	}
}

func TestUpdatesAndDeletes(t *testing.T) {
	e := start(t, seed)
	var be obj
	e.must(200, "POST", lbPath+"/backends", obj{"name": "web", "forward_protocol": "http", "forward_port": 8080,
		"server_ip": []string{"10.0.0.1"}, "lbkit": obj{"servers": []obj{{"ip": "10.0.0.1", "weight": 5}}}}, &be)
	bid := str(be, "id")

	// PUT without lbkit, or with "lbkit": null, keeps the stored one; a
	// pointer left out takes its default.
	storedWeight := func() int32 {
		t.Helper()
		d, _ := e.m.Current()
		b := d.Backends[0]
		if b.Lbkit == nil || len(b.Lbkit.Servers) != 1 || b.Lbkit.Servers[0].Weight == nil {
			t.Fatalf("backend lbkit after a PUT: %+v", b.Lbkit)
		}
		return *b.Lbkit.Servers[0].Weight
	}
	e.must(200, "PUT", z+"/backends/"+bid, obj{"name": "web2", "forward_protocol": "http", "forward_port": 8081, "max_retries": 7}, &be)
	e.must(200, "PUT", z+"/backends/"+bid, obj{"name": "web2", "forward_protocol": "http", "forward_port": 8081}, &be)
	if be["name"] != "web2" || be["max_retries"] != 3.0 || be["forward_port"] != 8081.0 {
		t.Fatalf("updated backend: %v", be)
	}
	if w := storedWeight(); w != 5 {
		t.Fatalf("weight after a PUT without lbkit: %d, want 5", w)
	}
	e.must(200, "PUT", z+"/backends/"+bid, obj{"name": "web2", "forward_protocol": "http", "forward_port": 8081, "lbkit": nil}, &be)
	if w := storedWeight(); w != 5 {
		t.Fatalf("weight after a PUT with lbkit null: %d, want 5", w)
	}
	if !bytes.Contains(e.file(), []byte(`"weight": 5`)) {
		t.Fatal("the kept weight is not stored")
	}

	// lbkit.servers naming a server outside the pool is refused, by POST
	// and by PUT, and changes nothing.
	stray := obj{"servers": []obj{{"ip": "10.0.0.9", "weight": 2}}}
	for _, tc := range []struct {
		method, path string
		body         obj
	}{
		{"POST", lbPath + "/backends", obj{"name": "web3", "forward_protocol": "http", "forward_port": 8082,
			"server_ip": []string{"10.0.0.1"}, "lbkit": stray}},
		{"PUT", z + "/backends/" + bid, obj{"name": "web2", "forward_protocol": "http", "forward_port": 8081, "lbkit": stray}},
	} {
		file := e.file()
		st, data := e.call(tc.method, tc.path, tc.body, nil)
		if st != http.StatusBadRequest || !bytes.Contains(data, []byte("is not a server of the pool")) || !bytes.Contains(data, []byte("10.0.0.9")) {
			t.Fatalf("%s with a stray lbkit server: %d %s, want 400 naming it", tc.method, st, data)
		}
		if !bytes.Equal(file, e.file()) {
			t.Fatalf("%s with a stray lbkit server changed the file", tc.method)
		}
	}
	if w := storedWeight(); w != 5 {
		t.Fatalf("weight after refused writes: %d, want 5", w)
	}

	// Servers: add, remove, set; lbkit settings follow the pool.
	e.must(200, "POST", z+"/backends/"+bid+"/servers", obj{"server_ip": []string{"10.0.0.2", "10.0.0.1"}}, &be)
	if fmt.Sprint(be["pool"]) != "[10.0.0.1 10.0.0.2]" {
		t.Fatalf("add: %v", be["pool"])
	}
	e.must(200, "DELETE", z+"/backends/"+bid+"/servers", obj{"server_ip": []string{"10.0.0.1"}}, &be)
	if fmt.Sprint(be["pool"]) != "[10.0.0.2]" || strings.Contains(fmt.Sprint(be["lbkit"]), "10.0.0.1") {
		t.Fatalf("remove: %v %v", be["pool"], be["lbkit"])
	}
	e.must(200, "PUT", z+"/backends/"+bid+"/servers", obj{"server_ip": []string{"10.0.0.3", "10.0.0.4"}}, &be)
	if fmt.Sprint(be["pool"]) != "[10.0.0.3 10.0.0.4]" {
		t.Fatalf("set: %v", be["pool"])
	}

	// Runtime server control, persisted in lbkit.servers.
	e.must(200, "PUT", z+"/backends/"+bid+"/servers/10.0.0.3/state", obj{"admin_state": "drain"}, &be)
	e.must(200, "PUT", z+"/backends/"+bid+"/servers/10.0.0.3/weight", obj{"weight": 0}, &be)
	d, _ := e.m.Current()
	srv := d.Backends[0].Lbkit.Servers
	if len(srv) != 1 || srv[0].AdminState != "drain" || *srv[0].Weight != 0 {
		t.Fatalf("server settings: %+v", srv)
	}
	if !bytes.Contains(e.file(), []byte(`"admin_state": "drain"`)) {
		t.Fatal("server state not stored")
	}
	e.must(404, "PUT", z+"/backends/"+bid+"/servers/10.9.9.9/state", obj{"admin_state": "maint"}, nil)
	e.must(400, "PUT", z+"/backends/"+bid+"/servers/10.0.0.3/state", obj{"admin_state": "sleepy"}, nil)
	e.must(400, "PUT", z+"/backends/"+bid+"/servers/10.0.0.3/weight", obj{"weight": 300}, nil)

	// Health check PUT answers the health check with defaults.
	var hc obj
	e.must(200, "PUT", z+"/backends/"+bid+"/healthcheck", obj{"port": 0, "check_max_retries": 2,
		"http_config": obj{"uri": "/health", "method": "GET"}, "transient_check_delay": "0.2s"}, &hc)
	if hc["port"] != 0.0 || hc["check_delay"] != 3000.0 || hc["transient_check_delay"] != "0.200000000s" {
		t.Fatalf("health check: %v", hc)
	}

	// A frontend in use blocks deleting its backend; deleting the
	// frontend takes its ACLs and routes with it.
	var fe obj
	e.must(200, "POST", lbPath+"/frontends", obj{"name": "web", "inbound_port": 8080, "backend_id": bid,
		"lbkit": obj{"max_connections": 100}}, &fe)
	fid := str(fe, "id")
	// A frontend PUT without lbkit, or with "lbkit": null, keeps it too.
	for _, body := range []obj{
		{"name": "web", "inbound_port": 8080, "backend_id": bid},
		{"name": "web", "inbound_port": 8080, "backend_id": bid, "lbkit": nil},
	} {
		e.must(200, "PUT", z+"/frontends/"+fid, body, &fe)
		d, _ := e.m.Current()
		if l := d.Frontends[0].Lbkit; l == nil || l.MaxConnections != 100 {
			t.Fatalf("frontend lbkit after PUT %v: %+v, want max_connections 100 kept", body, l)
		}
	}
	var acl obj
	e.must(200, "POST", z+"/frontends/"+fid+"/acls", obj{"name": "a", "index": 1, "action": obj{"type": "allow"}}, &acl)
	var set obj
	e.must(200, "PUT", z+"/frontends/"+fid+"/acls", obj{"acls": []obj{
		{"name": "x", "index": 0, "action": obj{"type": "deny"}, "match": obj{"ip_subnet": []string{"10.0.0.0/8"}}},
		{"name": "y", "index": 1, "action": obj{"type": "redirect", "redirect": obj{"type": "scheme", "target": "https"}}},
	}}, &set)
	if set["total_count"] != 2.0 {
		t.Fatalf("set acls: %v", set)
	}
	e.must(404, "GET", z+"/acls/"+str(acl, "id"), nil, nil)
	var acls obj
	e.must(200, "GET", z+"/frontends/"+fid+"/acls?order_by=name_desc&page_size=1", nil, &acls)
	if acls["total_count"] != 2.0 || len(acls["acls"].([]any)) != 1 || str(acls["acls"].([]any)[0], "name") != "y" {
		t.Fatalf("list acls: %v", acls)
	}
	e.must(200, "GET", z+"/frontends/"+fid+"/acls?order_by=name_desc&page=2&page_size=1", nil, &acls)
	if str(acls["acls"].([]any)[0], "name") != "x" {
		t.Fatalf("page 2: %v", acls)
	}
	y := acls["acls"].([]any)[0].(obj)
	e.must(200, "PUT", z+"/acls/"+str(y, "id"), obj{"name": "x2", "index": 5, "action": obj{"type": "allow"}}, &acl)
	if acl["name"] != "x2" || acl["index"] != 5.0 {
		t.Fatalf("update acl: %v", acl)
	}

	var st obj
	st409, data := e.call("DELETE", z+"/backends/"+bid, nil, &st)
	if st409 != http.StatusConflict || !bytes.Contains(data, []byte("resource_still_in_use")) {
		t.Fatalf("delete used backend: %d %s", st409, data)
	}
	e.must(204, "DELETE", z+"/frontends/"+fid, nil, nil)
	if d, _ := e.m.Current(); len(d.ACLs) != 0 {
		t.Fatal("ACLs of a deleted frontend remain")
	}
	e.must(204, "DELETE", z+"/backends/"+bid, nil, nil)
	e.must(404, "GET", z+"/backends/"+bid, nil, nil)
	e.must(404, "DELETE", z+"/backends/"+bid, nil, nil)

	// LB update, create/delete refused.
	var lb obj
	e.must(200, "PUT", lbPath, obj{"name": "renamed", "description": "d", "tags": []string{"a"}, "ssl_compatibility_level": "ssl_compatibility_level_modern"}, &lb)
	if lb["name"] != "renamed" || lb["ssl_compatibility_level"] != "ssl_compatibility_level_modern" {
		t.Fatalf("lb: %v", lb)
	}
	e.must(501, "POST", z+"/lbs", obj{"name": "x"}, nil)
	e.must(501, "DELETE", lbPath, nil, nil)
	e.must(404, "GET", z+"/lbs/11111111-2222-3333-4444-555555555555", nil, nil)
	for _, tc := range []struct{ method, path, allow string }{
		{"PATCH", z + "/backends/x", "GET, HEAD, PUT, DELETE"},
		{"POST", z + "/backends/x/healthcheck", "PUT"},
		{"DELETE", "/lb/v1/regions/fr-par/lbs", "GET, HEAD, POST"},
	} {
		req, _ := http.NewRequest(tc.method, e.url+tc.path, strings.NewReader("{}"))
		req.Header.Set("X-Auth-Token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || !bytes.Contains(data, []byte(`"method_not_allowed"`)) || resp.Header.Get("Allow") != tc.allow {
			t.Fatalf("%s %s: %d Allow %q %s, want 405 with Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), data, tc.allow)
		}
	}
	if st, data := e.call("GET", z+"/nothing/here", nil, nil); st != http.StatusNotFound || !bytes.Contains(data, []byte(`"not_found"`)) {
		t.Fatalf("unknown path: %d %s", st, data)
	}

	// Regions are served too and echoed.
	var rlb obj
	e.must(200, "GET", "/lb/v1/regions/fr-par/lbs/"+str(lb, "id"), nil, &rlb)
	if rlb["region"] != "fr-par" {
		t.Fatalf("regional lb: %v", rlb)
	}
}

func TestSubscribers(t *testing.T) {
	e := start(t, seed)
	var s obj
	e.must(200, "POST", z+"/subscribers", obj{"name": "ops", "webhook_config": obj{"uri": "http://127.0.0.1:1/hook"}, "project_id": "p"}, &s)
	sid := str(s, "id")
	var mail obj
	e.must(200, "POST", z+"/subscribers", obj{"name": "mail", "email_config": obj{"email": "ops@example.com"}}, &mail)
	var l obj
	e.must(200, "GET", z+"/subscribers?order_by=name_asc", nil, &l)
	if l["total_count"] != 2.0 || str(l["subscribers"].([]any)[0], "name") != "mail" {
		t.Fatalf("subscribers: %v", l)
	}
	var lb obj
	e.must(200, "POST", "/lb/v1/zones/fr-par-1/lb/"+strings.TrimPrefix(lbPath, z+"/lbs/")+"/subscribe", obj{"subscriber_id": sid}, &lb)
	if str(lb, "subscriber", "id") != sid {
		t.Fatalf("subscribed lb: %v", lb)
	}
	e.must(409, "DELETE", z+"/lb/subscription/"+sid, nil, nil)
	e.must(200, "PUT", z+"/subscribers/"+sid, obj{"name": "ops2", "webhook_config": obj{"uri": "https://hooks.example/x"}}, &s)
	if s["name"] != "ops2" {
		t.Fatalf("updated subscriber: %v", s)
	}
	e.must(200, "DELETE", "/lb/v1/zones/fr-par-1/lb/"+strings.TrimPrefix(lbPath, z+"/lbs/")+"/unsubscribe", nil, &lb)
	if lb["subscriber"] != nil {
		t.Fatalf("unsubscribed lb: %v", lb)
	}
	e.must(200, "POST", lbPath+"/subscribe", obj{"subscriber_id": sid}, &lb)
	e.must(200, "DELETE", lbPath+"/unsubscribe", nil, &lb)
	if lb["subscriber"] != nil {
		t.Fatalf("unsubscribed through lbs/: %v", lb)
	}
	e.must(204, "DELETE", z+"/lb/subscription/"+sid, nil, nil)
	e.must(404, "GET", z+"/subscribers/"+sid, nil, nil)
	e.must(400, "POST", z+"/subscribers", obj{"name": "both", "email_config": obj{"email": "a@b"}, "webhook_config": obj{"uri": "http://x/"}}, nil)
}

// liveCerts reports every certificate ready, as a runtime that obtained it.
type liveCerts struct{ m *config.Manager }

func (l liveCerts) Certificate(id string) (config.Certificate, bool) {
	d, _ := l.m.Current()
	for _, c := range d.Certificates {
		if c.ID == id {
			c.Status, c.Fingerprint = config.CertificateReady, "00ff"
			return c, true
		}
	}
	return config.Certificate{}, false
}

func TestLetsencryptStatusFromTheRuntime(t *testing.T) {
	e := start(t, seed)
	var c obj
	e.must(200, "POST", lbPath+"/certificates", obj{"name": "le", "letsencrypt": obj{"common_name": "a.example", "subject_alternative_name": []string{"b.example"}}}, &c)
	if c["status"] != "pending" || c["type"] != "letsencrypt" || c["common_name"] != "a.example" {
		t.Fatalf("created: %v", c)
	}
	h := &api.Handler{Manager: e.m, Token: token, Certificates: liveCerts{e.m}}
	req := httptest.NewRequest("GET", z+"/certificates/"+str(c, "id"), nil)
	req.Header.Set("X-Auth-Token", token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil || c["status"] != "ready" || c["fingerprint"] != "00ff" {
		t.Fatalf("live: %d %s", rec.Code, rec.Body)
	}
}

func TestManagerNotStarted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lb.json")
	h := &api.Handler{Manager: &config.Manager{Store: &config.FileStore{Path: path}}, Token: token}
	for _, method := range []string{"GET", "PUT"} {
		req := httptest.NewRequest(method, lbPath, strings.NewReader(`{"name": "x"}`))
		req.Header.Set("X-Auth-Token", token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s before Start: %d %s", method, rec.Code, rec.Body)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("a write before Start created the file")
	}
}
