package accesslog

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbkit/lbkit/lb"
)

// DefaultBuffer is the number of records a Writer buffers when NewWriter
// is given zero.
const DefaultBuffer = 4096

// ErrClosed is returned by Close when the Writer is already closed.
var ErrClosed = errors.New("accesslog: writer closed")

// Sink writes records, on the Writer's goroutine only.
type Sink interface {
	WriteRecord(r *lb.AccessRecord) error
}

// Writer is an lb.AccessLogger that never blocks: Log puts a copy of the
// record in a bounded buffer, or drops and counts it when the buffer is
// full; one goroutine hands the records to the Sink. It is safe for
// concurrent use.
type Writer struct {
	sink    Sink
	ch      chan lb.AccessRecord
	done    chan struct{} // closed when drain returns
	stop    chan struct{} // closed by Close: drain pauses no more
	mu      sync.RWMutex  // Log holds it shared, Close exclusively
	closed  bool
	dropped atomic.Uint64
	errs    atomic.Uint64
}

// NewWriter starts a Writer to sink that buffers up to buffer records
// (zero means DefaultBuffer). Close it to stop its goroutine.
func NewWriter(sink Sink, buffer int) *Writer {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	w := &Writer{sink: sink, ch: make(chan lb.AccessRecord, buffer),
		done: make(chan struct{}), stop: make(chan struct{})}
	go w.drain()
	return w
}

// Log queues a copy of r, or drops it when the buffer is full or the
// Writer closed.
func (w *Writer) Log(r *lb.AccessRecord) {
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		w.dropped.Add(1)
		return
	}
	select {
	case w.ch <- *r:
	default:
		w.dropped.Add(1)
	}
	w.mu.RUnlock()
}

// Dropped returns the number of records dropped so far because the buffer
// was full or the Writer closed.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Errors returns the number of records the Sink failed to write.
func (w *Writer) Errors() uint64 { return w.errs.Load() }

// batchDelay is how long the Writer's goroutine lets records gather after
// writing a batch. Waking a parked goroutine for every record would cost
// the data path more than the record itself; with a pause, Log's channel
// send finds no receiver to wake. It bounds the rate a Writer logs without
// drops at its buffer size per batchDelay (4096 records per 10 ms by
// default).
const batchDelay = 10 * time.Millisecond

// flusher is a Sink that buffers, flushed at the end of each batch.
type flusher interface{ Flush() error }

// drain hands buffered records to the sink, in batches, until Close.
func (w *Writer) drain() {
	defer close(w.done)
	r := new(lb.AccessRecord) // one for all: a loop variable would escape on each record
	fl, _ := w.sink.(flusher)
	pause := time.NewTimer(batchDelay)
	defer pause.Stop()
	for {
		rec, ok := <-w.ch
		for ok {
			*r = rec
			if err := w.sink.WriteRecord(r); err != nil {
				w.errs.Add(1)
			}
			select {
			case rec, ok = <-w.ch:
				continue
			default:
			}
			break
		}
		if fl != nil {
			if err := fl.Flush(); err != nil {
				w.errs.Add(1)
			}
		}
		if !ok {
			return
		}
		pause.Reset(batchDelay)
		select {
		case <-pause.C:
		case <-w.stop:
		}
	}
}

// Close stops accepting records, writes those buffered, stops the
// goroutine, and closes the Sink when it is an io.Closer.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closed = true
	close(w.ch)
	close(w.stop)
	w.mu.Unlock()
	<-w.done
	if c, ok := w.sink.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Slog returns a Sink that hands each record to h as one slog record,
// message "access", level Info, with typed attributes (see Attrs).
func Slog(h slog.Handler) Sink { return slogSink{h} }

type slogSink struct{ h slog.Handler }

func (s slogSink) WriteRecord(r *lb.AccessRecord) error {
	rec := slog.NewRecord(r.Time, slog.LevelInfo, "access", 0)
	rec.AddAttrs(Attrs(r)...)
	return s.h.Handle(context.Background(), rec)
}

// Attrs returns the attributes of r, named after HAProxy's log variables
// where it has one: durations in milliseconds as integers (-1 for a phase
// not reached), HTTP fields only for HTTP records, empty strings left out.
func Attrs(r *lb.AccessRecord) []slog.Attr {
	a := make([]slog.Attr, 0, 31)
	a = append(a,
		slog.String("client_ip", r.Client.Addr().String()),
		slog.Int("client_port", int(r.Client.Port())),
		slog.String("frontend", r.Frontend),
		slog.String("backend", r.Backend),
		slog.String("server", r.Server),
	)
	if r.HTTP {
		a = append(a,
			slog.Int64("TR", ms(r.TR)), slog.Int64("Tw", ms(r.Tw)), slog.Int64("Tc", ms(r.Tc)),
			slog.Int64("Tr", ms(r.Tr)), slog.Int64("Ta", ms(r.Ta)),
			slog.Int("status", r.Status),
		)
	} else {
		a = append(a, slog.Int64("Tw", ms(r.Tw)), slog.Int64("Tc", ms(r.Tc)), slog.Int64("Tt", ms(r.Tt)))
	}
	a = append(a,
		slog.Int64("bytes_in", r.BytesIn), slog.Int64("bytes_out", r.BytesOut),
		slog.Int("retries", r.Retries), slog.Bool("redispatch", r.Redispatch),
		slog.String("termination_state", r.Termination),
		slog.Bool("sticky", r.StickyPinned), slog.Bool("sticky_moved", r.StickyMoved),
		slog.Int64("actconn", r.ActiveConns), slog.Int64("feconn", r.FrontendConns),
		slog.Int64("beconn", r.BackendConns), slog.Int64("srv_conn", r.ServerConns),
		slog.Int64("srv_queue", r.ServerQueue), slog.Int64("backend_queue", r.BackendQueue),
	)
	if r.HTTP {
		a = append(a, slog.String("method", r.Method), slog.String("uri", r.URI),
			slog.String("proto", r.Proto), slog.String("host", r.Host))
	}
	for _, kv := range [...][2]string{{"request_id", r.RequestID}, {"trace_id", r.TraceID}, {"span_id", r.SpanID}} {
		if kv[1] != "" {
			a = append(a, slog.String(kv[0], kv[1]))
		}
	}
	return a
}

// ms returns d in whole milliseconds; negative durations are -1.
func ms(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return int64(d / time.Millisecond)
}
