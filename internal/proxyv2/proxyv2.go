package proxyv2

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"
)

// TLV types of the PROXY protocol v2 specification (section 2.2).
const (
	TypeALPN      = byte(proxyproto.PP2_TYPE_ALPN)
	TypeAuthority = byte(proxyproto.PP2_TYPE_AUTHORITY)
	TypeSSL       = byte(proxyproto.PP2_TYPE_SSL)
	TypeMinCustom = byte(proxyproto.PP2_TYPE_MIN_CUSTOM)
	TypeMaxCustom = byte(proxyproto.PP2_TYPE_MAX_CUSTOM)
)

// Bits of the client field of the SSL TLV.
const (
	ClientSSL      = tlvparse.PP2_BITFIELD_CLIENT_SSL
	ClientCertConn = tlvparse.PP2_BITFIELD_CLIENT_CERT_CONN
	ClientCertSess = tlvparse.PP2_BITFIELD_CLIENT_CERT_SESS
)

// MinRead is the smallest size bound Read accepts: a complete v1 header.
const MinRead = 108

// Errors of Read.
var (
	// ErrNoHeader means the connection did not start with a PROXY signature.
	ErrNoHeader = errors.New("proxyv2: no PROXY header")
	// ErrTooLarge means the header is larger than the bound given to Read.
	ErrTooLarge = errors.New("proxyv2: PROXY header too large")
	// ErrInvalid means the header is malformed or truncated.
	ErrInvalid = errors.New("proxyv2: invalid PROXY header")
)

// TLV is one type-length-value field of a v2 header.
type TLV struct {
	Type  byte
	Value []byte
}

// Header is a PROXY header.
type Header struct {
	// Local is the LOCAL command (v2) or "PROXY UNKNOWN" (v1): a connection
	// the proxy opened on its own behalf, or one whose addresses it cannot
	// express. The receiver uses the socket's addresses.
	Local bool
	// Src and Dst are the client's address and the address it connected
	// to. Either may be invalid for a Local header; Read leaves them invalid
	// for address families other than IPv4 and IPv6.
	Src, Dst netip.AddrPort
	// TLVs are written after the addresses of a v2 header, in order.
	TLVs []TLV
}

// addrs returns the header's addresses as TCP addresses of one family (IPv4
// when both are IPv4, IPv6 otherwise, with IPv4 mapped), and that family;
// ok is false when the source is not an IP address.
func (h *Header) addrs() (src, dst *net.TCPAddr, fam proxyproto.AddressFamilyAndProtocol, ok bool) {
	if h.Local || !h.Src.IsValid() {
		return nil, nil, proxyproto.UNSPEC, false
	}
	s, d := h.Src.Addr().Unmap(), h.Dst.Addr().Unmap()
	if !h.Dst.IsValid() {
		d = netip.IPv4Unspecified()
		if s.Is6() {
			d = netip.IPv6Unspecified()
		}
	}
	fam = proxyproto.TCPv4
	if s.Is6() || d.Is6() {
		fam = proxyproto.TCPv6
		s, d = netip.AddrFrom16(s.As16()), netip.AddrFrom16(d.As16())
	}
	src = net.TCPAddrFromAddrPort(netip.AddrPortFrom(s, h.Src.Port()))
	dst = net.TCPAddrFromAddrPort(netip.AddrPortFrom(d, h.Dst.Port()))
	return src, dst, fam, true
}

// AppendV1 appends the text (v1) form of h to b. TLVs are not part of v1
// and are ignored. A Local header, or one without an IP source, is written
// as "PROXY UNKNOWN\r\n".
func AppendV1(b []byte, h Header) ([]byte, error) {
	ph := &proxyproto.Header{Version: 1, Command: proxyproto.PROXY, TransportProtocol: proxyproto.UNSPEC}
	if src, dst, fam, ok := h.addrs(); ok {
		ph.TransportProtocol, ph.SourceAddr, ph.DestinationAddr = fam, src, dst
	}
	out, err := ph.Format()
	if err != nil {
		return b, fmt.Errorf("proxyv2: v1 header: %w", err)
	}
	return append(b, out...), nil
}

// AppendV2 appends the binary (v2) form of h to b. A Local header, or one
// without an IP source, is written with the LOCAL command and the UNSPEC
// family; its TLVs are kept.
func AppendV2(b []byte, h Header) ([]byte, error) {
	ph := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
	if src, dst, fam, ok := h.addrs(); ok {
		ph.Command, ph.TransportProtocol, ph.SourceAddr, ph.DestinationAddr = proxyproto.PROXY, fam, src, dst
	}
	if len(h.TLVs) > 0 {
		tlvs := make([]proxyproto.TLV, len(h.TLVs))
		for i, t := range h.TLVs {
			tlvs[i] = proxyproto.TLV{Type: proxyproto.PP2Type(t.Type), Value: t.Value}
		}
		if err := ph.SetTLVs(tlvs); err != nil {
			return b, fmt.Errorf("proxyv2: v2 TLVs: %w", err)
		}
	}
	out, err := ph.Format()
	if err != nil {
		return b, fmt.Errorf("proxyv2: v2 header: %w", err)
	}
	return append(b, out...), nil
}

