package http3_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb/http3"
)

// TestReadTimeoutBoundsBody checks that ReadTimeout ends the reading of a
// body that a client stops sending.
func TestReadTimeoutBoundsBody(t *testing.T) {
	ca := testutil.NewCA(t)
	readErr := make(chan error, 1)
	srv := &http3.Server{
		TLSConfig:   ca.ServerConfig(t, "localhost"),
		ReadTimeout: 200 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.ReadAll(r.Body)
			readErr <- err
			if err != nil {
				w.WriteHeader(http.StatusRequestTimeout)
			}
		}),
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(pc) }()
	defer func() {
		srv.Close()
		<-served
		pc.Close()
	}()

	c := newClient(t, ca.Pool(), nil)
	body, stall := io.Pipe()
	defer stall.Close()
	go func() { stall.Write([]byte("the start of a body that never ends")) }()
	req, err := http.NewRequest(http.MethodPost, "https://"+pc.LocalAddr().String()+"/", body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-readErr; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the handler's read ended with %v, want a deadline error", err)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status %s, want 408", resp.Status)
	}
}
