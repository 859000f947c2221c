package fsblob

import (
	"os"
	"syscall"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to disk
// without waiting (sync_file_range SYNC_FILE_RANGE_WRITE). It is only a
// hint: the fsync at the end of the append is what makes the bytes durable.
func startWriteback(f *os.File, off, n int64) {
	_ = syscall.SyncFileRange(int(f.Fd()), off, n, 0x2 /* SYNC_FILE_RANGE_WRITE */)
}
