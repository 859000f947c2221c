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
	committed int64 // durable size: bytes of the data file that are valid
	sealed    bool
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
	}
	if m.committed < 0 {
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
	return decodeMeta(b)
}

// writeMeta overwrites the slot not used by m.seq-1 and fsyncs.
func writeMeta(path string, m meta) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("fsblob: open metadata: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteAt(m.encode(), int64(m.seq%2)*slotSize); err != nil {
		return fmt.Errorf("fsblob: write metadata: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsblob: sync metadata: %w", err)
	}
	return nil
}
