package proxyproto_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lbkit/lbkit/internal/testutil"
	"github.com/lbkit/lbkit/lb"
	"github.com/lbkit/lbkit/lb/proxyproto"
)

// freePort returns a port free on addr ("127.0.0.1" or "::1").
func freePort(t *testing.T, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// receiver is an external server that accepts PROXY headers, listening on
// 127.0.0.1 and [::1], and answers every HTTP request with the client
// address it learnt from the header.
type receiver struct {
	v4, v6 string // listen addresses
}

// startProcess runs the command until the test ends, and waits until it
// accepts connections on addrs.
func startProcess(t *testing.T, dir string, addrs []string, name string, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				t.Fatalf("%s exited: %s", name, out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not listen on %s: %s", name, a, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func startHAProxy(t *testing.T) receiver {
	bin := testutil.LookBinary(t, "haproxy", "haproxy")
	dir := t.TempDir()
	r := receiver{
		v4: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1"))),
		v6: net.JoinHostPort("::1", strconv.Itoa(freePort(t, "::1"))),
	}
	conf := fmt.Sprintf(`global
    maxconn 64
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend fe
    bind %s accept-proxy
    bind %s accept-proxy
    http-request return status 200 content-type text/plain lf-string "%%[src]"
`, r.v4, r.v6)
	cfg := filepath.Join(dir, "haproxy.cfg")
	must(t, os.WriteFile(cfg, []byte(conf), 0o600))
	startProcess(t, dir, []string{r.v4, r.v6}, bin, "-db", "-f", cfg)
	return r
}

func startNginx(t *testing.T) receiver {
	bin := testutil.LookBinary(t, "nginx", "nginx")
	dir := t.TempDir()
	r := receiver{
		v4: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t, "127.0.0.1"))),
		v6: net.JoinHostPort("::1", strconv.Itoa(freePort(t, "::1"))),
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server {
        listen %[2]s proxy_protocol;
        listen [%[3]s]:%[4]s proxy_protocol;
        location / { default_type text/plain; return 200 "$proxy_protocol_addr"; }
    }
}
`, dir, r.v4, "::1", r.v6[len("[::1]:"):])
	cfg := filepath.Join(dir, "nginx.conf")
	must(t, os.WriteFile(cfg, []byte(conf), 0o600))
	startProcess(t, dir, []string{r.v4, r.v6}, bin, "-p", dir, "-c", cfg, "-e", filepath.Join(dir, "error.log"))
	return r
}

// clientGet sends one request to url from the local address from and
// returns the body.
func clientGet(t *testing.T, from, url string) string {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	return string(body)
}

// TestInterop sends PROXY v1 and v2 headers from lbkit to
// HAProxy (accept-proxy) and nginx (listen ... proxy_protocol), at L4 and
// at L7, for IPv4 and IPv6 clients, and checks that the address each
// reports is the client's, not lbkit's: an IPv4 client (127.0.0.2) is
// relayed to the receiver's IPv6 listener, an IPv6 client (::1) to its IPv4
// listener, so the socket address never matches the client's.
func TestInterop(t *testing.T) {
	receivers := []struct {
		name  string
		start func(*testing.T) receiver
	}{{"haproxy", startHAProxy}, {"nginx", startNginx}}
	headers := []struct {
		name string
		hf   lb.HeaderFunc
	}{{"v1", proxyproto.V1()}, {"v2", proxyproto.V2(proxyproto.V2Options{SSL: true, Authority: true})}}
	clients := []struct {
		name, from, listen string
		to                 func(receiver) string
	}{
		{"ipv4", "127.0.0.2", "127.0.0.1:0", func(r receiver) string { return r.v6 }},
		{"ipv6", "::1", "[::1]:0", func(r receiver) string { return r.v4 }},
	}
	for _, rc := range receivers {
		t.Run(rc.name, func(t *testing.T) {
			r := rc.start(t)
			for _, h := range headers {
				t.Run(h.name+"/local", func(t *testing.T) {
					// lbkit's own connections (health checks, client-side
					// balancing) send LOCAL / UNKNOWN: the receiver uses
					// the socket's address.
					pool := &lb.Pool{Name: "recv", ProxyHeader: h.hf}
					must(t, pool.Update([]lb.Server{{Addr: r.v4}}))
					tr := &http.Transport{DialContext: pool.DialContext, DisableKeepAlives: true}
					defer tr.CloseIdleConnections()
					resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://recv/")
					must(t, err)
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					must(t, err)
					// nginx reports no $proxy_protocol_addr for LOCAL.
					if want := map[string]string{"haproxy": "127.0.0.1", "nginx": ""}[rc.name]; resp.StatusCode != 200 || string(body) != want {
						t.Fatalf("%s answered %d %q, want %q", rc.name, resp.StatusCode, body, want)
					}
				})
				for _, c := range clients {
					for _, layer := range []string{"L4", "L7"} {
						t.Run(h.name+"/"+c.name+"/"+layer, func(t *testing.T) {
							pool := &lb.Pool{Name: "recv", ProxyHeader: h.hf}
							must(t, pool.Update([]lb.Server{{Addr: c.to(r)}}))
							ln, err := net.Listen("tcp", c.listen)
							must(t, err)
							var fe lb.Frontend
							var also []lb.Shutdowner
							if layer == "L4" {
								fe = &lb.TCPFrontend{Name: "fe", Backend: pool}
							} else {
								proxy := &lb.ReverseProxy{Pool: pool}
								fe = &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second,
									ConnContext: proxy.ConnContext, ConnState: proxy.ConnState}
								also = append(also, proxy)
							}
							ctx, cancel := context.WithCancel(context.Background())
							done := make(chan error, 1)
							go func() { done <- lb.Serve(ctx, fe, ln, time.Second, also...) }()
							defer func() { cancel(); must(t, <-done) }()
							if got := clientGet(t, c.from, "http://"+ln.Addr().String()+"/"); got != c.from {
								t.Fatalf("%s reports client %q, want %q", rc.name, got, c.from)
							}
						})
					}
				}
			}
		})
	}
}
