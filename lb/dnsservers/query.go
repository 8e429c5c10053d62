package dnsservers

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Errors of a resolution, wrapped with the name and the server asked.
var (
	// ErrNotFound means the name does not exist (NXDOMAIN).
	ErrNotFound = errors.New("dnsservers: name not found")
	// ErrNoRecords means the name exists but has no record of the type
	// asked, or no usable one (an SRV set of "." only, or targets
	// without addresses).
	ErrNoRecords = errors.New("dnsservers: no records")
	// ErrServerFailure means the DNS server answered with an error code
	// other than NXDOMAIN: SERVFAIL, REFUSED, FORMERR, NOTIMP...
	ErrServerFailure = errors.New("dnsservers: server failure")
	// ErrBadAnswer means an answer could not be parsed, or the TCP
	// answer did not match the question.
	ErrBadAnswer = errors.New("dnsservers: bad answer")
)

// Sizes of the exchange. The query advertises ednsSize (RFC 9715's
// recommendation, below common path MTUs); a UDP answer is read into a
// buffer of udpReadSize, and one that does not fit is treated as
// truncated. TCP answers are bounded by their two-byte length.
const (
	ednsSize    = 1232
	udpReadSize = 4096
)

// answer is what one query learnt: its records of the type asked, after
// CNAMEs were followed, the addresses the additional section gave for
// other names, and the least TTL among the records used.
type answer struct {
	addrs  []netip.Addr             // A or AAAA records of the name
	srvs   []dnsmessage.SRVResource // SRV records of the name
	extra  map[string][]netip.Addr  // additional A/AAAA records, by lower-case name
	ttl    map[string]time.Duration // least TTL of the additional records, by name
	minTTL time.Duration            // least TTL of the records in addrs/srvs and the CNAMEs before them
}

// newQuery packs a query for name and type t with a random ID, recursion
// desired and an EDNS(0) OPT record advertising ednsSize.
func newQuery(name dnsmessage.Name, t dnsmessage.Type) (id uint16, msg []byte, err error) {
	id = uint16(rand.Uint32())
	b := dnsmessage.NewBuilder(make([]byte, 2, 512), dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return 0, nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: name, Type: t, Class: dnsmessage.ClassINET}); err != nil {
		return 0, nil, err
	}
	if err := b.StartAdditionals(); err != nil {
		return 0, nil, err
	}
	var opt dnsmessage.ResourceHeader
	if err := opt.SetEDNS0(ednsSize, dnsmessage.RCodeSuccess, false); err != nil {
		return 0, nil, err
	}
	if err := b.OPTResource(opt, dnsmessage.OPTResource{}); err != nil {
		return 0, nil, err
	}
	msg, err = b.Finish()
	if err != nil {
		return 0, nil, err
	}
	// The first two bytes are room for the TCP length prefix.
	binary.BigEndian.PutUint16(msg, uint16(len(msg)-2))
	return id, msg, nil
}

// exchange asks server (host:port) the question over UDP, and again over
// TCP when the UDP answer is truncated. Answers over UDP whose ID or
// question differ are ignored, as forged or stray, until the deadline.
func exchange(ctx context.Context, server string, name dnsmessage.Name, t dnsmessage.Type, timeout time.Duration) (*answer, error) {
	id, msg, err := newQuery(name, t)
	if err != nil {
		return nil, fmt.Errorf("dnsservers: pack query for %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := exchangeUDP(ctx, server, id, name, t, msg[2:])
	if err != nil {
		return nil, err
	}
	if resp == nil { // truncated
		if resp, err = exchangeTCP(ctx, server, msg); err != nil {
			return nil, err
		}
		if err := checkReply(resp, id, name, t); err != nil {
			return nil, fmt.Errorf("%w over TCP from %s: %w", ErrBadAnswer, server, err)
		}
	}
	a, err := parseAnswer(resp, name, t)
	if err != nil {
		return nil, fmt.Errorf("%s %s from %s: %w", name, typeName(t), server, err)
	}
	return a, nil
}

// exchangeUDP returns the matching answer, or nil when it is truncated.
func exchangeUDP(ctx context.Context, server string, id uint16, name dnsmessage.Name, t dnsmessage.Type, query []byte) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, fmt.Errorf("dnsservers: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(query); err != nil {
		return nil, fmt.Errorf("dnsservers: send to %s: %w", server, err)
	}
	buf := make([]byte, udpReadSize+1)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
			}
			return nil, fmt.Errorf("dnsservers: %s %s from %s: %w", name, typeName(t), server, err)
		}
		resp := buf[:n]
		if checkReply(resp, id, name, t) != nil {
			continue // not the answer to this query
		}
		var p dnsmessage.Parser
		h, _ := p.Start(resp)
		if h.Truncated || n > udpReadSize {
			return nil, nil
		}
		return resp, nil
	}
}

// exchangeTCP sends msg (with its length prefix) and reads one answer.
func exchangeTCP(ctx context.Context, server string, msg []byte) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return nil, fmt.Errorf("dnsservers: TCP fallback: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(msg); err != nil {
		return nil, fmt.Errorf("dnsservers: TCP fallback to %s: %w", server, err)
	}
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return nil, fmt.Errorf("dnsservers: TCP fallback from %s: %w", server, err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		return nil, fmt.Errorf("dnsservers: TCP fallback from %s: %w", server, err)
	}
	return resp, nil
}

