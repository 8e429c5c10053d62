package lb_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/lbkit/lbkit/lb"
)

// A handler in front of the proxy, here a rate limit, answers gRPC clients
// with a gRPC status, which they report as such, and others with a page.
func ExampleWriteGRPCError() {
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lb.IsGRPC(r) {
			lb.WriteGRPCError(w, r, lb.GRPCCodeForStatus(http.StatusTooManyRequests), "rate limit: retry in 1s")
			return
		}
		http.Error(w, "429 too many requests", http.StatusTooManyRequests)
	})
	for _, ct := range []string{"application/grpc+proto", "application/json"} {
		r := httptest.NewRequest("POST", "/shop.Cart/Add", nil)
		r.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		limited.ServeHTTP(w, r)
		fmt.Println(w.Code, w.Header().Get("Content-Type"), w.Header().Get("Grpc-Status"), w.Header().Get("Grpc-Message"))
	}
	// Output:
	// 200 application/grpc 14 rate limit: retry in 1s
	// 429 text/plain; charset=utf-8
}
