package writeback

import (
	"os"
	"syscall"
)

// start begins write-back of [off, off+n) of f without waiting
// (SYNC_FILE_RANGE_WRITE). Errors are ignored: it is a hint.
func start(f *os.File, off, n int64) {
	_ = syscall.SyncFileRange(int(f.Fd()), off, n, 0x2 /* SYNC_FILE_RANGE_WRITE */)
}
