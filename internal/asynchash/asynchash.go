// Package asynchash feeds hashes on a goroutine of their own, so that
// hashing a stream (SHA-256, SM3) overlaps the reading, decrypting and
// writing of it on a second core instead of adding to them.
package asynchash

import (
	"hash"
	"sync"
)

const (
	bufSize = 1 << 20
	// inFlight buffers per Hasher bound its memory (inFlight MiB) and how far
	// the writer may run ahead of the hashes.
	inFlight = 4
)

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, bufSize); return &b }}

// Hasher is an io.Writer that copies what it is given and writes it to its
// hashes on another goroutine, in order. Call Wait before reading the
// hashes; call Close to give up on it. Not safe for concurrent use.
type Hasher struct {
	hs    []hash.Hash
	cur   *[]byte
	work  chan *[]byte
	slots chan struct{}
	done  chan struct{}
	ended bool
}

// New starts a Hasher writing to hs (nil entries are skipped).
func New(hs ...hash.Hash) *Hasher {
	h := &Hasher{work: make(chan *[]byte, inFlight), slots: make(chan struct{}, inFlight), done: make(chan struct{})}
	for _, x := range hs {
		if x != nil {
			h.hs = append(h.hs, x)
		}
	}
	go h.run()
	return h
}

func (h *Hasher) run() {
	defer close(h.done)
	for b := range h.work {
		if b == nil {
			continue
		}
		for _, x := range h.hs {
			x.Write(*b)
		}
		*b = (*b)[:0]
		bufs.Put(b)
		<-h.slots
	}
}

// Write implements io.Writer; it never fails.
func (h *Hasher) Write(p []byte) (int, error) {
	n := len(p)
	if h.ended {
		panic("asynchash: Write after Wait or Close")
	}
	for len(p) > 0 {
		if h.cur == nil {
			h.slots <- struct{}{} // blocks while inFlight buffers are queued
			h.cur = bufs.Get().(*[]byte)
		}
		k := copy((*h.cur)[len(*h.cur):cap(*h.cur)], p)
		*h.cur = (*h.cur)[:len(*h.cur)+k]
		p = p[k:]
		if len(*h.cur) == cap(*h.cur) {
			h.work <- h.cur
			h.cur = nil
		}
	}
	return n, nil
}

// Buffer lends a buffer (of at most 1 MiB) for the caller to fill and hand
// back with Submit, so that a reader can hash the bytes it reads without
// Write's copy. It blocks while the Hasher holds its maximum of buffers.
// Do not mix with Write on one Hasher.
func (h *Hasher) Buffer() []byte {
	if h.ended {
		panic("asynchash: Buffer after Wait or Close")
	}
	h.slots <- struct{}{}
	return (*bufs.Get().(*[]byte))[:bufSize]
}

// Submit queues b, a prefix of a slice from Buffer, for hashing. The
// Hasher owns b from then on: it reads it on its own goroutine and then
// recycles it for any other Hasher, so the caller must not read or change
// b after Submit (write it to a file before, not while it is hashed).
func (h *Hasher) Submit(b []byte) {
	b = b[:len(b):bufSize]
	h.work <- &b
}

// Wait hashes what is still buffered and returns once every byte written
// is in the hashes.
func (h *Hasher) Wait() {
	if h.ended {
		<-h.done
		return
	}
	h.ended = true
	if h.cur != nil {
		h.work <- h.cur
		h.cur = nil
	}
	close(h.work)
	<-h.done
}

// Close stops the Hasher; its hashes then hold an unspecified prefix of
// what was written. Closing after Wait is a no-op.
func (h *Hasher) Close() { h.Wait() }
