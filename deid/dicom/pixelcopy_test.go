package dicom

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// TestPixelDataCopiedVerbatim: the top-level Pixel Data element reaches
// the output byte for byte (native, encapsulated, big endian, implicit).
func TestPixelDataCopiedVerbatim(t *testing.T) {
	pydicomFiles(t)
	d := newTestDeid(t, "basic")
	for _, name := range []string{"CT_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "JPEG2000.dcm", "SC_rgb_rle_2frame.dcm"} {
		in, err := os.ReadFile(filepath.Join(pydicomData, "test_files", name))
		if err != nil {
			t.Fatal(err)
		}
		rf, err := prepare(in, false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !rf.pix.copyable() {
			t.Fatalf("%s: pixel data not located", name)
		}
		pix := rf.data[rf.pix.start:rf.pix.end]
		res, err := d.Deidentify(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Contains(res.Data, pix) {
			t.Errorf("%s: pixel data element not in the output verbatim", name)
		}
		// The output re-reads and locates the same element.
		rf2, err := prepare(res.Data, false)
		if err != nil || !rf2.pix.copyable() || !bytes.Equal(rf2.data[rf2.pix.start:rf2.pix.end], pix) {
			t.Errorf("%s: output pixel data differs (%v)", name, err)
		}
	}
}

// TestNestedPixelDataFallsBack: Pixel Data inside a sequence
// makes the library read all pixel data; both survive (in a sequence the
// profile keeps: the Icon Image Sequence itself is removed).
func TestNestedPixelDataFallsBack(t *testing.T) {
	uidEl := func(e uint16, v string) []byte { return el(0x0008, e, "UI", uint32(len(v)), []byte(v)) }
	icon := cat(el(0x0028, 0x0010, "US", 2, []byte{1, 0}), el(0x7FE0, 0x0010, "OB", 4, []byte{9, 8, 7, 6}))
	data := part10(tsExplicitLE,
		uidEl(0x0016, "1.2.840.10008.5.1.4.1.1.2\x00"), uidEl(0x0018, "1.2.3.4.5.6\x00"),
		el(0x0028, 0x3000, "SQ", undef, nil), item(0xE000, uint32(len(icon))), icon, item(0xE0DD, 0),
		el(0x7FE0, 0x0010, "OB", 4, []byte{1, 2, 3, 4}))
	rf, err := prepare(data, false)
	if err != nil {
		t.Fatal(err)
	}
	if rf.pix.copyable() {
		t.Fatal("nested pixel data must disable the copy-through")
	}
	res, err := newTestDeid(t, "basic").Deidentify(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range [][]byte{{9, 8, 7, 6}, {1, 2, 3, 4}} {
		if !bytes.Contains(res.Data, v) {
			t.Errorf("pixel value %v lost", v)
		}
	}
}

// TestOWByteOrder: OW values other than Pixel Data come out in the file's
// byte order with their OW label (the library alone swaps big endian OW).
func TestOWByteOrder(t *testing.T) {
	enc := func(bo binary.AppendByteOrder, g, e uint16, vr string, val []byte) []byte {
		b := bo.AppendUint16(nil, g)
		b = bo.AppendUint16(b, e)
		b = append(b, vr...)
		if libLongVR(vr) {
			b = append(b, 0, 0)
			b = bo.AppendUint32(b, uint32(len(val)))
		} else {
			b = bo.AppendUint16(b, uint16(len(val)))
		}
		return append(b, val...)
	}
	lut := []byte{0xA1, 0xA2, 0xA3, 0xA4}
	for _, c := range []struct {
		ts string
		bo binary.AppendByteOrder
	}{{tsExplicitBE, binary.BigEndian}, {tsExplicitLE, binary.LittleEndian}} {
		data := part10(c.ts, enc(c.bo, 8, 0x16, "UI", []byte("1.2.840.10008.5.1.4.1.1.2\x00")), enc(c.bo, 8, 0x18, "UI", []byte("1.2.3.4.5.6\x00")),
			enc(c.bo, 0x0028, 0x1201, "OW", lut))
		res, err := newTestDeid(t, "basic").Deidentify(data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(res.Data, enc(c.bo, 0x0028, 0x1201, "OW", lut)) {
			t.Errorf("%s: OW element not kept as it was", c.ts)
		}
	}
}
