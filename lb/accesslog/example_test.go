package accesslog_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/accesslog"
)

func ExampleAppendHAProxy() {
	r := lb.AccessRecord{
		Time:   time.Date(2026, 12, 2, 9, 53, 16, 0, time.UTC),
		Client: netip.MustParseAddrPort("192.0.2.7:41234"), Frontend: "www", Backend: "app", Server: "app1",
		HTTP: true, Tw: 0, Tc: time.Millisecond, Tr: 12 * time.Millisecond, Ta: 14 * time.Millisecond,
		Status: 200, BytesOut: 5120, Termination: "--", ServerConns: 3,
		Method: "GET", URI: "/index.html", Proto: "HTTP/1.1",
	}
	fmt.Println(string(accesslog.AppendHAProxy(nil, &r)))
	// Output:
	// 192.0.2.7:41234 [02/Dec/2026:09:53:16.000] www app/app1 0/0/1/12/14 200 5120 - - ---- 0/0/0/3/0 0/0 "GET /index.html HTTP/1.1"
}
