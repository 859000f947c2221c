package seal

import (
	"crypto/cipher"
	"fmt"
	"io"
	"math"
)

// segmentSource cuts the body of a sealed stream into segments. It is the
// only place that decides whether a segment is the last: a segment is last
// exactly when no byte follows it. It runs on the consumer's goroutine only,
// for the sequential and the pipelined reader alike.
type segmentSource struct {
	src      io.Reader
	full     int    // sealed size of a full segment (segment size + tag)
	next     uint32 // index of the next segment
	carry    byte   // the look-ahead byte: first byte of segment next
	hasCarry bool
	end      bool // the last segment (or an error) has been read
}

// read reads the next sealed segment into buf (cap full+1) and returns its
// bytes, its index and whether it is the last. Errors are the stream's
// (I/O errors pass through unchanged), ErrTruncated or ErrTooLarge; after the
// last segment or an error, end is set and read must not be called again.
func (s *segmentSource) read(buf []byte) (ct []byte, idx uint32, last bool, err error) {
	start := 0
	if s.hasCarry {
		buf[0] = s.carry
		start = 1
	}
	n, err := io.ReadFull(s.src, buf[start:s.full+1])
	n += start
	idx = s.next
	switch {
	case err == nil:
		// A byte follows this segment, so it is not the last.
		if idx == math.MaxUint32 {
			s.end = true
			return nil, idx, false, ErrTooLarge
		}
		s.carry, s.hasCarry = buf[s.full], true
		s.next++
		return buf[:s.full], idx, false, nil
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		s.end = true
		if n < tagSize {
			return nil, idx, true, fmt.Errorf("%w: after segment %d", ErrTruncated, idx)
		}
		return buf[:n], idx, true, nil
	default:
		s.end = true
		return nil, idx, false, err
	}
}

// openSegment authenticates and decrypts sealed segment idx into dst (cap
// segment size), with the last flag its position implies. It never touches
// ct, so when the open fails the other flag can be tried to say what went
// wrong: a last segment followed by data, or a stream cut at a segment
// boundary. nb is the caller's nonce scratch (one per goroutine).
func openSegment(a cipher.AEAD, prefix []byte, nb *[nonceSize]byte, idx uint32, last bool, full int, ct, dst []byte) ([]byte, error) {
	pt, err := a.Open(dst[:0], nonce(nb, prefix, idx, last), ct, nil)
	if err == nil {
		return pt, nil
	}
	if !last {
		if _, e2 := a.Open(dst[:0], nonce(nb, prefix, idx, true), ct, nil); e2 == nil {
			return nil, fmt.Errorf("%w: after segment %d", ErrTrailingData, idx)
		}
		return nil, fmt.Errorf("%w: segment %d", ErrSegmentAuth, idx)
	}
	if len(ct) == full {
		if _, e2 := a.Open(dst[:0], nonce(nb, prefix, idx, false), ct, nil); e2 == nil {
			return nil, fmt.Errorf("%w: at a segment boundary after segment %d", ErrTruncated, idx)
		}
	}
	return nil, fmt.Errorf("%w: segment %d, where the stream ends (corrupt or cut short)", ErrSegmentAuth, idx)
}
