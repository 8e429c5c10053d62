package lb

import (
	"bytes"
	"io"
	"net"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// readerConn is a net.Conn whose reads come from r.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// BenchmarkH2Check measures the frame check alone, per request: a HEADERS
// frame of a typical browser-like request (its fields indexed after the
// first, as HPACK encoders do) and a 64-byte DATA frame, read through it.
func BenchmarkH2Check(b *testing.B) {
	const requests = 1024
	var stream, block bytes.Buffer
	fr := http2.NewFramer(&stream, nil)
	enc := hpack.NewEncoder(&block)
	for i := range requests {
		block.Reset()
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "www.example.com"},
			{":path", "/api/items"}, {"user-agent", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"},
			{"accept", "application/json"}, {"accept-language", "en-US,en;q=0.5"}, {"content-type", "application/json"},
			{"cookie", "session=0123456789abcdef0123456789abcdef"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		id := uint32(2*i + 1)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true})
		fr.WriteData(id, true, make([]byte, 64))
	}
	data := stream.Bytes()
	p := make([]byte, 4096)
	b.SetBytes(int64(len(data) / requests))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += requests {
		c := newH2Conn(&readerConn{r: bytes.NewReader(data)}, true, DefaultHTTP2MaxFrameSize, 4096)
		for {
			if _, err := c.Read(p); err != nil {
				break
			}
		}
	}
}

// FuzzH2Check reads arbitrary client bytes (after the preface) through the
// frame check, one small read at a time, as a slow client would send them:
// it must not panic, must end with the stream's end, and may add to the
// stream no more than one invalid field per header block it marks.
func FuzzH2Check(f *testing.F) {
	var stream, block bytes.Buffer
	fr := http2.NewFramer(&stream, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
	enc := hpack.NewEncoder(&block)
	for _, fl := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "a.test"}, {":path", "/"}, {"te", "gzip"}} {
		enc.WriteField(hpack.HeaderField{Name: fl[0], Value: fl[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true})
	fr.WriteData(1, true, []byte("body"))
	f.Add(stream.Bytes(), uint8(7))
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		in := &readerConn{r: &stepReader{r: bytes.NewReader(data), step: int(step%64) + 1}}
		c := newH2Conn(in, true, DefaultHTTP2MaxFrameSize, 4096)
		out, err := io.ReadAll(io.LimitReader(c, int64(2*len(data)+1024)))
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if len(out) > len(data)+len(data)/9*len(invalidField) {
			t.Fatalf("%d bytes in, %d out: more than one invalid field per frame added", len(data), len(out))
		}
	})
}

// stepReader returns at most step bytes a read.
type stepReader struct {
	r    io.Reader
	step int
}

func (s *stepReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), s.step)]) }
