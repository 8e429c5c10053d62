package config_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/lbkit/lbkit/lb/config"
)

// TestValidateRunsTheCompilers: documents the runtime's compilers refuse
// fail validation, at the field concerned, instead of failing in Apply.
func TestValidateRunsTheCompilers(t *testing.T) {
	doc := func(extra string) string {
		return fmt.Sprintf(`{"lb": {"id": "lb"},
		  "backends": [{"id": "h", "forward_protocol": "http", "forward_port": 80, "pool": ["10.0.0.1"]},
		    {"id": "t", "forward_protocol": "tcp", "forward_port": 443, "pool": ["10.0.0.2"]}],
		  "frontends": [{"id": "fh", "inbound_port": 80, "backend_id": "h"},
		    {"id": "ft", "inbound_port": 443, "backend_id": "t"}]%s}`, extra)
	}
	for _, c := range []struct {
		name, extra string
		field       string // "" when valid
	}{
		{"known placeholder", `, "acls": [{"id": "a", "frontend_id": "fh", "index": 1, "match": {"http_filter": "path_begin", "http_filter_value": ["/old"]},
		    "action": {"type": "redirect", "redirect": {"type": "location", "target": "https://{{host}}/new"}}}]`, ""},
		{"unknown placeholder", `, "acls": [{"id": "a", "frontend_id": "fh", "index": 1, "match": {"http_filter": "path_begin", "http_filter_value": ["/old"]},
		    "action": {"type": "redirect", "redirect": {"type": "location", "target": "https://{{nope}}/new"}}}]`, "action.redirect.target"},
		{"host route", `, "routes": [{"id": "r", "frontend_id": "fh", "backend_id": "h", "match": {"host_header": "x.test", "match_subdomains": true}}]`, ""},
		{"wildcard host route with subdomains", `, "routes": [{"id": "r", "frontend_id": "fh", "backend_id": "h", "match": {"host_header": "*.x.test", "match_subdomains": true}}]`, "match.host_header"},
		{"SNI route", `, "routes": [{"id": "r", "frontend_id": "ft", "backend_id": "t", "match": {"sni": "x.test"}}]`, ""},
		{"IPv6 SNI route", `, "routes": [{"id": "r", "frontend_id": "ft", "backend_id": "t", "match": {"sni": "2001:db8::1"}}]`, "match.sni"},
		{"SNI twice", `, "routes": [{"id": "r1", "frontend_id": "ft", "backend_id": "t", "match": {"sni": "x.test"}},
		    {"id": "r2", "frontend_id": "ft", "backend_id": "t", "match": {"sni": "X.test"}}]`, "match.sni"},
		{"wildcard Let's Encrypt name", `, "certificates": [{"id": "c", "letsencrypt": {"common_name": "*.x.test"}}]`, "letsencrypt.common_name"},
		{"wildcard Let's Encrypt SAN", `, "certificates": [{"id": "c", "letsencrypt": {"common_name": "x.test", "subject_alternative_name": ["*.x.test"]}}]`, "letsencrypt.subject_alternative_name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Load([]byte(doc(c.extra)))
			if c.field == "" {
				if err != nil {
					t.Fatalf("valid document refused: %v", err)
				}
				return
			}
			var ve *config.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a validation error at %s", err, c.field)
			}
			for _, f := range ve.Fields {
				if f.Field == c.field {
					return
				}
			}
			t.Fatalf("got %v, want an error at %s", err, c.field)
		})
	}
}