// SSL is the content of the PP2_TYPE_SSL TLV.
type SSL struct {
	// Client is a combination of ClientSSL, ClientCertConn, ClientCertSess.
	Client uint8
	// Verify is zero when the client presented a certificate that was
	// verified, non-zero otherwise.
	Verify uint32
	// Version and Cipher are written as sub-TLVs when not empty.
	Version, Cipher string
	// CN, when not empty, is written as the PP2_SUBTYPE_SSL_CN sub-TLV.
	CN string
}

// TLV encodes s as a PP2_TYPE_SSL TLV.
func (s SSL) TLV() (TLV, error) {
	v := tlvparse.PP2SSL{Client: s.Client, Verify: s.Verify}
	if s.Version != "" {
		v.TLV = append(v.TLV, proxyproto.TLV{Type: proxyproto.PP2_SUBTYPE_SSL_VERSION, Value: []byte(s.Version)})
	}
	if s.CN != "" {
		v.TLV = append(v.TLV, proxyproto.TLV{Type: proxyproto.PP2_SUBTYPE_SSL_CN, Value: []byte(s.CN)})
	}
	if s.Cipher != "" {
		v.TLV = append(v.TLV, proxyproto.TLV{Type: proxyproto.PP2_SUBTYPE_SSL_CIPHER, Value: []byte(s.Cipher)})
	}
	t, err := v.Marshal()
	if err != nil {
		return TLV{}, fmt.Errorf("proxyv2: SSL TLV: %w", err)
	}
	return TLV{Type: byte(t.Type), Value: t.Value}, nil
}

// Read reads one PROXY header (v1 or v2) from r, reading at most limit
// bytes (at least MinRead) in all. Independently of limit, v2 headers
// announcing more than 4096 bytes after the fixed 16 are invalid
// (go-proxyproto's MaxV2HeaderSize, left at its default). It returns the
// header and the bytes it read past the header, which belong to the
// connection's data. The caller bounds
// the time with a read deadline. Errors wrap ErrNoHeader, ErrTooLarge or
// ErrInvalid, or are the reader's own (a timeout).
func Read(r io.Reader, limit int) (Header, []byte, error) {
	limit = max(limit, MinRead)
	lr := &io.LimitedReader{R: r, N: int64(limit)}
	br := bufio.NewReaderSize(lr, 256)
	first, err := br.Peek(1)
	if err != nil {
		return Header{}, nil, readErr(err)
	}
	if first[0] == proxyproto.SIGV2[0] {
		// Check the announced length before the parser allocates for it.
		fixed, err := br.Peek(16)
		if err != nil {
			return Header{}, nil, readErr(err)
		}
		if [12]byte(fixed[:12]) != [12]byte(proxyproto.SIGV2) {
			return Header{}, nil, ErrNoHeader
		}
		if n := 16 + int(binary.BigEndian.Uint16(fixed[14:16])); n > limit {
			return Header{}, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, limit)
		}
	}
	ph, err := proxyproto.Read(br)
	if err != nil {
		if errors.Is(err, proxyproto.ErrNoProxyProtocol) {
			return Header{}, nil, ErrNoHeader
		}
		if isTimeout(err) {
			return Header{}, nil, err
		}
		if lr.N == 0 {
			return Header{}, nil, fmt.Errorf("%w: limit %d: %w", ErrTooLarge, limit, err)
		}
		return Header{}, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	h := Header{Local: ph.Command.IsLocal() || ph.TransportProtocol == proxyproto.UNSPEC}
	if src, dst, ok := ph.TCPAddrs(); ok && !h.Local {
		h.Src, h.Dst = unmapped(src.AddrPort()), unmapped(dst.AddrPort())
	}
	tlvs, err := ph.TLVs()
	if err != nil {
		return Header{}, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for _, t := range tlvs {
		h.TLVs = append(h.TLVs, TLV{Type: byte(t.Type), Value: t.Value})
	}
	var rest []byte
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		rest = append([]byte(nil), b...)
	}
	return h, rest, nil
}

func readErr(err error) error {
	if isTimeout(err) {
		return err
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w", ErrInvalid, io.ErrUnexpectedEOF)
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
