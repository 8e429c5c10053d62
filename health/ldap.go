package health

import (
	"bytes"
	"context"
	"fmt"
	"io"
)

// LDAP checks an LDAP server with an anonymous LDAPv3 simple bind: the bind
// response's resultCode must be success (0). It then sends an unbind
// request and closes.
type LDAP struct{}

// The anonymous bind request (message 1) and the unbind request (message 2).
var (
	ldapBind   = []byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00}
	ldapUnbind = []byte{0x30, 0x05, 0x02, 0x01, 0x02, 0x42, 0x00}
)

// maxLDAPMessage bounds the bind response.
const maxLDAPMessage = 16 << 10

// Check implements Probe.
func (LDAP) Check(ctx context.Context, t Target) error {
	c, err := t.Connect(ctx)
	if err != nil {
		return fmt.Errorf("ldap: %w", err)
	}
	defer closeQuietly(c, ldapUnbind)
	if _, err := c.Write(ldapBind); err != nil {
		return fmt.Errorf("ldap: send bind: %w", err)
	}
	// Tag and the first length byte, then the rest of the length.
	var head [2]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return fmt.Errorf("ldap: %w", readErr(err))
	}
	if head[0] != 0x30 {
		return fmt.Errorf("ldap: %w: not an LDAP message (tag 0x%02x)", ErrUnexpected, head[0])
	}
	msg := head[:]
	lenBytes := 0
	if head[1]&0x80 != 0 {
		lenBytes = int(head[1] & 0x7f)
		if lenBytes == 0 || lenBytes > 4 {
			return fmt.Errorf("ldap: %w: bad length encoding", ErrUnexpected)
		}
		ext := make([]byte, lenBytes)
		if _, err := io.ReadFull(c, ext); err != nil {
			return fmt.Errorf("ldap: %w", readErr(err))
		}
		msg = append(msg, ext...)
	}
	_, n, _, err := berHeader(msg)
	if err != nil {
		return fmt.Errorf("ldap: %w", err)
	}
	if n > maxLDAPMessage {
		return fmt.Errorf("ldap: %w: message of %d bytes", ErrUnexpected, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil {
		return fmt.Errorf("ldap: %w", readErr(err))
	}
	return parseLDAPBindResponse(append(msg, body...))
}

// berHeader parses the tag and definite length at the start of b. It
// returns the tag, the content length and the header size.
func berHeader(b []byte) (tag byte, n, size int, err error) {
	if len(b) < 2 {
		return 0, 0, 0, fmt.Errorf("%w: truncated BER element", ErrUnexpected)
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return 0, 0, 0, fmt.Errorf("%w: multi-byte BER tag", ErrUnexpected)
	}
	l := b[1]
	if l&0x80 == 0 {
		return tag, int(l), 2, nil
	}
	k := int(l & 0x7f)
	if k == 0 || k > 4 {
		return 0, 0, 0, fmt.Errorf("%w: bad BER length encoding", ErrUnexpected)
	}
	if len(b) < 2+k {
		return 0, 0, 0, fmt.Errorf("%w: truncated BER length", ErrUnexpected)
	}
	for _, c := range b[2 : 2+k] {
		n = n<<8 | int(c)
		if n > maxLDAPMessage {
			return 0, 0, 0, fmt.Errorf("%w: BER element of more than %d bytes", ErrUnexpected, maxLDAPMessage)
		}
	}
	return tag, n, 2 + k, nil
}

// berElement splits the first element of b: its tag, its content and what
// follows it.
func berElement(b []byte) (tag byte, content, rest []byte, err error) {
	tag, n, size, err := berHeader(b)
	if err != nil {
		return 0, nil, nil, err
	}
	if len(b)-size < n {
		return 0, nil, nil, fmt.Errorf("%w: truncated BER element", ErrUnexpected)
	}
	return tag, b[size : size+n], b[size+n:], nil
}

// parseLDAPBindResponse checks an LDAPMessage holding the BindResponse of
// message 1: SEQUENCE { messageID 1, [APPLICATION 1] { resultCode,
// matchedDN, diagnosticMessage, ... } }.
func parseLDAPBindResponse(b []byte) error {
	tag, msg, rest, err := berElement(b)
	if err != nil {
		return fmt.Errorf("ldap: %w", err)
	}
	if tag != 0x30 || len(rest) != 0 {
		return fmt.Errorf("ldap: %w: not an LDAP message", ErrUnexpected)
	}
	tag, id, msg, err := berElement(msg)
	if err != nil {
		return fmt.Errorf("ldap: %w", err)
	}
	if tag != 0x02 || !bytes.Equal(id, []byte{1}) {
		return fmt.Errorf("ldap: %w: not the reply to the bind (message id % x)", ErrUnexpected, id)
	}
	tag, resp, _, err := berElement(msg)
	if err != nil {
		return fmt.Errorf("ldap: %w", err)
	}
	if tag == 0x78 { // ExtendedResponse: a notice of disconnection
		return fmt.Errorf("ldap: %w: server sent a notice of disconnection", ErrRefused)
	}
	if tag != 0x61 {
		return fmt.Errorf("ldap: %w: not a bind response (tag 0x%02x)", ErrUnexpected, tag)
	}
	tag, code, resp, err := berElement(resp)
	if err != nil {
		return fmt.Errorf("ldap: %w", err)
	}
	if tag != 0x0a || len(code) == 0 || len(code) > 4 {
		return fmt.Errorf("ldap: %w: bad resultCode", ErrUnexpected)
	}
	rc := 0
	for _, c := range code {
		rc = rc<<8 | int(c)
	}
	if rc == 0 {
		return nil
	}
	var diag []byte
	if _, _, after, err := berElement(resp); err == nil { // matchedDN
		if t, d, _, err := berElement(after); err == nil && t == 0x04 {
			diag = d
		}
	}
	return fmt.Errorf("ldap: %w: bind resultCode %d %s", ErrRefused, rc, printable(diag))
}
