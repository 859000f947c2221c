package dicom

import (
	"encoding/binary"
	"slices"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// maxDepth bounds sequence nesting. Real files nest a handful of levels;
// the bound keeps the walk (and the library's recursion) shallow.
const maxDepth = 32

// Delimitation tags (group FFFE).
const (
	tagItem      = 0xFFFEE000
	tagItemDelim = 0xFFFEE00D
	tagSeqDelim  = 0xFFFEE0DD
)

// walker checks the structure of an encoded dataset before the library
// reads it. It mirrors how the library decides VR, length and value kind
// (the tag dictionary under implicit VR, items always implicit, UN of
// undefined length read as a sequence), so every length the library will
// allocate for has been checked against what really remains in the file
// or in the enclosing item or sequence. It allocates nothing.
type walker struct {
	d        []byte
	bo       binary.ByteOrder
	implicit bool
	pix      pixelSpan
	// ow holds the offsets of the VR of explicit OW elements of defined
	// length, and owTags their tags (see relabelOW).
	ow     []int
	owTags []uint32
	// fixOW, when set, makes the walk write OW back over the VR of the
	// explicit OB elements with these tags (the encoded output).
	fixOW []uint32
}

// pixelSpan locates the top-level Pixel Data element (header and value)
// so it can be copied to the output verbatim instead of through the
// library's element structures.
type pixelSpan struct {
	start, end int
	n          int  // top-level Pixel Data elements seen
	nested     bool // Pixel Data inside a sequence (icons): the library must read it
}

// copyable reports whether exactly one top-level Pixel Data element was
// found and none nested, so the library may skip pixel data.
func (p pixelSpan) copyable() bool { return p.n == 1 && !p.nested }

// malformed is the one error of the walk: no tag, offset or value in it.
func malformed(msg string) *Error { return failed("precheck", msg, nil) }

// header reads one element header at pos (bounded by end) the way the
// library does and returns the tag, the raw VR, the value length and the
// value's offset.
func (w *walker) header(pos, end int) (t uint32, vr string, vl uint32, val int, err error) {
	if end-pos < 8 {
		return 0, "", 0, 0, malformed("truncated element header")
	}
	d := w.d
	g, e := w.bo.Uint16(d[pos:]), w.bo.Uint16(d[pos+2:])
	t = uint32(g)<<16 | uint32(e)
	if w.implicit || t == tagItem || t == tagItemDelim || t == tagSeqDelim {
		// Items have no VR in any syntax. The library reads delimiters
		// under explicit VR with a VR; a delimiter is only accepted with
		// four zero bytes after its tag, which both readings agree on.
		// Other FFFE tags are read as the library reads them.
		return t, implicitVR(g, e), w.bo.Uint32(d[pos+4:]), pos + 8, nil
	}
	vr = vrString(d[pos+4], d[pos+5])
	if libLongVR(vr) {
		if end-pos < 12 {
			return 0, "", 0, 0, malformed("truncated element header")
		}
		vl = w.bo.Uint32(d[pos+8:])
		if vl == tag.VLUndefinedLength && (vr == "UC" || vr == "UR" || vr == "UT") {
			return 0, "", 0, 0, malformed("undefined length on a text element")
		}
		return t, vr, vl, pos + 12, nil
	}
	vl = uint32(w.bo.Uint16(d[pos+6:]))
	if vl == 0xFFFF {
		vl = tag.VLUndefinedLength // as the library reads it
	}
	return t, vr, vl, pos + 8, nil
}

// implicitVR is the library's choice of VR under implicit VR.
func implicitVR(g, e uint16) string {
	t := tag.Tag{Group: g, Element: e}
	if t == tag.PixelData || t == tag.OverlayData {
		return "OW"
	}
	if info, err := tag.Find(t); err == nil && len(info.VRs) > 0 {
		return info.VRs[0]
	}
	return "UN"
}

// vrString avoids allocating for the common VRs.
func vrString(a, b byte) string {
	for _, v := range knownVRs {
		if v[0] == a && v[1] == b {
			return v
		}
	}
	return string([]byte{a, b})
}

var knownVRs = [...]string{"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV", "NA"}

// libLongVR are the explicit VRs the library reads with a 4-byte length
// (it does not know OV, SV and UV: those files fail the walk or the parse).
func libLongVR(vr string) bool {
	switch vr {
	case "NA", "OB", "OD", "OF", "OL", "OW", "SQ", "UN", "UC", "UR", "UT":
		return true
	}
	return false
}

// dataset walks elements from pos to end (a defined length) and returns
// where it stopped. With undefined, it stops after an item delimiter
// instead and end is only the outer bound.
func (w *walker) dataset(pos, end, depth int, undefined bool) (int, error) {
	for pos < end {
		t, vr, vl, val, err := w.header(pos, end)
		if err != nil {
			return 0, err
		}
		switch t {
		case tagItemDelim:
			if !undefined {
				return 0, malformed("item delimiter outside an undefined-length item")
			}
			if vl != 0 {
				return 0, malformed("item delimiter with a length")
			}
			return val, nil
		case tagItem, tagSeqDelim:
			return 0, malformed("item or sequence delimiter outside a sequence")
		}
		start := pos
		if vr == "OW" && !w.implicit && t != 0x7FE00010 && vl != tag.VLUndefinedLength {
			if vl%2 != 0 {
				return 0, malformed("OW element of odd length")
			}
			w.ow = append(w.ow, pos+4)
			w.owTags = append(w.owTags, t)
		}
		if w.fixOW != nil && vr == "OB" && !w.implicit && slices.Contains(w.fixOW, t) {
			w.d[pos+5] = 'W'
		}
		if pos, err = w.value(t, vr, vl, val, end, depth); err != nil {
			return 0, err
		}
		if t == 0x7FE00010 {
			if depth == 0 {
				w.pix.start, w.pix.end = start, pos
				w.pix.n++
			} else {
				w.pix.nested = true
			}
		}
	}
	if undefined {
		return 0, malformed("undefined-length item without a delimiter")
	}
	return pos, nil
}

// value checks one element's value at val and returns the offset after it.
func (w *walker) value(t uint32, vr string, vl uint32, val, end, depth int) (int, error) {
	kind := tag.GetVRKind(tag.Tag{Group: uint16(t >> 16), Element: uint16(t)}, vr)
	undef := vl == tag.VLUndefinedLength
	switch {
	case kind == tag.VRSequence || (kind == tag.VRUnknown && undef):
		return w.sequence(val, vl, end, depth+1)
	case kind == tag.VRPixelData && undef:
		return w.fragments(val, end, true)
	case kind == tag.VRBytes && undef:
		return w.fragments(val, end, false)
	case undef:
		return 0, malformed("undefined length on an element that cannot have one")
	}
	if int64(vl) > int64(end-val) {
		return 0, malformed("element length exceeds the remaining data")
	}
	return val + int(vl), nil
}

// sequence checks the items of a sequence whose value starts at val.
func (w *walker) sequence(val int, vl uint32, end, depth int) (int, error) {
	if depth > maxDepth {
		return 0, malformed("sequences nested too deeply")
	}
	undefined := vl == tag.VLUndefinedLength
	if !undefined {
		if int64(vl) > int64(end-val) {
			return 0, malformed("sequence length exceeds the remaining data")
		}
		end = val + int(vl)
	}
	pos := val
	for {
		if !undefined && pos == end {
			return pos, nil
		}
		t, _, il, iv, err := w.header(pos, end)
		if err != nil {
			if undefined {
				return 0, malformed("undefined-length sequence without a delimiter")
			}
			return 0, err
		}
		switch t {
		case tagSeqDelim:
			if !undefined {
				return 0, malformed("sequence delimiter in a defined-length sequence")
			}
			if il != 0 {
				return 0, malformed("sequence delimiter with a length")
			}
			return iv, nil
		case tagItem:
		default:
			return 0, malformed("element other than an item in a sequence")
		}
		if il == tag.VLUndefinedLength {
			pos, err = w.dataset(iv, end, depth, true)
		} else {
			if int64(il) > int64(end-iv) {
				return 0, malformed("item length exceeds the remaining data")
			}
			_, err = w.dataset(iv, iv+int(il), depth, false)
			pos = iv + int(il)
		}
		if err != nil {
			return 0, err
		}
	}
}

// fragments checks encapsulated data: defined-length items up to a
// sequence delimiter. Encapsulated Pixel Data must start with its Basic
// Offset Table item (PS3.5 A.4): the library skips the first item
// unseen, and without one it would read the elements after the
// delimiter as fragments.
func (w *walker) fragments(pos, end int, bot bool) (int, error) {
	if bot && (end-pos < 8 || uint32(w.bo.Uint16(w.d[pos:]))<<16|uint32(w.bo.Uint16(w.d[pos+2:])) != tagItem) {
		return 0, malformed("encapsulated pixel data without a basic offset table item")
	}
	for {
		if end-pos < 8 {
			return 0, malformed("encapsulated data without a sequence delimiter")
		}
		t := uint32(w.bo.Uint16(w.d[pos:]))<<16 | uint32(w.bo.Uint16(w.d[pos+2:]))
		l := w.bo.Uint32(w.d[pos+4:])
		pos += 8
		switch {
		case t == tagSeqDelim:
			if l != 0 {
				return 0, malformed("sequence delimiter with a length")
			}
			return pos, nil
		case t != tagItem:
			return 0, malformed("element other than an item in encapsulated data")
		case l == tag.VLUndefinedLength || int64(l) > int64(end-pos):
			return 0, malformed("fragment length exceeds the remaining data")
		}
		pos += int(l)
	}
}

// precheckMeta walks the file meta group of a Part 10 file (d starts with
// the preamble) as the library reads it: explicit VR little endian, bounded
// by (0002,0000) when that comes first. It returns where the dataset
// starts. A group length that disagrees with the group-2 elements is
// refused, since the library and our pre-pass would then split the file
// differently.
func precheckMeta(d []byte) (int, error) {
	w := &walker{d: d, bo: binary.LittleEndian}
	pos, end := 132, len(d)
	t, vr, vl, val, err := w.header(pos, end)
	if err != nil {
		return 0, err
	}
	if t == 0x00020000 && vr == "UL" && vl == 4 && end-val >= 4 {
		gl := binary.LittleEndian.Uint32(d[val:])
		pos = val + 4
		if int64(gl) > int64(end-pos) {
			return 0, malformed("file meta group length exceeds the file")
		}
		metaEnd := pos + int(gl)
		for pos < metaEnd {
			t, vr, vl, val, err := w.header(pos, metaEnd)
			if err != nil {
				return 0, err
			}
			if t>>16 != 0x0002 {
				return 0, malformed("file meta group length disagrees with its elements")
			}
			if pos, err = w.value(t, vr, vl, val, metaEnd, 0); err != nil {
				return 0, err
			}
		}
		if end-pos >= 2 && binary.LittleEndian.Uint16(d[pos:]) == 0x0002 {
			return 0, malformed("file meta group length disagrees with its elements")
		}
		return pos, nil
	}
	for end-pos >= 2 && binary.LittleEndian.Uint16(d[pos:]) == 0x0002 {
		t, vr, vl, val, err := w.header(pos, end)
		if err != nil {
			return 0, err
		}
		if pos, err = w.value(t, vr, vl, val, end, 0); err != nil {
			return 0, err
		}
	}
	return pos, nil
}

// precheckDataset walks the dataset from pos to the end of d.
func precheckDataset(d []byte, pos int, bo binary.ByteOrder, implicit bool) (*walker, error) {
	w := &walker{d: d, bo: bo, implicit: implicit}
	_, err := w.dataset(pos, len(d), 0, false)
	return w, err
}

// relabelOW writes OW back over the VR of the elements prepare labelled
// OB, in the encoded output (a Part 10 file in an explicit syntax).
func relabelOW(out []byte, ts string, tags []uint32) error {
	pos, err := precheckMeta(out)
	if err != nil {
		return err
	}
	bo, implicit, err := syntaxOf(ts)
	if err != nil || implicit {
		return failed("write", "cannot relabel OW in the output", nil)
	}
	w := &walker{d: out, bo: bo, fixOW: tags}
	if _, err := w.dataset(pos, len(out), 0, false); err != nil {
		return failed("write", "the encoded output does not walk", nil)
	}
	return nil
}

// inferSyntax picks the syntax of a dataset without file meta the way the
// library does: the first of implicit LE, explicit BE, explicit LE under
// which the first element reads within 100 bytes. Unlike the library we
// then tell it (by a synthetic meta group) which one we checked.
func inferSyntax(d []byte) (string, bool) {
	win := min(len(d), 100)
	for _, c := range []struct {
		ts       string
		bo       binary.ByteOrder
		implicit bool
	}{{tsImplicitLE, binary.LittleEndian, true}, {tsExplicitBE, binary.BigEndian, false}, {tsExplicitLE, binary.LittleEndian, false}} {
		w := &walker{d: d, bo: c.bo, implicit: c.implicit}
		t, vr, vl, val, err := w.header(0, win)
		if err != nil || t>>16 == 0xFFFE {
			continue
		}
		if _, err := w.value(t, vr, vl, val, win, 0); err == nil {
			return c.ts, true
		}
	}
	return "", false
}
