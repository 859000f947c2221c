// Package writeback keeps large streamed files out of the way of the page
// cache. A Writer asks the kernel to start writing out each few MiB as soon
// as they are written (Linux sync_file_range), so that the fsync at the end
// waits for the tail only and the disk works while the caller computes;
// with Drop it also evicts what is on disk from the page cache, and a
// Reader evicts what it has read.
//
// Why evict: a streamed file is not read again soon (the coordinator's
// ciphertext until its download, a delivered file until the hospital opens
// it), and on virtual machines that report free memory to the host
// (virtio-balloon free page reporting, as on this project's machines) each
// page the cache takes fresh costs far more CPU than the copy into it:
// writing 1 GiB took ≈ 2 CPU-seconds through a growing cache and ≈ 0.3 with
// drop-behind, reading it back ≈ 1 and ≈ 0.05 (docs/speed-targets.md).
// Reusing the same few MiB of cache keeps those pages warm.
package writeback

import (
	"io"
	"os"
)

// Every is how many bytes a Writer lets accumulate before it starts their
// write-back, and a Reader reads before it drops what it has read.
const Every = 4 << 20

// Lag is how far behind the current position Drop evicts: far enough that
// the write-back started there has usually finished, so waiting for it
// rarely blocks.
const Lag = 2 * Every

// Writer writes to F, starting write-back every Every bytes. It is only a
// hint to the kernel: durability still needs F.Sync. Off is F's offset
// where the writes begin (0 for a new file).
type Writer struct {
	F            *os.File
	Off, pending int64
	// Drop evicts the written bytes from the page cache once they are on
	// disk, Lag behind the write (waiting for their write-back if it has
	// not finished). Call DropAll after the final F.Sync for the tail.
	Drop    bool
	begun   bool
	dropped int64 // F's bytes before this offset were evicted
}

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	if !w.begun {
		w.begun, w.dropped = true, w.Off
	}
	n, err := w.F.Write(p)
	w.pending += int64(n)
	if w.pending >= Every {
		start(w.F, w.Off, w.pending)
		w.Off += w.pending
		w.pending = 0
		if end := w.Off - Lag; w.Drop && end > w.dropped {
			waitAndDrop(w.F, w.dropped, end-w.dropped)
			w.dropped = end
		}
	}
	return n, err
}

// DropAll evicts f's clean pages from the page cache: after f.Sync, all of
// them. A hint; errors are ignored.
func DropAll(f *os.File) { drop(f, 0, 0) }

// Reader reads n bytes of F from Off sequentially and evicts from the page
// cache what it has read, Lag behind its position. Close closes F.
type Reader struct {
	F               *os.File
	Off, N          int64
	pos, dropped    int64 // relative to Off
	begun, finished bool
}

// NewReader returns a Reader over [off, off+n) of f.
func NewReader(f *os.File, off, n int64) *Reader { return &Reader{F: f, Off: off, N: n} }

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if !r.begun {
		r.begun = true
		sequential(r.F, r.Off, r.N)
	}
	if r.pos >= r.N {
		r.dropTail()
		return 0, io.EOF
	}
	if int64(len(p)) > r.N-r.pos {
		p = p[:r.N-r.pos]
	}
	k, err := r.F.ReadAt(p, r.Off+r.pos)
	r.pos += int64(k)
	if err == io.EOF {
		err = nil // ReadAt's short read at the end of the file
		if r.pos < r.N {
			err = io.ErrUnexpectedEOF // the file is shorter than promised
		}
	}
	if end := r.pos - Lag; end-r.dropped >= Every {
		drop(r.F, r.Off+r.dropped, end-r.dropped)
		r.dropped = end
	}
	if r.pos == r.N {
		r.dropTail()
	}
	return k, err
}

func (r *Reader) dropTail() {
	if !r.finished {
		r.finished = true
		if r.pos > r.dropped { // a length of 0 would mean "to the end of the file"
			drop(r.F, r.Off+r.dropped, r.pos-r.dropped)
		}
	}
}

// Close closes F.
func (r *Reader) Close() error { return r.F.Close() }
