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
//
// On long streams a Reader opens segments on worker goroutines (at most
// GOMAXPROCS of them, a bounded number of segments ahead) while the caller's
// goroutine reads the source; plaintext still comes out strictly in order.
// The workers stop by themselves at the end of the stream or at an error;
// call Close to stop them earlier. A Reader is not safe for concurrent use.
type Reader struct {
	h       *Header
	keys    *keys
	keyID   string
	segSize int
	segs    segmentSource
	buf     []byte // sequential path: ciphertext of one segment plus one look-ahead byte
	out     []byte // sequential path: plaintext (kept apart from buf so a failed open leaves the ciphertext intact)
	pt      []byte // authenticated plaintext not yet returned
	nonce   [nonceSize]byte
	mode    pipelineMode
	ring    int       // slots of a pipeline; 0: always sequential
	pipe    *pipeline // nil until the stream proves long enough
	done    bool
	err     error
}

// NewReader parses and authenticates the header of a sealed stream, using
// the first identity that holds a key for one of its stanzas. Errors say
// which check failed (see the Err variables) and never include key bytes.
func NewReader(r io.Reader, ids ...Identity) (*Reader, error) {
	return newReader(r, readerPipelineMode, ids)
}

func newReader(r io.Reader, mode pipelineMode, ids []Identity) (*Reader, error) {
	br := bufio.NewReaderSize(r, 4096)
	h, k, keyID, err := openHeader(br, ids)
	if err != nil {
		return nil, err
	}
	return &Reader{
		h: h, keys: k, keyID: keyID, segSize: h.SegmentSize,
		segs: segmentSource{src: br, full: h.SegmentSize + tagSize},
		buf:  make([]byte, h.SegmentSize+tagSize+1),
		out:  make([]byte, 0, h.SegmentSize),
		mode: mode, ring: pipelineRing(h.SegmentSize, mode),
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
		r.err = r.advance()
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
		r.err = r.advance()
	}
}

// Close stops the Reader's worker goroutines, if any, and makes further
// reads fail with ErrClosed. It does not close the source. Reading to the
// end or to an error stops the workers too; Close is for stopping early.
func (r *Reader) Close() error {
	if r.pipe != nil {
		r.pipe.stop()
		r.pipe = nil
	}
	r.pt, r.buf, r.out = nil, nil, nil
	if r.err == nil {
		r.err = ErrClosed
	}
	return nil
}

// advance makes the next segment's plaintext current, switching to the
// pipeline once the stream has shown a second segment (or at once when
// tests force it): a one-segment stream never starts a goroutine.
func (r *Reader) advance() error {
	if r.pipe == nil && r.ring > 0 && (r.mode == pipelineForce || r.segs.next > 0 && r.pipelinePays()) {
		r.startPipeline()
	}
	if r.pipe != nil {
		return r.pipe.next(r)
	}
	return r.next()
}

// pipelinePays decides once, at segment 1, whether this stream pipelines.
func (r *Reader) pipelinePays() bool {
	if !pipelinePays(r.h.Suite) {
		r.ring = 0
		return false
	}
	return true
}

// next reads, authenticates and decrypts one segment into r.pt on the
// caller's goroutine.
func (r *Reader) next() error {
	ct, idx, last, err := r.segs.read(r.buf)
	if err != nil {
		return err
	}
	pt, err := openSegment(r.keys.aead, r.h.NoncePrefix, &r.nonce, idx, last, r.segs.full, ct, r.out)
	if err != nil {
		return err
	}
	r.pt = pt
	r.done = last
	return nil
}
