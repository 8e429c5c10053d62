package acl

import (
	"errors"
	"net/http"
	"testing"

	"github.com/lbkit/lbkit/lb"
)

func TestRouter(t *testing.T) {
	def, api, web, static, apiV2 := &lb.Pool{Name: "def"}, &lb.Pool{Name: "api"}, &lb.Pool{Name: "web"}, &lb.Pool{Name: "static"}, &lb.Pool{Name: "apiv2"}
	rt, err := NewRouter(def,
		Route{Host: []string{"api.example.com"}, PathPrefix: "/v2/", Pool: apiV2},
		Route{Host: []string{"api.example.com"}, Pool: api},
		Route{Host: []string{"example.com", "*.example.com"}, PathPrefix: "/static/", Pool: static},
		Route{Host: []string{"example.com", "*.example.com"}, Pool: web},
	)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host, target string
		want         *lb.Pool
	}{
		{"api.example.com", "/v1/x", api},
		{"API.example.com:443", "/v2/x", apiV2},
		{"api.example.com", "/v2", api}, // prefix is "/v2/"
		{"api.example.com", "/v1/../v2/x", apiV2},
		{"example.com", "/", web},
		{"www.example.com", "/static/a.css?v=1", static},
		{"deep.www.example.com", "/x", web},
		{"api.example.com", "/static/a.css", api}, // earlier route wins
		{"example.org", "/", def},
		{"notexample.com", "/", def},
		{"", "/", def},
	}
	for _, tt := range tests {
		r := req{host: tt.host, target: tt.target}.build()
		if tt.host == "" {
			r.Host = ""
		}
		if got := rt.Route(r); got != tt.want {
			t.Errorf("Route(%q %q) = %s, want %s", tt.host, tt.target, poolName(got), poolName(tt.want))
		}
	}
	r := req{host: "www.example.com", target: "/static/app.js"}.build()
	if n := testing.AllocsPerRun(1000, func() { rt.Route(r) }); n != 0 {
		t.Errorf("Route allocs = %v, want 0", n)
	}
}

func TestNewRouterErrors(t *testing.T) {
	p := &lb.Pool{}
	for name, r := range map[string]Route{
		"nil pool":      {Host: []string{"a.example"}},
		"bad host":      {Host: []string{"a b"}, Pool: p},
		"relative path": {PathPrefix: "api", Pool: p},
	} {
		if _, err := NewRouter(nil, r); !errors.Is(err, ErrInvalidRoute) {
			t.Errorf("%s: NewRouter = %v, want ErrInvalidRoute", name, err)
		}
	}
	rt, err := NewRouter(nil)
	if err != nil || rt.Route(&http.Request{}) != nil {
		t.Fatalf("empty router: %v", err)
	}
}

func poolName(p *lb.Pool) string {
	if p == nil {
		return "<nil>"
	}
	return p.Name
}

func BenchmarkRoute(b *testing.B) {
	rt, err := NewRouter(&lb.Pool{},
		Route{Host: []string{"api.example.com"}, Pool: &lb.Pool{}},
		Route{Host: []string{"example.com", "*.example.com"}, PathPrefix: "/static/", Pool: &lb.Pool{}},
		Route{Host: []string{"example.com", "*.example.com"}, Pool: &lb.Pool{}},
	)
	if err != nil {
		b.Fatal(err)
	}
	r := req{host: "www.example.com", target: "/page"}.build()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rt.Route(r)
		}
	})
}
