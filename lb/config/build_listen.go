package config

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// port is the listening sockets of one inbound_port, one per address of
// the load balancer. They outlive the servers that serve them: each socket
// has an accept loop that hands connections to the current handoff
// listener, and a frontend whose server must be rebuilt (see
// serverKey) gets a new handoff while the sockets stay, so that no
// connection is refused during the change.
type port struct {
	number int32
	lns    []net.Listener

	mu      sync.Mutex
	cur     *handoff
	changed chan struct{} // closed when cur changes
	closed  bool
	wg      sync.WaitGroup
}

// bindPort opens the sockets of number on every address in ips.
func (rt *Runtime) bindPort(ctx context.Context, number int32, ips []netip.Addr) (*port, error) {
	p := &port{number: number, changed: make(chan struct{})}
	for _, ip := range ips {
		addr := net.JoinHostPort(ip.String(), strconv.Itoa(int(number)))
		ln, err := rt.listen(ctx, "tcp", addr)
		if err != nil {
			for _, l := range p.lns {
				l.Close()
			}
			return nil, fmt.Errorf("frontend port %d: %w", number, err)
		}
		p.lns = append(p.lns, ln)
	}
	return p, nil
}

// start runs the accept loops.
func (p *port) start() {
	for _, ln := range p.lns {
		p.wg.Go(func() { p.acceptLoop(ln) })
	}
}

// use makes h receive the connections accepted from now on.
func (p *port) use(h *handoff) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur = h
	close(p.changed)
	p.changed = make(chan struct{})
}

// close closes the sockets and waits for the accept loops. Connections
// already handed off are their server's.
func (p *port) close() {
	p.mu.Lock()
	p.closed = true
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	for _, ln := range p.lns {
		ln.Close()
	}
	p.wg.Wait()
}

func (p *port) acceptLoop(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: the handoff's
				// server backs off the same way when it sees it.
				if !p.deliverErr(err) {
					return
				}
				continue
			}
			p.deliverErr(err)
			return
		}
		if !p.deliver(c) {
			c.Close()
			return
		}
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// deliver hands c to the current handoff, waiting while it does not take
// it (a server holding accepts back, at its connection limit), and moving
// to the next handoff when the current one changes. It reports false when
// the port is closed.
func (p *port) deliver(c net.Conn) bool {
	for {
		p.mu.Lock()
		h, changed, closed := p.cur, p.changed, p.closed
		p.mu.Unlock()
		if closed {
			return false
		}
		if h == nil {
			<-changed
			continue
		}
		select {
		case h.conns <- c:
			return true
		case <-h.done:
			<-changed // a replacement comes, or the port closes
		case <-changed:
		}
	}
}

// deliverErr passes a temporary accept error to the current handoff, so
// that its server backs off and counts it.
func (p *port) deliverErr(err error) bool {
	p.mu.Lock()
	h, changed, closed := p.cur, p.changed, p.closed
	p.mu.Unlock()
	if closed {
		return false
	}
	if h == nil {
		return true
	}
	select {
	case h.errs <- err:
	case <-h.done:
	case <-changed:
	}
	return true
}

// handoff is the net.Listener a frontend's server serves: it returns the
// connections its port's accept loops hand to it. Closing it does not
// close the port's sockets.
type handoff struct {
	addr  net.Addr
	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
}

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, conns: make(chan net.Conn), errs: make(chan error), done: make(chan struct{})}
}

// Accept returns the next connection, or net.ErrClosed once closed.
func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case err := <-h.errs:
		return nil, err
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept.
func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// Addr is the address of the port's first socket.
func (h *handoff) Addr() net.Addr { return h.addr }
