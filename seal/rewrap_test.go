package seal

import (
	"bytes"
	"errors"
	"testing"

	"phix/suite"
)

func TestRewrap(t *testing.T) {
	forSuites(t, func(t *testing.T, id suite.ID) {
		a, b, c := newParty(t, id), newParty(t, id), newParty(t, id)
		pt := randBytes(5*tseg + 3)
		sealed := sealBytes(t, Options{Suite: a.s, SegmentSize: tseg, Recipients: []Recipient{a.recipient(), b.recipient()}}, pt)
		hdr := headerLen(t, sealed)

		// A rewraps for C only (a KEK rotation or a new delivery).
		var out bytes.Buffer
		n, err := Rewrap(&out, bytes.NewReader(sealed), []Recipient{c.recipient()}, a.identity())
		if err != nil || n != int64(out.Len()) {
			t.Fatalf("rewrap: %v (n=%d, len=%d)", err, n, out.Len())
		}
		re := out.Bytes()
		newHdr := headerLen(t, re)
		if !bytes.Equal(re[newHdr:], sealed[hdr:]) {
			t.Fatal("the body changed")
		}
		if got, err := openBytes(re, c.identity()); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("C opens the rewrapped file: %v", err)
		}
		for name, p := range map[string]party{"a": a, "b": b} {
			if _, err := openBytes(re, p.identity()); !errors.Is(err, ErrNoRecipient) {
				t.Errorf("%s after being dropped: %v", name, err)
			}
		}
		// The original still opens for A and B.
		if got, err := openBytes(sealed, b.identity()); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("original: %v", err)
		}
		// No key, or a tampered header: nothing is written.
		out.Reset()
		if _, err := Rewrap(&out, bytes.NewReader(sealed), []Recipient{c.recipient()}, c.identity()); !errors.Is(err, ErrNoRecipient) || out.Len() != 0 {
			t.Fatalf("rewrap without a key: %v, wrote %d", err, out.Len())
		}
		bad := bytes.Clone(sealed)
		bad[hdr-1] ^= 1 // the header MAC
		if _, err := Rewrap(&out, bytes.NewReader(bad), []Recipient{c.recipient()}, a.identity()); !errors.Is(err, ErrHeaderAuth) || out.Len() != 0 {
			t.Fatalf("rewrap of a tampered header: %v, wrote %d", err, out.Len())
		}
		if _, err := Rewrap(&out, bytes.NewReader(sealed), nil, a.identity()); !errors.Is(err, ErrOptions) || out.Len() != 0 {
			t.Fatalf("rewrap to nobody: %v", err)
		}
		// A body tampered before rewrapping is still caught by the reader.
		bad = bytes.Clone(sealed)
		bad[hdr+3] ^= 1
		out.Reset()
		if _, err := Rewrap(&out, bytes.NewReader(bad), []Recipient{c.recipient()}, a.identity()); err != nil {
			t.Fatal(err)
		}
		if _, err := openBytes(out.Bytes(), c.identity()); !errors.Is(err, ErrSegmentAuth) {
			t.Fatalf("tampered body after rewrap: %v", err)
		}
	})
}
