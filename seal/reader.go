package seal

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"phix/suite"
)

// Reader opens a sealed stream. It returns the plaintext of a segment only
// after that segment authenticates, but a stream cut short is detected only
// at its end: treat everything read as untrusted until Read returns io.EOF
// (any other error means the output must be discarded).
type Reader struct {
	src     io.Reader
	h       *Header
	keys    *keys
	keyID   string
	segSize int
	buf     []byte // ciphertext of one segment plus one look-ahead byte
	carry   bool   // buf[0] holds the look-ahead byte of the next segment
	out     []byte // plaintext of the current segment (kept apart from buf so a failed open leaves the ciphertext intact)
	pt      []byte // authenticated plaintext not yet returned
	counter uint32
	nonce   [nonceSize]byte
	done    bool
	err     error
}

// NewReader parses and authenticates the header of a sealed stream, using
// the first identity that holds a key for one of its stanzas. Errors say
// which check failed (see the Err variables) and never include key bytes.
func NewReader(r io.Reader, ids ...Identity) (*Reader, error) {
	br := bufio.NewReaderSize(r, 4096)
	h, k, keyID, err := openHeader(br, ids)
	if err != nil {
		return nil, err
	}
	return &Reader{
		src: br, h: h, keys: k, keyID: keyID, segSize: h.SegmentSize,
		buf: make([]byte, h.SegmentSize+tagSize+1),
		out: make([]byte, 0, h.SegmentSize),
	}, nil
}

// openHeader parses the header, unwraps the data key with ids and
// authenticates the header (commitment, then MAC).
func openHeader(r io.Reader, ids []Identity) (*Header, *keys, string, error) {
	h, dk, k, keyID, err := openHeaderKey(r, ids)
	suite.Wipe(dk)
	return h, k, keyID, err
}

// openHeaderKey is openHeader that also returns the data key (for Rewrap);
// the caller wipes it.
func openHeaderKey(r io.Reader, ids []Identity) (*Header, []byte, *keys, string, error) {
	h, err := ParseHeader(r)
	if err != nil {
		return nil, nil, nil, "", err
	}
	dataKey, keyID, err := unwrapAny(h, ids)
	if err != nil {
		return nil, nil, nil, "", err
	}
	k, err := deriveKeys(h.Suite, dataKey, h.Salt, h.prefix)
	if err != nil {
		suite.Wipe(dataKey)
		return nil, nil, nil, "", err
	}
	if !suite.Equal(k.commitment, h.Commitment) {
		suite.Wipe(dataKey)
		return nil, nil, nil, "", ErrKeyCommitment
	}
	if !suite.Equal(k.headerMAC(h.Suite, h.raw), h.MAC) {
		suite.Wipe(dataKey)
		return nil, nil, nil, "", ErrHeaderAuth
	}
	return h, dataKey, k, keyID, nil
}

// unwrapAny finds a stanza some identity can open. It reports the most
// specific failure when none can.
func unwrapAny(h *Header, ids []Identity) ([]byte, string, error) {
	var firstErr error
	for _, st := range h.Stanzas {
		for _, id := range ids {
			if id == nil || id.StanzaType() != st.Type || !id.HasKeyID(st.KeyID) {
				continue
			}
			aad := stanzaAAD(h.prefix, st.Type, st.KeyID, st.KeyVersion)
			dk, err := id.Unwrap(h.Suite, st.KeyID, st.KeyVersion, st.Wrapped, aad)
			if err == nil && len(dk) == DataKeySize {
				return dk, st.KeyID, nil
			}
			if err == nil {
				err = fmt.Errorf("%w: key %s", ErrUnwrap, st.KeyID)
			}
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr != nil {
		return nil, "", firstErr
	}
	ks := make([]string, 0, len(h.Stanzas))
	for _, st := range h.Stanzas {
		ks = append(ks, fmt.Sprintf("%s v%d", st.KeyID, st.KeyVersion))
	}
	return nil, "", fmt.Errorf("%w (recipients: %s)", ErrNoRecipient, strings.Join(ks, ", "))
}

// Header returns the parsed, authenticated header.
func (r *Reader) Header() *Header { return r.h }

// KeyID returns the id of the recipient key that opened the stream.
func (r *Reader) KeyID() string { return r.keyID }

// Read returns authenticated plaintext. It returns io.EOF only after the last
// segment authenticated and nothing follows it.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.pt) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.err = r.next()
	}
	n := copy(p, r.pt)
	r.pt = r.pt[n:]
	return n, nil
}

// WriteTo streams all remaining plaintext to w (io.Copy uses it).
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.pt) > 0 {
			n, err := w.Write(r.pt)
			total += int64(n)
			r.pt = r.pt[n:]
			if err != nil {
				return total, err
			}
			continue
		}
		if r.err != nil {
			return total, r.err
		}
		if r.done {
			return total, nil
		}
		r.err = r.next()
	}
}

// next reads, authenticates and decrypts one segment into r.pt.
func (r *Reader) next() error {
	full := r.segSize + tagSize
	start := 0
	if r.carry {
		start = 1
	}
	n, err := io.ReadFull(r.src, r.buf[start:full+1])
	n += start
	switch {
	case err == nil:
		// A byte follows this segment, so it is not the last.
		if r.counter == ^uint32(0) {
			return ErrTooLarge
		}
		pt, err := r.open(r.buf[:full], false)
		if err != nil {
			if _, e2 := r.open(r.buf[:full], true); e2 == nil {
				return fmt.Errorf("%w: after segment %d", ErrTrailingData, r.counter)
			}
			return fmt.Errorf("%w: segment %d", ErrSegmentAuth, r.counter)
		}
		r.pt = pt
		r.counter++
		r.buf[0] = r.buf[full]
		r.carry = true
		return nil
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if n < tagSize {
			return fmt.Errorf("%w: after segment %d", ErrTruncated, r.counter)
		}
		pt, err := r.open(r.buf[:n], true)
		if err != nil {
			if n == full {
				if _, e2 := r.open(r.buf[:n], false); e2 == nil {
					return fmt.Errorf("%w: at a segment boundary after segment %d", ErrTruncated, r.counter)
				}
			}
			return fmt.Errorf("%w: segment %d, where the stream ends (corrupt or cut short)", ErrSegmentAuth, r.counter)
		}
		r.pt = pt
		r.done = true
		return nil
	default:
		return err
	}
}

// open authenticates and decrypts one segment into r.out.
func (r *Reader) open(ct []byte, last bool) ([]byte, error) {
	return r.keys.aead.Open(r.out[:0], nonce(&r.nonce, r.h.NoncePrefix, r.counter, last), ct, nil)
}
