package seal

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"

	"phix/suite"
)

// party is a test recipient: a suite key pair.
type party struct {
	s    suite.Suite
	priv suite.RecipientKey
}

func newParty(t testing.TB, id suite.ID) party {
	t.Helper()
	s, err := suite.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.GenerateRecipientKey()
	if err != nil {
		t.Fatal(err)
	}
	return party{s, k}
}

func (p party) recipient() Recipient { return PublicKeyRecipient(p.priv.Public(), 1) }
func (p party) identity() Identity   { return PrivateKeyIdentity(p.priv, 0) }

func sealBytes(t testing.TB, opts Options, pt []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Odd-sized writes exercise the buffering.
	for rest := pt; len(rest) > 0; {
		n := min(len(rest), 1+len(rest)%7919)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openBytes(sealed []byte, ids ...Identity) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(sealed), ids...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestRoundTrip(t *testing.T) {
	const seg = 256
	for _, id := range suite.IDs() {
		p := newParty(t, id)
		for _, n := range []int{0, 1, seg - 1, seg, seg + 1, 2 * seg, 3*seg + 17, 50 * seg} {
			t.Run(fmt.Sprintf("%s/%d", id, n), func(t *testing.T) {
				pt := randBytes(n)
				sealed := sealBytes(t, Options{Suite: p.s, Recipients: []Recipient{p.recipient()}, SegmentSize: seg}, pt)
				segs := max(1, (n+seg-1)/seg)
				if n > 0 && n%seg == 0 {
					segs = n / seg
				}
				hdr := headerLen(t, sealed)
				if want := hdr + n + segs*tagSize; len(sealed) != want {
					t.Fatalf("sealed size %d, want %d", len(sealed), want)
				}
				got, err := openBytes(sealed, p.identity())
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("open: %v (equal=%v)", err, bytes.Equal(got, pt))
				}
				// Byte-at-a-time reads from a slow source.
				r, err := NewReader(iotest.OneByteReader(bytes.NewReader(sealed)), p.identity())
				if err != nil {
					t.Fatal(err)
				}
				got, err = io.ReadAll(iotest.OneByteReader(r))
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("slow open: %v", err)
				}
			})
		}
	}
}

func headerLen(t testing.TB, sealed []byte) int {
	t.Helper()
	r := bytes.NewReader(sealed)
	if _, err := ParseHeader(r); err != nil {
		t.Fatal(err)
	}
	return len(sealed) - r.Len()
}

func TestDefaultSegmentSizeAndWriteTo(t *testing.T) {
	p := newParty(t, suite.Intl)
	pt := randBytes(3*DefaultSegmentSize + 5)
	sealed := sealBytes(t, Options{Suite: p.s, Recipients: []Recipient{p.recipient()}}, pt)
	r, err := NewReader(bytes.NewReader(sealed), p.identity())
	if err != nil {
		t.Fatal(err)
	}
	if r.Header().SegmentSize != DefaultSegmentSize || r.KeyID() != p.priv.KeyID() {
		t.Fatal("header fields")
	}
	var out bytes.Buffer
	if _, err := r.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), pt) {
		t.Fatalf("WriteTo: %v", err)
	}
}

func TestMultipleRecipientsAndKEK(t *testing.T) {
	for _, id := range suite.IDs() {
		t.Run(string(id), func(t *testing.T) {
			a, b := newParty(t, id), newParty(t, id)
			kek := randBytes(a.s.AEADKeySize())
			keks := map[string]map[uint32][]byte{"hospital-a/kek": {3: kek}}
			kekID := KEKIdentity(func(id string) bool { return keks[id] != nil }, func(id string, v uint32) ([]byte, error) {
				k, ok := keks[id][v]
				if !ok {
					return nil, fmt.Errorf("%w: %s v%d", ErrKeyVersion, id, v)
				}
				return k, nil
			})
			pt := randBytes(1000)
			sealed := sealBytes(t, Options{Suite: a.s, SegmentSize: 128, Recipients: []Recipient{
				a.recipient(), b.recipient(), KEKRecipient("hospital-a/kek", 3, kek)}}, pt)
			for name, ident := range map[string]Identity{"a": a.identity(), "b": b.identity(), "kek": kekID} {
				got, err := openBytes(sealed, ident)
				if err != nil || !bytes.Equal(got, pt) {
					t.Errorf("%s: %v", name, err)
				}
			}
			// The KEK at another version is a key-version error.
			keks["hospital-a/kek"] = map[uint32][]byte{4: kek}
			if _, err := openBytes(sealed, kekID); !errors.Is(err, ErrKeyVersion) {
				t.Errorf("missing KEK version: %v", err)
			}
			// A private-key identity pinned to another version.
			if _, err := openBytes(sealed, PrivateKeyIdentity(a.priv, 2)); !errors.Is(err, ErrKeyVersion) {
				t.Errorf("pinned version: %v", err)
			}
		})
	}
}

func TestOptionsErrors(t *testing.T) {
	p := newParty(t, suite.GM)
	intl := newParty(t, suite.Intl)
	for name, o := range map[string]Options{
		"no suite":        {Recipients: []Recipient{p.recipient()}},
		"no recipients":   {Suite: p.s},
		"tiny segments":   {Suite: p.s, Recipients: []Recipient{p.recipient()}, SegmentSize: 8},
		"huge segments":   {Suite: p.s, Recipients: []Recipient{p.recipient()}, SegmentSize: MaxSegmentSize + 1},
		"cross-suite key": {Suite: p.s, Recipients: []Recipient{intl.recipient()}},
		"bad KEK size":    {Suite: p.s, Recipients: []Recipient{KEKRecipient("k", 1, make([]byte, 5))}},
		"bad key id":      {Suite: p.s, Recipients: []Recipient{KEKRecipient("has space", 1, make([]byte, 16))}},
		"too many":        {Suite: p.s, Recipients: make([]Recipient, MaxRecipients+1)},
	} {
		if _, err := NewWriter(io.Discard, o); err == nil || Code(err) == "" {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	w, _ := NewWriter(io.Discard, Options{Suite: p.s, Recipients: []Recipient{p.recipient()}})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}
