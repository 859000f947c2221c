package writeback

import (
	"os"
	"syscall"
)

const (
	syncWaitBefore = 0x1 // SYNC_FILE_RANGE_WAIT_BEFORE
	syncWrite      = 0x2 // SYNC_FILE_RANGE_WRITE
	syncWaitAfter  = 0x4 // SYNC_FILE_RANGE_WAIT_AFTER

	fadvSequential = 2 // POSIX_FADV_SEQUENTIAL
	fadvDontNeed   = 4 // POSIX_FADV_DONTNEED
)

// start begins write-back of [off, off+n) of f without waiting. Errors are
// ignored here and in the others: they are hints.
func start(f *os.File, off, n int64) {
	_ = syscall.SyncFileRange(int(f.Fd()), off, n, syncWrite)
}

// waitAndDrop writes [off, off+n) of f out, waiting for it, and evicts it
// (DONTNEED skips dirty pages, hence the wait).
func waitAndDrop(f *os.File, off, n int64) {
	_ = syscall.SyncFileRange(int(f.Fd()), off, n, syncWaitBefore|syncWrite|syncWaitAfter)
	drop(f, off, n)
}

// drop evicts the clean pages of [off, off+n) of f (n 0: to the end).
func drop(f *os.File, off, n int64) { fadvise(f, off, n, fadvDontNeed) }

// sequential tells the kernel [off, off+n) will be read in order (a larger
// read-ahead).
func sequential(f *os.File, off, n int64) { fadvise(f, off, n, fadvSequential) }

func fadvise(f *os.File, off, n int64, advice int) {
	_, _, _ = syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), uintptr(off), uintptr(n), uintptr(advice), 0, 0)
}
