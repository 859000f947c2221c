package kms

import (
	"encoding/binary"
)

// Blob is a self-describing wrapped key: it names the suite, the backend, the
// KEK and its version and the key it wraps, so that any version still allowed
// can unwrap it after rotations, and a blob cannot be passed off as another
// key's (the header is the associated data of the wrap).
//
// Encoding (all integers big-endian):
//
//	"PXKW" 0x01                 magic and format version
//	u8  len, suite id           "intl" | "gm"
//	u8  len, backend name       "local" | "pkcs11"
//	u16 len, KEK id             "<hospital>/<purpose>"
//	u32 KEK version             >= 1
//	u16 len, key id             the wrapped key's id
//	u32 len, payload            the backend's ciphertext
//
// Nothing may follow the payload.
type Blob struct {
	Suite      string
	Backend    string
	KEK        string
	KEKVersion int
	KeyID      string
	Payload    []byte
}

const (
	blobMagic   = "PXKW"
	blobFormat  = 0x01
	maxPayload  = 1 << 20 // wrapped keys are small; refuse absurd lengths early
	maxKEKIDLen = 256
	maxKeyIDLen = 1024
)

// Header returns the encoded header: everything but the payload length and
// payload. It is the associated data the backend binds the payload to.
func (b *Blob) Header() ([]byte, error) {
	if len(b.Suite) == 0 || len(b.Suite) > 255 || len(b.Backend) == 0 || len(b.Backend) > 255 ||
		len(b.KEK) == 0 || len(b.KEK) > maxKEKIDLen || len(b.KeyID) > maxKeyIDLen ||
		b.KEKVersion < 1 || int64(b.KEKVersion) > 0xFFFFFFFF {
		return nil, Errorf(CodeBadInput, "blob header field out of range")
	}
	h := make([]byte, 0, 16+len(b.Suite)+len(b.Backend)+len(b.KEK)+len(b.KeyID))
	h = append(h, blobMagic...)
	h = append(h, blobFormat)
	h = append(h, byte(len(b.Suite)))
	h = append(h, b.Suite...)
	h = append(h, byte(len(b.Backend)))
	h = append(h, b.Backend...)
	h = binary.BigEndian.AppendUint16(h, uint16(len(b.KEK)))
	h = append(h, b.KEK...)
	h = binary.BigEndian.AppendUint32(h, uint32(b.KEKVersion))
	h = binary.BigEndian.AppendUint16(h, uint16(len(b.KeyID)))
	h = append(h, b.KeyID...)
	return h, nil
}

// Marshal encodes the blob.
func (b *Blob) Marshal() ([]byte, error) {
	h, err := b.Header()
	if err != nil {
		return nil, err
	}
	if len(b.Payload) > maxPayload {
		return nil, Errorf(CodeBadInput, "blob payload too large")
	}
	out := binary.BigEndian.AppendUint32(h, uint32(len(b.Payload)))
	return append(out, b.Payload...), nil
}

// ParseBlob decodes a blob. Any truncation, trailing data or out-of-range
// field gives ErrMalformedBlob; it never panics.
func ParseBlob(data []byte) (*Blob, error) {
	r := reader{b: data}
	if string(r.next(len(blobMagic))) != blobMagic {
		return nil, Errorf(CodeMalformedBlob, "wrapped key: bad magic")
	}
	if v := r.u8(); v != blobFormat {
		if r.err {
			return nil, Errorf(CodeMalformedBlob, "wrapped key: truncated")
		}
		return nil, Errorf(CodeMalformedBlob, "wrapped key: unknown format version %d", v)
	}
	b := &Blob{}
	b.Suite = string(r.next(int(r.u8())))
	b.Backend = string(r.next(int(r.u8())))
	b.KEK = string(r.next(int(r.u16())))
	b.KEKVersion = int(r.u32())
	b.KeyID = string(r.next(int(r.u16())))
	n := r.u32()
	if r.err {
		return nil, Errorf(CodeMalformedBlob, "wrapped key: truncated header")
	}
	if n > maxPayload {
		return nil, Errorf(CodeMalformedBlob, "wrapped key: payload length out of range")
	}
	b.Payload = append([]byte(nil), r.next(int(n))...)
	switch {
	case r.err:
		return nil, Errorf(CodeMalformedBlob, "wrapped key: truncated payload")
	case len(r.b) != 0:
		return nil, Errorf(CodeMalformedBlob, "wrapped key: trailing data")
	case b.Suite == "" || b.Backend == "" || b.KEK == "" || len(b.KEK) > maxKEKIDLen ||
		len(b.KeyID) > maxKeyIDLen || b.KEKVersion < 1 || len(b.Payload) == 0:
		return nil, Errorf(CodeMalformedBlob, "wrapped key: empty or out-of-range field")
	}
	return b, nil
}

// reader is a bounds-checked cursor; after the first short read every read
// returns zero values and err stays set.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) next(n int) []byte {
	if r.err || n < 0 || n > len(r.b) {
		r.err = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() uint8 {
	b := r.next(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16() uint16 {
	b := r.next(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *reader) u32() uint32 {
	b := r.next(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}
