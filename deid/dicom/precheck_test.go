package dicom

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// el encodes one explicit VR little endian element (4-byte length for the
// long VRs, as the library reads them).
func el(g, e uint16, vr string, l uint32, val []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, g)
	b = binary.LittleEndian.AppendUint16(b, e)
	b = append(b, vr...)
	if libLongVR(vr) {
		b = append(b, 0, 0)
		b = binary.LittleEndian.AppendUint32(b, l)
	} else {
		b = binary.LittleEndian.AppendUint16(b, uint16(l))
	}
	return append(b, val...)
}

// item encodes an item or delimiter header (no VR in any syntax).
func item(e uint16, l uint32) []byte {
	b := binary.LittleEndian.AppendUint16(nil, 0xFFFE)
	b = binary.LittleEndian.AppendUint16(b, e)
	return binary.LittleEndian.AppendUint32(b, l)
}

const undef = 0xFFFFFFFF

// part10 wraps a dataset in a preamble and an explicit LE file meta group.
func part10(ts string, ds ...[]byte) []byte {
	if len(ts)%2 == 1 {
		ts += "\x00"
	}
	meta := el(0x0002, 0x0010, "UI", uint32(len(ts)), []byte(ts))
	b := append(make([]byte, 128), "DICM"...)
	b = append(b, el(0x0002, 0x0000, "UL", 4, binary.LittleEndian.AppendUint32(nil, uint32(len(meta))))...)
	b = append(b, meta...)
	for _, d := range ds {
		b = append(b, d...)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// nested is depth undefined-length sequences, each in an item of the last.
func nested(depth int) []byte {
	var open, closing []byte
	for range depth {
		open = append(open, el(0x0040, 0x0260, "SQ", undef, nil)...)
		open = append(open, item(0xE000, undef)...)
		closing = append(item(0xE00D, 0)[:8:8], append(item(0xE0DD, 0), closing...)...)
	}
	return cat(open, closing)
}

func TestPrecheckRefusesMalformed(t *testing.T) {
	pn := el(0x0010, 0x0010, "PN", 4, []byte("A^B "))
	huge := uint32(0xF0000000)
	bigEndianOB := func() []byte {
		b := binary.BigEndian.AppendUint16(nil, 0x0009)
		b = binary.BigEndian.AppendUint16(b, 0x1010)
		b = append(b, "OB\x00\x00"...)
		return binary.BigEndian.AppendUint32(b, huge)
	}
	implicitHuge := func() []byte { // bare dataset, implicit LE
		b := []byte{0x10, 0x00, 0x10, 0x00, 4, 0, 0, 0, 'A', '^', 'B', ' '}
		b = append(b, 0x09, 0x00, 0x10, 0x10)
		return binary.LittleEndian.AppendUint32(b, huge)
	}
	fuzzIn := func() []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzDeidentify", "ca9857aa2b8ab2ab"))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		i, j := strings.Index(s, `[]byte("`), strings.LastIndex(s, `")`)
		out, err := strconv.Unquote(s[i+7 : j+1])
		if err != nil {
			t.Fatal(err)
		}
		return []byte(out)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"saved fuzz input", fuzzIn()},
		{"huge length in a nested item", part10(tsExplicitLE, pn,
			el(0x0040, 0x0260, "SQ", undef, nil), item(0xE000, undef), el(0x0009, 0x1010, "OB", huge, nil))},
		{"huge length in a defined-length item", part10(tsExplicitLE, pn,
			el(0x0040, 0x0260, "SQ", 24, nil), item(0xE000, 16), el(0x0009, 0x1010, "OB", huge, make([]byte, 4)))},
		{"item longer than its sequence", part10(tsExplicitLE, pn,
			el(0x0040, 0x0260, "SQ", 16, nil), item(0xE000, 1000), make([]byte, 8))},
		{"length past EOF", part10(tsExplicitLE, pn, el(0x0009, 0x1010, "OB", 1000, make([]byte, 10)))},
		{"short length past EOF", part10(tsExplicitLE, el(0x0010, 0x0010, "PN", 200, []byte("A^B ")))},
		{"deep nesting", part10(tsExplicitLE, pn, nested(maxDepth+5))},
		{"unterminated sequence", part10(tsExplicitLE, pn, el(0x0040, 0x0260, "SQ", undef, nil), item(0xE000, 8), pn)},
		{"unterminated item", part10(tsExplicitLE, pn, el(0x0040, 0x0260, "SQ", undef, nil), item(0xE000, undef), pn)},
		{"sequence delimiter in a defined-length sequence", part10(tsExplicitLE, pn, el(0x0040, 0x0260, "SQ", 16, nil), item(0xE000, 0), item(0xE0DD, 0))},
		{"FFFE element with a huge explicit length", part10(tsExplicitLE, pn,
			el(0xFFFE, 0x1234, "OB", huge, nil), make([]byte, 0x4F4F-4+64))},
		{"stray item delimiter", part10(tsExplicitLE, pn, item(0xE00D, 0))},
		{"non-item in a sequence", part10(tsExplicitLE, pn, el(0x0040, 0x0260, "SQ", undef, nil), pn, item(0xE0DD, 0))},
		{"huge fragment", part10("1.2.840.10008.1.2.4.50", pn,
			el(0x7FE0, 0x0010, "OB", undef, nil), item(0xE000, 0), item(0xE000, huge))},
		{"encapsulated pixel data without an offset table", part10("1.2.840.10008.1.2.4.50", pn,
			el(0x7FE0, 0x0010, "OB", undef, nil), item(0xE0DD, 0), el(0xFFFC, 0xFFFC, "OB", 8, item(0xE000, huge)))},
		{"unterminated fragments", part10("1.2.840.10008.1.2.4.50", pn,
			el(0x7FE0, 0x0010, "OB", undef, nil), item(0xE000, 0), item(0xE000, 2), []byte{1, 2})},
		{"undefined length on a string", part10(tsExplicitLE, el(0x0010, 0x0010, "PN", 0xFFFF, nil), item(0xE0DD, 0))},
		{"big endian huge length", part10(tsExplicitBE, bigEndianOB())},
		{"implicit bare dataset huge length", implicitHuge()},
		{"meta group length past EOF", func() []byte {
			b := part10(tsExplicitLE, pn)
			binary.LittleEndian.PutUint32(b[140:], 1<<30)
			return b
		}()},
		{"meta group length short", func() []byte {
			b := part10(tsExplicitLE, pn)
			binary.LittleEndian.PutUint32(b[140:], 4)
			return b
		}()},
		{"unknown transfer syntax", part10("1.2.3.4", pn)},
		{"deflated huge length", deflated(t, cat(pn, el(0x0040, 0x0260, "SQ", undef, nil), item(0xE000, undef), el(0x0009, 0x1010, "UN", huge, nil)))},
	}
	d := newTestDeid(t, "basic")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := d.Deidentify(c.data)
			runtime.ReadMemStats(&after)
			var de *Error
			if !errors.As(err, &de) || de.Code != CodeDeidFailed || de.Stage != "precheck" {
				t.Fatalf("err = %v, want PHI-6008 from the pre-check", err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
				t.Errorf("allocated %d bytes to refuse a %d-byte input", grew, len(c.data))
			}
		})
	}
}

