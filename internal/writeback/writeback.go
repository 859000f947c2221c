// Package writeback overlaps writing a file with the disk's write-back: a
// Writer asks the kernel to start writing out each few MiB as soon as they
// are written (Linux sync_file_range), so that the fsync at the end waits
// for the tail only, and the disk works while the caller computes.
package writeback

import "os"

// Every is how many bytes a Writer lets accumulate before it starts their
// write-back.
const Every = 4 << 20

// Writer writes to F, starting write-back every Every bytes. It is only a
// hint to the kernel: durability still needs F.Sync. Off is F's offset
// where the writes begin (0 for a new file).
type Writer struct {
	F            *os.File
	Off, pending int64
}

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.F.Write(p)
	w.pending += int64(n)
	if w.pending >= Every {
		start(w.F, w.Off, w.pending)
		w.Off += w.pending
		w.pending = 0
	}
	return n, err
}
