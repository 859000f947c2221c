package fsblob

import (
	"encoding/hex"
	"os"
	"strings"
	"syscall"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to disk
// without waiting (sync_file_range SYNC_FILE_RANGE_WRITE). It is only a
// hint: the fsync (per append or at Seal) is what makes the bytes durable.
func startWriteback(f *os.File, off, n int64) {
	_ = syscall.SyncFileRange(int(f.Fd()), off, n, 0x2 /* SYNC_FILE_RANGE_WRITE */)
}

// bootID identifies the running kernel boot: a sidecar that acknowledged
// bytes from the page cache records it, and a different one after a
// restart means those bytes may not have reached the disk.
var bootID = readBootID()

func readBootID() [16]byte {
	var id [16]byte
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return id
	}
	h, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(string(b)), "-", ""))
	if err != nil || len(h) != len(id) {
		return id
	}
	copy(id[:], h)
	return id
}