// checkReply reports why resp is not the answer to the query id for name
// and type t: a response bit, the same ID and the same single question
// (names compared without regard to case, as RFC 4343 says).
func checkReply(resp []byte, id uint16, name dnsmessage.Name, t dnsmessage.Type) error {
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil {
		return err
	}
	if !h.Response {
		return errors.New("not a response")
	}
	if h.ID != id {
		return fmt.Errorf("ID %d, want %d", h.ID, id)
	}
	q, err := p.Question()
	if err != nil {
		return fmt.Errorf("question: %w", err)
	}
	if q.Type != t || q.Class != dnsmessage.ClassINET || !strings.EqualFold(q.Name.String(), name.String()) {
		return fmt.Errorf("question %s %v, want %s %v", q.Name, q.Type, name, t)
	}
	if err := p.SkipQuestion(); !errors.Is(err, dnsmessage.ErrSectionDone) {
		return errors.New("more than one question")
	}
	return nil
}

// parseAnswer reads a response whose ID and question were checked: its
// code, then the records of type t owned by name or by the names that
// the CNAMEs of the answer lead to, and the addresses of the additional
// section.
func parseAnswer(resp []byte, name dnsmessage.Name, t dnsmessage.Type) (*answer, error) {
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAnswer, err)
	}
	switch h.RCode {
	case dnsmessage.RCodeSuccess:
	case dnsmessage.RCodeNameError:
		return nil, ErrNotFound
	default:
		return nil, fmt.Errorf("%w: %v", ErrServerFailure, h.RCode)
	}
	if err := p.SkipAllQuestions(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAnswer, err)
	}
	rrs, err := p.AllAnswers()
	if err != nil {
		return nil, fmt.Errorf("%w: answers: %w", ErrBadAnswer, err)
	}
	a := &answer{minTTL: -1}
	// Follow the CNAME chain in the order the records come, as servers
	// send it; a bounded number of hops keeps a loop from growing it.
	owners := map[string]bool{lower(name): true}
	for range 8 {
		grew := false
		for _, rr := range rrs {
			c, ok := rr.Body.(*dnsmessage.CNAMEResource)
			if !ok || !owners[lower(rr.Header.Name)] || owners[lower(c.CNAME)] {
				continue
			}
			owners[lower(c.CNAME)] = true
			a.useTTL(rr.Header.TTL)
			grew = true
		}
		if !grew {
			break
		}
	}
	for _, rr := range rrs {
		if rr.Header.Type != t || rr.Header.Class != dnsmessage.ClassINET || !owners[lower(rr.Header.Name)] {
			continue
		}
		switch b := rr.Body.(type) {
		case *dnsmessage.AResource:
			a.addrs = append(a.addrs, netip.AddrFrom4(b.A))
		case *dnsmessage.AAAAResource:
			a.addrs = append(a.addrs, netip.AddrFrom16(b.AAAA))
		case *dnsmessage.SRVResource:
			a.srvs = append(a.srvs, *b)
		default:
			continue
		}
		a.useTTL(rr.Header.TTL)
	}
	if t != dnsmessage.TypeSRV {
		return a, nil
	}
	// SRV answers usually carry the targets' addresses.
	if err := p.SkipAllAuthorities(); err != nil {
		return a, nil // the additional section is a hint only
	}
	extra, err := p.AllAdditionals()
	if err != nil {
		return a, nil
	}
	for _, rr := range extra {
		var ip netip.Addr
		switch b := rr.Body.(type) {
		case *dnsmessage.AResource:
			ip = netip.AddrFrom4(b.A)
		case *dnsmessage.AAAAResource:
			ip = netip.AddrFrom16(b.AAAA)
		default:
			continue
		}
		if rr.Header.Class != dnsmessage.ClassINET {
			continue
		}
		if a.extra == nil {
			a.extra = make(map[string][]netip.Addr)
			a.ttl = make(map[string]time.Duration)
		}
		n := lower(rr.Header.Name)
		a.extra[n] = append(a.extra[n], ip)
		ttl := time.Duration(rr.Header.TTL) * time.Second
		if old, ok := a.ttl[n]; !ok || ttl < old {
			a.ttl[n] = ttl
		}
	}
	return a, nil
}

// useTTL lowers minTTL to ttl seconds.
func (a *answer) useTTL(ttl uint32) {
	d := time.Duration(ttl) * time.Second
	if a.minTTL < 0 || d < a.minTTL {
		a.minTTL = d
	}
}

// typeName returns the mnemonic of a record type: "A" for TypeA.
func typeName(t dnsmessage.Type) string { return strings.TrimPrefix(t.String(), "Type") }

// lower returns a DNS name in lower case, the key of name comparisons.
func lower(n dnsmessage.Name) string { return strings.ToLower(n.String()) }

// resolvConf is the file nameservers are read from when Source.Server is
// empty.
var resolvConf = "/etc/resolv.conf"

// maxResolvConf bounds how much of resolvConf is read.
const maxResolvConf = 64 << 10

// systemServers returns the nameservers of resolvConf as host:port, at
// port 53, in order; with none (or no file) the local server,
// 127.0.0.1:53 and [::1]:53, as the C library and Go's resolver assume.
func systemServers() ([]string, error) {
	f, err := os.Open(resolvConf)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return []string{"127.0.0.1:53", "[::1]:53"}, nil
		}
		return nil, fmt.Errorf("dnsservers: %w", err)
	}
	defer f.Close()
	servers := parseResolvConf(io.LimitReader(f, maxResolvConf))
	if len(servers) == 0 {
		return []string{"127.0.0.1:53", "[::1]:53"}, nil
	}
	return servers, nil
}

// parseResolvConf returns the addresses of the nameserver lines of r, as
// host:port at port 53. Lines it does not understand are skipped.
func parseResolvConf(r io.Reader) []string {
	var servers []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		// A zone (fe80::1%eth0) is allowed; anything else must be an
		// address.
		if ip, err := netip.ParseAddr(f[1]); err == nil {
			servers = append(servers, netip.AddrPortFrom(ip, 53).String())
		}
	}
	return servers
}
