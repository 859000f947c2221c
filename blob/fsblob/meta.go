package fsblob

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"

	"phix/blob"
)

// The sidecar ("meta") file holds two fixed 64-byte slots; each write goes to
// the slot the previous one did not use, so a torn write leaves the other,
// older slot intact. The valid slot with the highest sequence number wins.
const (
	slotSize  = 64
	metaMagic = 0x70686978626c6f62 // "phixblob"
)

type meta struct {
	seq       uint64
	created   time.Time
	committed int64 // acknowledged size: bytes of the data file that are valid
	sealed    bool
	// synced is the size known to be on stable storage when boot is set:
	// bytes [synced, committed) were acknowledged from the page cache
	// during the boot whose id is boot. A zero boot means all committed
	// bytes are synced (sidecars written before this field existed, sealed
	// objects, per-append sync).
	synced int64
	boot   [16]byte
}

// effective returns m as it stands during the current boot: if the machine
// restarted since bytes were acknowledged unsynced, they may be lost or
// garbage, so the object rolls back to its synced size.
func (m meta) effective() meta {
	if m.boot != ([16]byte{}) && m.boot != bootID {
		m.committed, m.boot = m.synced, [16]byte{}
	}
	return m
}

func (m meta) encode() []byte {
	b := make([]byte, slotSize)
	binary.BigEndian.PutUint64(b[0:], metaMagic)
	binary.BigEndian.PutUint64(b[8:], m.seq)
	binary.BigEndian.PutUint64(b[16:], uint64(m.created.UnixNano()))
	binary.BigEndian.PutUint64(b[24:], uint64(m.committed))
	if m.sealed {
		b[32] = 1
	}
	binary.BigEndian.PutUint64(b[36:], uint64(m.synced))
	copy(b[44:60], m.boot[:])
	binary.BigEndian.PutUint32(b[60:], crc32.ChecksumIEEE(b[:60]))
	return b
}

func decodeSlot(b []byte) (meta, bool) {
	if len(b) != slotSize || binary.BigEndian.Uint64(b) != metaMagic ||
		binary.BigEndian.Uint32(b[60:]) != crc32.ChecksumIEEE(b[:60]) || b[32] > 1 {
		return meta{}, false
	}
	m := meta{
		seq:       binary.BigEndian.Uint64(b[8:]),
		created:   time.Unix(0, int64(binary.BigEndian.Uint64(b[16:]))).UTC(),
		committed: int64(binary.BigEndian.Uint64(b[24:])),
		sealed:    b[32] == 1,
		synced:    int64(binary.BigEndian.Uint64(b[36:])),
	}
	copy(m.boot[:], b[44:60])
	if m.committed < 0 || m.synced < 0 || m.synced > m.committed {
		return meta{}, false
	}
	return m, true
}

// decodeMeta parses a sidecar's bytes.
func decodeMeta(b []byte) (meta, error) {
	var best meta
	ok := false
	for i := 0; i+slotSize <= len(b) && i < 2*slotSize; i += slotSize {
		if m, valid := decodeSlot(b[i : i+slotSize]); valid && (!ok || m.seq > best.seq) {
			best, ok = m, true
		}
	}
	if !ok {
		return meta{}, fmt.Errorf("%w: no valid metadata slot", blob.ErrCorrupt)
	}
	return best, nil
}

func readMeta(path string) (meta, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return meta{}, blob.ErrNotFound
		}
		return meta{}, fmt.Errorf("fsblob: open metadata: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 2*slotSize))
	if err != nil {
		return meta{}, fmt.Errorf("fsblob: read metadata: %w", err)
	}
	m, err := decodeMeta(b)
	return m.effective(), err
}

// writeMeta overwrites the slot not used by m.seq-1 and fsyncs.
func writeMeta(path string, m meta) error { return writeMetaSync(path, m, true) }

// writeMetaSync is writeMeta with the fsync optional: a sidecar recording
// unsynced bytes (boot set) needs none, since a power loss rolls it back to
// its synced size whichever slot survives.
func writeMetaSync(path string, m meta, sync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("fsblob: open metadata: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteAt(m.encode(), int64(m.seq%2)*slotSize); err != nil {
		return fmt.Errorf("fsblob: write metadata: %w", err)
	}
	if !sync {
		return nil
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsblob: sync metadata: %w", err)
	}
	return nil
}
