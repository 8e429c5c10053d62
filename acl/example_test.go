package acl_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"

	"github.com/lbkit/lbkit/acl"
	"github.com/lbkit/lbkit/lb"
)

func Example() {
	rules, err := acl.Compile(
		acl.Rule{Name: "office only", IPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Invert: true, Action: acl.Deny},
		acl.Rule{Name: "no admin", PathPrefix: []string{"/admin"}, Action: acl.Deny},
		acl.Rule{Name: "https", Action: acl.RedirectTo, Redirect: acl.Redirect{Scheme: "https", Code: http.StatusPermanentRedirect}},
	)
	if err != nil {
		panic(err)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "app") })
	h := acl.FilterHTTP(rules, app)

	for _, c := range []struct{ client, target string }{
		{"192.0.2.1:5000", "/"},
		{"10.1.2.3:5000", "/admin/"},
		{"10.1.2.3:5000", "/docs?page=2"},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://www.example.com"+c.target, nil)
		r.RemoteAddr = c.client
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if loc := w.Header().Get("Location"); loc != "" {
			fmt.Println(c.client, c.target, "→", w.Code, loc)
		} else {
			fmt.Println(c.client, c.target, "→", w.Code)
		}
	}
	for _, st := range rules.Stats() {
		fmt.Printf("rule %d %q: %s ×%d\n", st.Index, st.Name, st.Action, st.Hits)
	}
	// Output:
	// 192.0.2.1:5000 / → 403
	// 10.1.2.3:5000 /admin/ → 403
	// 10.1.2.3:5000 /docs?page=2 → 308 https://www.example.com/docs?page=2
	// rule 0 "office only": deny ×1
	// rule 1 "no admin": deny ×1
	// rule 2 "https": redirect ×1
}

func ExampleRouter() {
	web, api := &lb.Pool{Name: "web"}, &lb.Pool{Name: "api"}
	router, err := acl.NewRouter(web,
		acl.Route{Host: []string{"api.example.com"}, Pool: api},
		acl.Route{Host: []string{"example.com", "*.example.com"}, PathPrefix: "/api/", Pool: api},
	)
	if err != nil {
		panic(err)
	}
	for _, u := range []string{"http://api.example.com/v1", "http://www.example.com/api/x", "http://www.example.com/", "http://other.example/"} {
		fmt.Println(u, "→", router.Route(httptest.NewRequest(http.MethodGet, u, nil)).Name)
	}
	// A ReverseProxy asks the Router on every request:
	_ = &lb.ReverseProxy{Pool: web, Route: router.Route}
	// Output:
	// http://api.example.com/v1 → api
	// http://www.example.com/api/x → api
	// http://www.example.com/ → web
	// http://other.example/ → web
}

func ExampleListener() {
	rules := acl.MustCompile(acl.Rule{
		Name:   "allow list",
		IPs:    []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Invert: true,
		Action: acl.Deny,
	})
	d, decided := rules.CheckAddr(netip.MustParseAddr("203.0.113.9"))
	fmt.Println(d.Action, d.Rule, decided)
	d, decided = rules.CheckAddr(netip.MustParseAddr("::1"))
	fmt.Println(d.Action, d.Rule, decided)
	// Wrap the frontend's listener: acl.Listener(rules, ln).
	// Output:
	// deny 0 true
	// allow -1 true
}

func ExampleFilter() {
	// L4: routes by SNI with lb.Mux, behind IP and SNI rules. A tlsmode
	// adapter in front (tlsmode.Passthrough(backend)) fills Info.SNI.
	web, db := &lb.Pool{Name: "web"}, &lb.Pool{Name: "db"}
	mux := &lb.Mux{Default: web}
	if err := mux.Handle("db.internal.example", db); err != nil {
		panic(err)
	}
	rules := acl.MustCompile(
		// The office may reach the database...
		acl.Rule{Name: "office to db", SNI: []string{"db.internal.example"},
			IPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Action: acl.Allow},
		// ...nobody else may.
		acl.Rule{Name: "db", SNI: []string{"db.internal.example"}, Action: acl.Deny},
	)
	backend := acl.Filter(rules, mux)
	_ = backend

	for _, c := range []struct{ client, sni string }{
		{"10.1.1.1:4000", "db.internal.example"},
		{"192.0.2.1:4000", "db.internal.example"},
		{"192.0.2.1:4000", "www.example"},
	} {
		info := lb.ConnInfo{Remote: netip.MustParseAddrPort(c.client), SNI: c.sni}
		d := rules.CheckConn(&info)
		to := "closed"
		if d.Action == acl.Allow {
			to = mux.Match(c.sni).(*lb.Pool).Name
		}
		fmt.Println(c.client, c.sni, "→", to)
	}
	// Output:
	// 10.1.1.1:4000 db.internal.example → db
	// 192.0.2.1:4000 db.internal.example → closed
	// 192.0.2.1:4000 www.example → web
}
