package seal

import (
	"encoding/binary"
	"fmt"
	"io"

	"phix/suite"
)

// Magic opens every sealed file. The high first byte makes text-mode
// transfers and "is this UTF-8?" sniffers notice it is binary.
const Magic = "\x89PHXSEAL"

// Version is the format version this package writes and reads.
const Version = 1

// Sizes and limits of the format. Parsers refuse anything outside them
// before allocating.
const (
	DefaultSegmentSize = 64 << 10 // plaintext bytes per segment
	MinSegmentSize     = 64
	MaxSegmentSize     = 16 << 20
	MaxRecipients      = 32
	MaxKeyIDLen        = 64
	MaxWrappedLen      = 4096

	DataKeySize     = 32 // the per-file secret; segment keys derive from it
	SaltSize        = 32
	NoncePrefixSize = 7
	CommitmentSize  = 32
	macKeySize      = 32
	tagSize         = 16
	nonceSize       = 12

	// prefixSize covers magic, version, suite, segment size, salt and nonce prefix.
	prefixSize = len(Magic) + 1 + 1 + 4 + SaltSize + NoncePrefixSize
)

// Stanza types: how a recipient's copy of the data key is wrapped.
const (
	// StanzaPublicKey: the suite key wrap (HPKE hybrid or SM2) for a recipient public key.
	StanzaPublicKey byte = 1
	// StanzaKEK: the suite AEAD under a symmetric key-encryption key (a kms KEK).
	StanzaKEK byte = 2
)

// Stanza is one recipient's wrapped copy of the data key.
type Stanza struct {
	Type       byte
	KeyID      string // printable ASCII, 1..MaxKeyIDLen bytes
	KeyVersion uint32
	Wrapped    []byte
}

// Header is the parsed header of a sealed file.
type Header struct {
	Suite       suite.Suite
	SegmentSize int
	Salt        []byte
	NoncePrefix []byte
	Stanzas     []Stanza
	Commitment  []byte
	MAC         []byte

	prefix []byte // the encoded prefix, bound into wraps and the key schedule
	raw    []byte // the encoded header up to and including the commitment
}

func checkSegmentSize(n int) error {
	if n < MinSegmentSize || n > MaxSegmentSize {
		return fmt.Errorf("%w: segment size %d not in %d..%d", ErrHeaderLimit, n, MinSegmentSize, MaxSegmentSize)
	}
	return nil
}

func checkKeyID(id string) error {
	if len(id) == 0 || len(id) > MaxKeyIDLen {
		return fmt.Errorf("%w: key id length %d not in 1..%d", ErrHeaderLimit, len(id), MaxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return fmt.Errorf("%w: key id is not printable ASCII", ErrHeaderLimit)
		}
	}
	return nil
}

func encodePrefix(s suite.Suite, segSize int, salt, noncePrefix []byte) []byte {
	b := make([]byte, 0, prefixSize)
	b = append(b, Magic...)
	b = append(b, Version, s.Wire())
	b = binary.BigEndian.AppendUint32(b, uint32(segSize))
	b = append(b, salt...)
	return append(b, noncePrefix...)
}

// stanzaAAD is what a wrapped key is bound to: the header prefix (so a stanza
// cannot be moved to another file) and the stanza's own addressing.
func stanzaAAD(prefix []byte, typ byte, keyID string, version uint32) []byte {
	b := make([]byte, 0, 32+len(prefix)+len(keyID)+6)
	b = append(b, "phix-seal v1 wrap\x00"...)
	b = append(b, prefix...)
	b = append(b, typ, byte(len(keyID)))
	b = append(b, keyID...)
	return binary.BigEndian.AppendUint32(b, version)
}

func appendStanza(b []byte, st Stanza) []byte {
	b = append(b, st.Type, byte(len(st.KeyID)))
	b = append(b, st.KeyID...)
	b = binary.BigEndian.AppendUint32(b, st.KeyVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(st.Wrapped)))
	return append(b, st.Wrapped...)
}

// headerReader reads exactly the bytes the parser asks for and keeps a copy
// of everything read, for the MAC.
type headerReader struct {
	r   io.Reader
	raw []byte
}