// TestPrecheckAcceptsWellFormed: the walk passes nesting, defined and
// undefined lengths and fragments that are consistent.
func TestPrecheckAcceptsWellFormed(t *testing.T) {
	pn := el(0x0010, 0x0010, "PN", 4, []byte("A^B "))
	for name, data := range map[string][]byte{
		"nested undefined": part10(tsExplicitLE, pn, nested(maxDepth-1)),
		"nested defined": part10(tsExplicitLE, pn, el(0x0040, 0x0260, "SQ", 20, nil), item(0xE000, 12), pn,
			el(0x0040, 0x0275, "SQ", 0, nil)),
		"fragments": part10("1.2.840.10008.1.2.4.50", pn,
			el(0x7FE0, 0x0010, "OB", undef, nil), item(0xE000, 0), item(0xE000, 2), []byte{1, 2}, item(0xE0DD, 0)),
		"UN as sequence": part10(tsExplicitLE, pn, el(0x0009, 0x1010, "UN", undef, nil), item(0xE000, undef), pn, item(0xE00D, 0), item(0xE0DD, 0)),
		"bare implicit":  {0x10, 0x00, 0x10, 0x00, 4, 0, 0, 0, 'A', '^', 'B', ' '},
	} {
		if _, err := prepare(data, false); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMaxFileSize(t *testing.T) {
	cfg, err := NewConfig("basic", testPseudonymizer(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxFileSize = 64
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	big := part10(tsExplicitLE, el(0x0009, 0x1010, "OB", 100, make([]byte, 100)))
	for name, f := range map[string]func() error{
		"bytes":  func() error { _, err := d.Deidentify(big); return err },
		"reader": func() error { _, err := d.DeidentifyReader(bytes.NewReader(big)); return err },
	} {
		err := f()
		var de *Error
		if !errors.As(err, &de) || de.Code != CodeDeidFailed || de.Stage != "io" {
			t.Errorf("%s: err = %v, want PHI-6008 io", name, err)
		}
	}
}

// FuzzPrecheck: the walk never panics, and what it lets through never
// makes the pipeline allocate out of proportion to the input (a length the
// walk and the library read differently would show up here).
func FuzzPrecheck(f *testing.F) {
	pn := el(0x0010, 0x0010, "PN", 4, []byte("A^B "))
	uids := cat(el(0x0008, 0x0016, "UI", 26, []byte("1.2.840.10008.5.1.4.1.1.2\x00")), el(0x0008, 0x0018, "UI", 12, []byte("1.2.3.4.5.6\x00")))
	f.Add(part10(tsExplicitLE, uids, pn, nested(3)))
	f.Add(part10(tsImplicitLE, []byte{0x10, 0x00, 0x10, 0x00, 4, 0, 0, 0, 'A', '^', 'B', ' '}))
	f.Add(part10("1.2.840.10008.1.2.4.50", uids, pn, el(0x7FE0, 0x0010, "OB", undef, nil), item(0xE000, 0), item(0xE000, 2), []byte{1, 2}, item(0xE0DD, 0)))
	f.Add(part10(tsExplicitBE, uids, el(0x0028, 0x1201, "OW", 4, []byte{1, 2, 3, 4})))
	f.Add([]byte{0x10, 0x00, 0x10, 0x00, 4, 0, 0, 0, 'A', '^', 'B', ' '})
	d := newTestDeid(f, "basic")
	f.Fuzz(func(t *testing.T, data []byte) {
		in := append([]byte(nil), data...)
		if _, err := prepare(data, false); err != nil {
			return
		}
		if !bytes.Equal(in, data) {
			t.Fatal("input modified")
		}
		if bytes.Contains(data, []byte(tsDeflated)) {
			return // inflation legitimately multiplies the size
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _ = d.Deidentify(data)
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20+512*uint64(len(data)) {
			t.Fatalf("allocated %d bytes for a %d-byte input", grew, len(data))
		}
	})
}

// deflated is a Part 10 file in the deflated syntax holding ds.
func deflated(t *testing.T, ds []byte) []byte {
	var z bytes.Buffer
	w, err := flate.NewWriter(&z, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(ds); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return part10(tsDeflated, z.Bytes())
}
