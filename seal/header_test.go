package seal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"phix/suite"
)

// header builds a header by hand (no MAC check happens in ParseHeader).
type hb struct {
	magic   string
	version byte
	suite   byte
	segSize uint32
	count   byte
	stanzas [][]byte
	tail    int // commitment + MAC bytes to append
}

func (h hb) bytes() []byte {
	b := []byte(h.magic)
	b = append(b, h.version, h.suite)
	b = binary.BigEndian.AppendUint32(b, h.segSize)
	b = append(b, make([]byte, SaltSize+NoncePrefixSize)...)
	b = append(b, h.count)
	for _, s := range h.stanzas {
		b = append(b, s...)
	}
	return append(b, make([]byte, h.tail)...)
}

func stanzaBytes(typ byte, id string, wlen int) []byte {
	return appendStanza(nil, Stanza{Type: typ, KeyID: id, KeyVersion: 1, Wrapped: make([]byte, wlen)})
}

func validHB() hb {
	return hb{Magic, Version, suite.WireGM, 4096, 1, [][]byte{stanzaBytes(StanzaPublicKey, "abc", 10)}, CommitmentSize + 32}
}

func TestParseHeaderLimits(t *testing.T) {
	if _, err := ParseHeader(bytes.NewReader(validHB().bytes())); err != nil {
		t.Fatalf("valid header refused: %v", err)
	}
	rawStanza := func(typ, idlen byte, id string, wlen uint16) []byte {
		b := append([]byte{typ, idlen}, id...)
		b = binary.BigEndian.AppendUint32(b, 1)
		return binary.BigEndian.AppendUint16(b, wlen)
	}
	for _, tc := range []struct {
		name string
		mod  func(*hb)
		want error
	}{
		{"bad magic", func(h *hb) { h.magic = "PK\x03\x04zip!" }, ErrBadMagic},
		{"version 2", func(h *hb) { h.version = 2 }, ErrVersion},
		{"suite 0", func(h *hb) { h.suite = 0 }, ErrUnknownSuite},
		{"suite 3", func(h *hb) { h.suite = 3 }, ErrUnknownSuite},
		{"segment size 0", func(h *hb) { h.segSize = 0 }, ErrHeaderLimit},
		{"segment size 4 GiB", func(h *hb) { h.segSize = 0xffffffff }, ErrHeaderLimit},
		{"segment size 16 MiB + 1", func(h *hb) { h.segSize = MaxSegmentSize + 1 }, ErrHeaderLimit},
		{"no recipients", func(h *hb) { h.count = 0 }, ErrHeaderLimit},
		{"255 recipients", func(h *hb) { h.count = 255 }, ErrHeaderLimit},
		{"unknown stanza type", func(h *hb) { h.stanzas = [][]byte{stanzaBytes(9, "abc", 10)} }, ErrHeaderLimit},
		{"empty key id", func(h *hb) { h.stanzas = [][]byte{rawStanza(1, 0, "", 10)} }, ErrHeaderLimit},
		{"key id too long", func(h *hb) { h.stanzas = [][]byte{rawStanza(1, 200, string(make([]byte, 200)), 10)} }, ErrHeaderLimit},
		{"key id not printable", func(h *hb) { h.stanzas = [][]byte{stanzaBytes(1, "a\nb", 10)} }, ErrHeaderLimit},
		{"wrapped length 0", func(h *hb) { h.stanzas = [][]byte{rawStanza(1, 3, "abc", 0)} }, ErrHeaderLimit},
		{"wrapped length 65535", func(h *hb) { h.stanzas = [][]byte{rawStanza(1, 3, "abc", 65535)} }, ErrHeaderLimit},
		{"fewer stanzas than declared", func(h *hb) { h.count = 2; h.tail = 0 }, ErrHeaderTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := validHB()
			tc.mod(&h)
			if _, err := ParseHeader(bytes.NewReader(h.bytes())); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// Every proper prefix of a valid header is truncated (or not even magic).
	full := validHB().bytes()
	for i := range len(full) {
		_, err := ParseHeader(bytes.NewReader(full[:i]))
		if !errors.Is(err, ErrHeaderTruncated) {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
	if _, err := ParseHeader(bytes.NewReader([]byte("hello"))); !errors.Is(err, ErrBadMagic) {
		t.Fatalf("short non-sealed input: %v", err)
	}
}