func (h *headerReader) next(n int) ([]byte, error) {
	start := len(h.raw)
	h.raw = append(h.raw, make([]byte, n)...)
	if got, err := io.ReadFull(h.r, h.raw[start:]); err != nil {
		h.raw = h.raw[:start+got]
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, ErrHeaderTruncated
		}
		return nil, fmt.Errorf("seal: reading header: %w", err)
	}
	return h.raw[start:], nil
}

// ParseHeader reads and checks the structure of a header from r (it does not
// authenticate it: that needs the data key). It reads exactly the header's
// bytes and no more.
func ParseHeader(r io.Reader) (*Header, error) {
	hr := &headerReader{r: r}
	p, err := hr.next(prefixSize)
	if err != nil {
		if err == ErrHeaderTruncated && len(hr.raw) > 0 {
			// A short file that does not even start like one is "not sealed".
			if string(hr.raw[:min(len(hr.raw), len(Magic))]) != Magic[:min(len(hr.raw), len(Magic))] {
				return nil, ErrBadMagic
			}
		}
		return nil, err
	}
	if string(p[:len(Magic)]) != Magic {
		return nil, ErrBadMagic
	}
	if p[8] != Version {
		return nil, fmt.Errorf("%w: %d", ErrVersion, p[8])
	}
	s, err := suite.FromWire(p[9])
	if err != nil {
		return nil, fmt.Errorf("%w: 0x%02x", ErrUnknownSuite, p[9])
	}
	h := &Header{Suite: s}
	h.SegmentSize = int(binary.BigEndian.Uint32(p[10:14]))
	if err := checkSegmentSize(h.SegmentSize); err != nil {
		return nil, err
	}
	h.Salt = p[14 : 14+SaltSize]
	h.NoncePrefix = p[14+SaltSize : prefixSize]
	n, err := hr.next(1)
	if err != nil {
		return nil, err
	}
	if n[0] == 0 || int(n[0]) > MaxRecipients {
		return nil, fmt.Errorf("%w: %d recipients not in 1..%d", ErrHeaderLimit, n[0], MaxRecipients)
	}
	for range int(n[0]) {
		st, err := readStanza(hr)
		if err != nil {
			return nil, err
		}
		h.Stanzas = append(h.Stanzas, st)
	}
	c, err := hr.next(CommitmentSize)
	if err != nil {
		return nil, err
	}
	h.Commitment = c
	h.raw = hr.raw
	m, err := hr.next(s.MACSize())
	if err != nil {
		return nil, err
	}
	h.MAC = m
	// Slices above point into hr.raw, which may have moved as it grew:
	// re-slice from the final buffer.
	h.reslice(hr.raw)
	return h, nil
}

func readStanza(hr *headerReader) (Stanza, error) {
	var st Stanza
	b, err := hr.next(2)
	if err != nil {
		return st, err
	}
	st.Type = b[0]
	if st.Type != StanzaPublicKey && st.Type != StanzaKEK {
		return st, fmt.Errorf("%w: unknown stanza type %d", ErrHeaderLimit, st.Type)
	}
	id, err := hr.next(int(b[1]))
	if err != nil {
		return st, err
	}
	st.KeyID = string(id)
	if err := checkKeyID(st.KeyID); err != nil {
		return st, err
	}
	b, err = hr.next(6)
	if err != nil {
		return st, err
	}
	st.KeyVersion = binary.BigEndian.Uint32(b[:4])
	wl := int(binary.BigEndian.Uint16(b[4:6]))
	if wl == 0 || wl > MaxWrappedLen {
		return st, fmt.Errorf("%w: wrapped key length %d not in 1..%d", ErrHeaderLimit, wl, MaxWrappedLen)
	}
	w, err := hr.next(wl)
	if err != nil {
		return st, err
	}
	st.Wrapped = append([]byte(nil), w...)
	return st, nil
}

func (h *Header) reslice(raw []byte) {
	h.prefix = raw[:prefixSize]
	h.Salt = raw[14 : 14+SaltSize]
	h.NoncePrefix = raw[14+SaltSize : prefixSize]
	end := len(raw) - h.Suite.MACSize()
	h.raw = raw[:end]
	h.MAC = raw[end:]
	h.Commitment = raw[end-CommitmentSize : end]
}
