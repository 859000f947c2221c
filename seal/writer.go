package seal

import (
	"crypto/rand"
	"fmt"
	"io"
	"math"

	"phix/suite"
)

// Options configure a Writer.
type Options struct {
	// Suite is the algorithm suite (required).
	Suite suite.Suite
	// Recipients receive a wrapped copy of the data key (1..MaxRecipients).
	Recipients []Recipient
	// SegmentSize is the plaintext bytes per segment; 0 means DefaultSegmentSize.
	SegmentSize int

	// Fixed inputs for deterministic test vectors only (this package's tests).
	dataKey, salt, noncePrefix []byte
}

// Writer seals a stream. It buffers at most one segment (two with ReadFrom).
type Writer struct {
	w       io.Writer
	s       suite.Suite
	keys    *keys
	prefix  []byte
	segSize int
	buf     []byte // plaintext of the pending segment, cap segSize
	spare   []byte // ReadFrom only: receives the bytes after a full pending segment
	out     []byte // sealed segment, cap segSize+tag
	counter uint32
	nonce   [nonceSize]byte
	err     error
	closed  bool
}

// NewWriter writes the header of a sealed file to w and returns a Writer for
// the plaintext. Close must be called to seal the last segment; without it the
// file is truncated and will not open.
func NewWriter(w io.Writer, opts Options) (*Writer, error) {
	s := opts.Suite
	if s == nil {
		return nil, fmt.Errorf("%w: no suite", ErrOptions)
	}
	segSize := opts.SegmentSize
	if segSize == 0 {
		segSize = DefaultSegmentSize
	}
	if err := checkSegmentSize(segSize); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	dataKey, err := fixedOrRandom(opts.dataKey, DataKeySize)
	if err != nil {
		return nil, err
	}
	defer suite.Wipe(dataKey)
	salt, err := fixedOrRandom(opts.salt, SaltSize)
	if err != nil {
		return nil, err
	}
	np, err := fixedOrRandom(opts.noncePrefix, NoncePrefixSize)
	if err != nil {
		return nil, err
	}
	hdr, k, err := buildHeader(s, segSize, salt, np, dataKey, opts.Recipients)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, err
	}
	return &Writer{
		w: w, s: s, keys: k, prefix: np, segSize: segSize,
		buf: make([]byte, 0, segSize),
		out: make([]byte, 0, segSize+tagSize),
	}, nil
}

func fixedOrRandom(fixed []byte, n int) ([]byte, error) {
	b := make([]byte, n)
	if fixed != nil {
		if len(fixed) != n {
			return nil, fmt.Errorf("%w: fixed input of %d bytes, need %d", ErrOptions, len(fixed), n)
		}
		copy(b, fixed)
		return b, nil
	}
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("seal: random: %w", err)
	}
	return b, nil
}

// Write seals p. A full segment is held back until more data or Close shows
// whether it is the last.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, ErrClosed
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == w.segSize {
			// More data follows, so the pending segment is not the last.
			if err := w.flush(w.buf, false); err != nil {
				return n, err
			}
			w.buf = w.buf[:0]
		}
		if len(w.buf) == 0 && len(p) > w.segSize {
			// Seal straight from p: no copy into buf.
			if err := w.flush(p[:w.segSize], false); err != nil {
				return n, err
			}
			p, n = p[w.segSize:], n+w.segSize
			continue
		}
		c := copy(w.buf[len(w.buf):w.segSize], p)
		w.buf = w.buf[:len(w.buf)+c]
		p, n = p[c:], n+c
	}
	return n, nil
}

// ReadFrom seals everything src yields up to io.EOF, reading straight into
// the segment buffer instead of through io.Copy's intermediate buffer (io.Copy
// uses it). It does not Close. It holds one more segment buffer than Write:
// a full segment is sealed only once a byte shows that it is not the last.
func (w *Writer) ReadFrom(src io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, ErrClosed
	}
	var total int64
	for {
		var n int
		var err error
		if len(w.buf) == w.segSize {
			if w.spare == nil {
				w.spare = make([]byte, 0, w.segSize)
			}
			n, err = src.Read(w.spare[:w.segSize])
			total += int64(n)
			if n > 0 {
				// More data follows, so the pending segment is not the last.
				if ferr := w.flush(w.buf, false); ferr != nil {
					return total, ferr
				}
				w.buf, w.spare = w.spare[:n], w.buf[:0]
			}
		} else {
			n, err = src.Read(w.buf[len(w.buf):w.segSize])
			w.buf = w.buf[:len(w.buf)+n]
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (w *Writer) flush(pt []byte, last bool) error {
	if !last && w.counter == math.MaxUint32 {
		w.err = ErrTooLarge
		return w.err
	}
	ct := w.keys.aead.Seal(w.out[:0], nonce(&w.nonce, w.prefix, w.counter, last), pt, nil)
	if _, err := w.w.Write(ct); err != nil {
		w.err = err
		return err
	}
	w.counter++
	return nil
}

// Close seals the last segment (possibly empty). It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		if w.err == ErrClosed {
			return nil
		}
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if err := w.flush(w.buf, true); err != nil {
		return err
	}
	w.err = ErrClosed
	return nil
}

// buildHeader wraps dataKey for every recipient and returns the encoded,
// authenticated header and the derived keys.
func buildHeader(s suite.Suite, segSize int, salt, np, dataKey []byte, recipients []Recipient) ([]byte, *keys, error) {
	if len(recipients) == 0 || len(recipients) > MaxRecipients {
		return nil, nil, fmt.Errorf("%w: %d recipients, need 1..%d", ErrOptions, len(recipients), MaxRecipients)
	}
	prefix := encodePrefix(s, segSize, salt, np)
	hdr := append([]byte(nil), prefix...)
	hdr = append(hdr, byte(len(recipients)))
	for _, r := range recipients {
		if r == nil {
			return nil, nil, fmt.Errorf("%w: nil recipient", ErrOptions)
		}
		st := Stanza{Type: r.StanzaType(), KeyID: r.KeyID(), KeyVersion: r.KeyVersion()}
		if err := checkKeyID(st.KeyID); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrOptions, err)
		}
		var err error
		st.Wrapped, err = r.Wrap(s, dataKey, stanzaAAD(prefix, st.Type, st.KeyID, st.KeyVersion))
		if err != nil {
			return nil, nil, err
		}
		if len(st.Wrapped) == 0 || len(st.Wrapped) > MaxWrappedLen {
			return nil, nil, fmt.Errorf("%w: wrapped key for %s is %d bytes", ErrOptions, st.KeyID, len(st.Wrapped))
		}
		hdr = appendStanza(hdr, st)
	}
	k, err := deriveKeys(s, dataKey, salt, prefix)
	if err != nil {
		return nil, nil, err
	}
	hdr = append(hdr, k.commitment...)
	return append(hdr, k.headerMAC(s, hdr)...), k, nil
}
