package seal

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"phix/suite"
)

const tseg = 128

// fixture is a sealed file with 4 segments (the last one short) and its parts.
type fixture struct {
	p      party
	pt     []byte
	sealed []byte
	hdr    int
}

func newFixture(t *testing.T, id suite.ID, n int) fixture {
	p := newParty(t, id)
	pt := randBytes(n)
	sealed := sealBytes(t, Options{Suite: p.s, Recipients: []Recipient{p.recipient()}, SegmentSize: tseg}, pt)
	return fixture{p, pt, sealed, headerLen(t, sealed)}
}

// segment returns the bounds of sealed segment i.
func (f fixture) segment(i int) (int, int) {
	start := f.hdr + i*(tseg+tagSize)
	return start, min(start+tseg+tagSize, len(f.sealed))
}

func (f fixture) segmentBytes(i int) []byte {
	s, e := f.segment(i)
	return f.sealed[s:e]
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// readAll reads as far as the reader lets it and returns what it released.
func readAll(sealed []byte, id ...Identity) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(sealed), id...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func forSuites(t *testing.T, fn func(t *testing.T, id suite.ID)) {
	for _, id := range suite.IDs() {
		t.Run(string(id), func(t *testing.T) { fn(t, id) })
	}
}

func TestTamperHeaderBitFlip(t *testing.T) {
	forSuites(t, func(t *testing.T, id suite.ID) {
		f := newFixture(t, id, 3*tseg+10)
		for i := 0; i < f.hdr; i++ {
			bad := bytes.Clone(f.sealed)
			bad[i] ^= 0x04
			if got, err := readAll(bad, f.p.identity()); err == nil || len(got) > 0 {
				t.Fatalf("header byte %d flipped: err=%v released=%d", i, err, len(got))
			}
		}
	})
}

func TestTamperBodyBitFlip(t *testing.T) {
	forSuites(t, func(t *testing.T, id suite.ID) {
		f := newFixture(t, id, 3*tseg+10)
		for i := f.hdr; i < len(f.sealed); i += 7 {
			bad := bytes.Clone(f.sealed)
			bad[i] ^= 0x80
			got, err := readAll(bad, f.p.identity())
			if !errors.Is(err, ErrSegmentAuth) {
				t.Fatalf("body byte %d flipped: err=%v", i, err)
			}
			// Only whole segments before the damaged one were released.
			k := (i - f.hdr) / (tseg + tagSize)
			if !bytes.Equal(got, f.pt[:k*tseg]) {
				t.Fatalf("byte %d: released %d bytes, want %d", i, len(got), k*tseg)
			}
		}
	})
}

func TestTamperSegments(t *testing.T) {
	forSuites(t, func(t *testing.T, id suite.ID) {
		f := newFixture(t, id, 3*tseg+10) // segments 0,1,2 full, 3 short and last
		h := f.sealed[:f.hdr]
		s := []([]byte){f.segmentBytes(0), f.segmentBytes(1), f.segmentBytes(2), f.segmentBytes(3)}
		for _, tc := range []struct {
			name string
			data []byte
			want error
		}{
			{"reordered", join(h, s[1], s[0], s[2], s[3]), ErrSegmentAuth},
			{"dropped", join(h, s[0], s[2], s[3]), ErrSegmentAuth},
			{"duplicated", join(h, s[0], s[1], s[1], s[2], s[3]), ErrSegmentAuth},
			{"last moved", join(h, s[0], s[1], s[3]), ErrSegmentAuth},
			{"truncated at boundary", join(h, s[0], s[1], s[2]), ErrTruncated},
			{"truncated to header", join(h), ErrTruncated},
			{"truncated inside tag", join(h, s[0], s[1], s[2], s[3][:5]), ErrTruncated},
			{"truncated inside last", join(h, s[0], s[1], s[2], s[3][:len(s[3])-1]), ErrSegmentAuth},
			{"extended by bytes", join(h, s[0], s[1], s[2], s[3], []byte("xx")), ErrSegmentAuth},
			{"extended by a segment", join(h, s[0], s[1], s[2], s[3], s[0]), ErrSegmentAuth},
		} {
			if _, err := readAll(tc.data, f.p.identity()); !errors.Is(err, tc.want) {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
			}
		}
	})
}

// When the last segment is full, extension is recognised as such.
func TestTamperExtensionAfterFullLastSegment(t *testing.T) {
	forSuites(t, func(t *testing.T, id suite.ID) {
		f := newFixture(t, id, 2*tseg)
		for _, extra := range [][]byte{{0}, f.segmentBytes(0)} {
			if _, err := readAll(join(f.sealed, extra), f.p.identity()); !errors.Is(err, ErrTrailingData) {
				t.Errorf("extension by %d bytes: %v", len(extra), err)
			}
		}
		// And truncating the full last segment away is truncation.
		if _, err := readAll(f.sealed[:len(f.sealed)-(tseg+tagSize)], f.p.identity()); !errors.Is(err, ErrTruncated) {
			t.Errorf("truncated: %v", err)
		}
	})
}

// Splicing a segment from another file sealed for the same recipient fails.
func TestTamperSpliceFromOtherFile(t *testing.T) {
	forSuites(t, func(t *testing.T, id suite.ID) {
		f := newFixture(t, id, 3*tseg)
		other := sealBytes(t, Options{Suite: f.p.s, Recipients: []Recipient{f.p.recipient()}, SegmentSize: tseg}, f.pt)
		o := fixture{f.p, f.pt, other, headerLen(t, other)}
		spliced := join(f.sealed[:f.hdr], f.segmentBytes(0), o.segmentBytes(1), f.segmentBytes(2))
		if _, err := readAll(spliced, f.p.identity()); !errors.Is(err, ErrSegmentAuth) {
			t.Errorf("spliced: %v", err)
		}
		// Another file's header on this body.
		if _, err := readAll(join(other[:o.hdr], f.sealed[f.hdr:]), f.p.identity()); !errors.Is(err, ErrSegmentAuth) {
			t.Errorf("swapped header: %v", err)
		}
	})
}

// anyID claims every key id, so the reader tries its key on every stanza.
type anyID struct{ Identity }

func (anyID) HasKeyID(string) bool { return true }

func TestWrongKey(t *testing.T) {
	forSuites(t, func(t *testing.T, id suite.ID) {
		f := newFixture(t, id, 100)
		stranger := newParty(t, id)
		if _, err := readAll(f.sealed, stranger.identity()); !errors.Is(err, ErrNoRecipient) {
			t.Errorf("wrong recipient: %v", err)
		}
		if _, err := readAll(f.sealed, anyID{stranger.identity()}); !errors.Is(err, ErrUnwrap) {
			t.Errorf("wrong key claiming the id: %v", err)
		}
		if _, err := readAll(f.sealed); !errors.Is(err, ErrNoRecipient) {
			t.Errorf("no identities: %v", err)
		}
	})
}

// A sender who wraps different data keys for two recipients cannot make the
// file open for the second: the key commitment refuses it.
func TestKeyCommitment(t *testing.T) {
	forSuites(t, func(t *testing.T, id suite.ID) {
		a, b := newParty(t, id), newParty(t, id)
		var buf bytes.Buffer
		w, err := NewWriter(&buf, Options{Suite: a.s, SegmentSize: tseg, Recipients: []Recipient{a.recipient(), b.recipient()}})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("hello"))
		w.Close()
		sealed := buf.Bytes()
		h, err := ParseHeader(bytes.NewReader(sealed))
		if err != nil {
			t.Fatal(err)
		}
		// Rewrap B's stanza around another data key, with the correct AAD.
		st := h.Stanzas[1]
		other, err := a.s.WrapKey(b.priv.Public(), randBytes(DataKeySize), stanzaAAD(h.prefix, st.Type, st.KeyID, st.KeyVersion))
		if err != nil {
			t.Fatal(err)
		}
		if len(other) != len(st.Wrapped) {
			t.Fatal("wrapped size changed")
		}
		bad := bytes.Clone(sealed)
		i := bytes.Index(bad, st.Wrapped)
		copy(bad[i:], other)
		if _, err := readAll(bad, b.identity()); !errors.Is(err, ErrKeyCommitment) {
			t.Errorf("B with another data key: %v", err)
		}
		if got, err := readAll(bad, a.identity()); err != nil && !errors.Is(err, ErrHeaderAuth) || err == nil && string(got) != "hello" {
			t.Errorf("A: %v", err)
		}
	})
}

func TestSwappedSuiteID(t *testing.T) {
	forSuites(t, func(t *testing.T, id suite.ID) {
		f := newFixture(t, id, 300)
		bad := bytes.Clone(f.sealed)
		if bad[9] == suite.WireIntl {
			bad[9] = suite.WireGM
		} else {
			bad[9] = suite.WireIntl
		}
		if _, err := readAll(bad, f.p.identity()); err == nil {
			t.Fatal("swapped suite id accepted")
		}
		if _, err := readAll(bad, anyID{f.p.identity()}); err == nil {
			t.Fatal("swapped suite id accepted")
		}
	})
}
