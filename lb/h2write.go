package lb

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// h2WriteMax bounds the bytes an h2Writer holds: a Write that would pass
// it waits for the pending batch to be written, and one larger by itself
// is written through.
const h2WriteMax = 64 << 10

// h2CloseFlush bounds how long Close waits for the pending bytes to leave
// before it closes the connection anyway.
const h2CloseFlush = time.Second

// h2BufPool holds the batch buffers, which a connection holds only while
// it has bytes pending: an idle one keeps none. Each has room for
// h2WriteMax bytes, which a batch never passes.
var h2BufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, h2WriteMax)
	return &b
}}

// h2Writer batches the writes of an HTTP/2 server to its connection.
//
// x/net/http2's server flushes its buffer after every round of frames it
// schedules, and with concurrent streams those rounds are small: a few
// frames of one or two streams, one write(2) (and one TLS record) each.
// Write copies the bytes and returns; one flush goroutine, started by the
// first Write into an empty buffer, writes everything pending in one call
// and ends when nothing is left. The Go scheduler runs it when the serve
// loop that woke it blocks, that is when the server has nothing more to
// write right now, so the small flushes of one round of concurrent streams
// leave together.
//
// Bytes leave in the order written. The buffer holds at most h2WriteMax
// bytes: past that Write waits for the pending batch, and a Write larger
// than that by itself is written through, after the pending bytes. Each
// batch write has the server's WriteByteTimeout: it fails when no byte
// leaves in that time, as the server's own writes did. A failed write
// closes the connection, as the server does on a write error, and its
// error is what the next Write returns. Close writes what is pending, for
// at most h2CloseFlush, then closes the connection; it returns once the
// flush goroutine has ended.
//
// Write is called by one goroutine at a time (the server serializes its
// frame writes); Close and SetWriteDeadline may run concurrently with it.
type h2Writer struct {
	conn    net.Conn
	timeout time.Duration // WriteByteTimeout; 0 means none

	mu       sync.Mutex
	cond     sync.Cond // signalled when a batch is taken and when flushing ends
	buf      *[]byte   // pending bytes; nil when none
	flushing bool      // a goroutine is writing; buf != nil implies it
	closed   bool
	err      error // the first write error
}

func newH2Writer(c net.Conn, timeout time.Duration) *h2Writer {
	w := &h2Writer{conn: c, timeout: timeout}
	w.cond.L = &w.mu
	return w
}

// Write copies p for the flush goroutine, or writes it through when it is
// larger than h2WriteMax.
func (w *h2Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	for {
		switch {
		case w.err != nil:
			err := w.err
			w.mu.Unlock()
			return 0, err
		case w.closed:
			w.mu.Unlock()
			return 0, net.ErrClosed
		case len(p) > h2WriteMax && !w.flushing:
			// Nothing is pending (buf is only set while flushing).
			w.flushing = true
			w.mu.Unlock()
			err := w.write(p)
			w.mu.Lock()
			w.failLocked(err)
			w.drainLocked()
			w.mu.Unlock()
			if err != nil {
				return 0, err
			}
			return len(p), nil
		case w.buf != nil && len(*w.buf)+len(p) > h2WriteMax, len(p) > h2WriteMax:
			w.cond.Wait() // for the pending batch to leave
			continue
		}
		break
	}
	if w.buf == nil {
		w.buf = h2BufPool.Get().(*[]byte)
	}
	*w.buf = append(*w.buf, p...)
	if !w.flushing {
		w.flushing = true
		go w.flush()
	}
	w.mu.Unlock()
	return len(p), nil
}

// flush is the flush goroutine: it writes batches until none is pending.
func (w *h2Writer) flush() {
	w.mu.Lock()
	w.drainLocked()
	w.mu.Unlock()
}

// drainLocked writes the pending batches, the lock released during each
// write, then ends the flushing. w.mu is held, and w.flushing set by the
// caller.
func (w *h2Writer) drainLocked() {
	for w.buf != nil && w.err == nil {
		b := w.buf
		w.buf = nil
		w.cond.Broadcast() // room for a waiting Write
		w.mu.Unlock()
		err := w.write(*b)
		*b = (*b)[:0]
		if cap(*b) <= h2WriteMax {
			h2BufPool.Put(b)
		}
		w.mu.Lock()
		w.failLocked(err)
	}
	if w.buf != nil { // not written: the connection failed
		*w.buf = (*w.buf)[:0]
		h2BufPool.Put(w.buf)
		w.buf = nil
	}
	w.flushing = false
	w.cond.Broadcast()
}

// failLocked records the first write error and closes the connection, so
// that the server's reader ends too.
func (w *h2Writer) failLocked(err error) {
	if err == nil || w.err != nil {
		return
	}
	w.err = err
	w.conn.Close()
}

// write writes p to the connection with the byte timeout: it fails when
// no byte leaves for w.timeout (x/net/http2's writeWithByteTimeout).
func (w *h2Writer) write(p []byte) error {
	if w.timeout <= 0 {
		_, err := w.conn.Write(p)
		return err
	}
	defer w.conn.SetWriteDeadline(time.Time{})
	for {
		w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
		n, err := w.conn.Write(p)
		p = p[n:]
		if len(p) == 0 || n == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
	}
}

// SetWriteDeadline sets the connection's write deadline when there is no
// byte timeout. With one the server sets a deadline around each of its
// writes, which only copy now; the batch writes carry the timeout
// themselves and the call is ignored.
func (w *h2Writer) SetWriteDeadline(t time.Time) error {
	if w.timeout > 0 {
		return nil
	}
	return w.conn.SetWriteDeadline(t)
}

// Close writes the pending bytes, for at most h2CloseFlush, and closes the
// connection.
func (w *h2Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return net.ErrClosed
	}
	w.closed = true
	var stop *time.Timer
	if w.flushing {
		// A peer that does not read: the close unblocks the write.
		stop = time.AfterFunc(h2CloseFlush, func() { w.conn.Close() })
	}
	for w.flushing {
		w.cond.Wait()
	}
	failed := w.err != nil
	w.mu.Unlock()
	if stop != nil && !stop.Stop() || failed {
		return nil // closed already
	}
	return w.conn.Close()
}
