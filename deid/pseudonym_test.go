package deid

import (
	"fmt"
	"testing"

	"phix/suite"
)

// TestUUIDStringMatchesFmt pins the fast UUID formatting to the fmt form
// IDs had before, so existing pseudonyms do not change.
func TestUUIDStringMatchesFmt(t *testing.T) {
	for _, s := range [][]byte{
		make([]byte, 32),
		{0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00},
		{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87},
	} {
		want := fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
		if got := uuidString(s); got != want {
			t.Errorf("uuidString = %q, want %q", got, want)
		}
	}
}

// TestIDStable pins one pseudonym so a change of its form shows.
func TestIDStable(t *testing.T) {
	p, err := NewPseudonymizer(testKeys(t, suite.Intl, 1), DateShiftRange{})
	if err != nil {
		t.Fatal(err)
	}
	s := p.sum("id", "x")
	s[6] = s[6]&0x0f | 0x80
	s[8] = s[8]&0x3f | 0x80
	want := fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
	if got := p.ID("x"); got != want {
		t.Errorf("ID = %q, want %q", got, want)
	}
}
