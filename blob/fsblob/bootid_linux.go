package fsblob

import (
	"encoding/hex"
	"os"
	"strings"
)

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
