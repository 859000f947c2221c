package dicom

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"io"
	"strings"

	"github.com/suyashkumar/dicom/pkg/uid"
)

// Transfer syntaxes the pre-pass distinguishes.
const (
	tsImplicitLE = "1.2.840.10008.1.2"
	tsExplicitLE = "1.2.840.10008.1.2.1"
	tsExplicitBE = "1.2.840.10008.1.2.2"
	tsDeflated   = "1.2.840.10008.1.2.1.99"
)

// maxInflated bounds a deflated dataset so a small file cannot expand
// without limit.
const maxInflated = 1 << 30

// rawFile is what the pre-pass learned from the bytes before the library
// parses them.
type rawFile struct {
	data    []byte   // bytes for the parser (inflated when the input was deflated)
	charset []string // raw values of the top-level (0008,0005); nil if absent
	ts      string   // transfer syntax from the meta group ("" if none)
	pix     pixelSpan
	owTags  []uint32 // tags of OW elements relabelled OB for the parse
}

// own makes rf.data safe to patch: a copy unless it is already one or the
// caller handed its buffer over.
func (rf *rawFile) own(in []byte, owned bool) {
	if !owned && len(rf.data) > 0 && len(in) > 0 && &rf.data[0] == &in[0] {
		rf.data = append([]byte(nil), in...)
	}
}

// longVR are the explicit VRs with a 4-byte length.
func longVR(vr string) bool {
	switch vr {
	case "OB", "OW", "OF", "OD", "OL", "OV", "SQ", "UT", "UN", "UC", "UR", "SV", "UV":
		return true
	}
	return false
}

// prepare works around two gaps of the DICOM library. First, it decodes
// text under (0008,0005) itself, wrongly for ISO 2022 code extensions: we
// overwrite the value in our copy of the bytes with an unknown term of the
// same length so the library hands over raw bytes, and decode them
// ourselves. Second, it cannot write deflated files: we inflate the
// dataset here and relabel it explicit VR little endian.
// With owned, in belongs to the caller's read buffer and is patched in
// place.
func prepare(in []byte, owned bool) (*rawFile, error) {
	rf := &rawFile{data: in}
	pos := 0
	if len(in) >= 132 && string(in[128:132]) == "DICM" {
		if _, err := precheckMeta(in); err != nil {
			return nil, err
		}
		pos = 132
		var tsPos, tsLen, glPos int = -1, 0, -1
		for pos+8 <= len(in) && binary.LittleEndian.Uint16(in[pos:]) == 0x0002 {
			el := binary.LittleEndian.Uint16(in[pos+2:])
			vr := string(in[pos+4 : pos+6])
			hdr, n := 8, int(binary.LittleEndian.Uint16(in[pos+6:]))
			if longVR(vr) {
				if pos+12 > len(in) {
					return nil, failed("parse", "truncated file meta information", nil)
				}
				hdr, n = 12, int(binary.LittleEndian.Uint32(in[pos+8:]))
			}
			if n < 0 || pos+hdr+n > len(in) {
				return nil, failed("parse", "truncated file meta information", nil)
			}
			switch el {
			case 0x0000:
				glPos = pos + hdr
			case 0x0010:
				tsPos, tsLen = pos, n
				rf.ts = strings.TrimRight(string(in[pos+hdr:pos+hdr+n]), " \x00")
			}
			pos += hdr + n
		}
		if rf.ts == tsDeflated {
			if tsPos < 0 || tsLen != 22 {
				return nil, failed("parse", "malformed deflated transfer syntax", nil)
			}
			inf, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(in[pos:])), maxInflated+1))
			if err != nil || len(inf) > maxInflated {
				return nil, failed("parse", "deflated dataset does not inflate", nil)
			}
			// Relabel: the explicit LE UID is 2 bytes shorter (padded to 20).
			out := make([]byte, 0, pos-2+len(inf))
			out = append(out, in[:tsPos+6]...)
			out = binary.LittleEndian.AppendUint16(out, 20)
			out = append(out, tsExplicitLE+"\x00"...)
			out = append(out, in[tsPos+8+22:pos]...)
			if glPos >= 0 && glPos+4 <= len(out) {
				binary.LittleEndian.PutUint32(out[glPos:], binary.LittleEndian.Uint32(out[glPos:])-2)
			}
			pos = len(out)
			out = append(out, inf...)
			rf.data, rf.ts = out, tsExplicitLE
		}
		if rf.ts == "" {
			return nil, failed("precheck", "file meta information without a transfer syntax", nil)
		}
	} else {
		// No file meta: pick the syntax as the library would, then state it
		// in a synthetic meta group so the library reads what we checked.
		ts, ok := inferSyntax(in)
		if !ok {
			return nil, failed("precheck", "not a DICOM dataset", nil)
		}
		rf.ts = ts
		rf.data = withMeta(in, ts)
		pos = len(rf.data) - len(in)
	}
	bo, implicit, err := syntaxOf(rf.ts)
	if err != nil {
		return nil, err
	}
	w, err := precheckDataset(rf.data, pos, bo, implicit)
	if err != nil {
		return nil, err
	}
	rf.pix = w.pix
	if len(w.ow) > 0 {
		// The library reads and writes OW word by word, into little endian
		// in memory (wrong for big endian, slow for both): label them OB so
		// it takes and writes the bytes as they are; relabelOW puts the
		// VR back in the encoded output.
		rf.own(in, owned)
		for _, off := range w.ow {
			rf.data[off+1] = 'B'
		}
		rf.owTags = w.owTags
	}
	// The caller owns in; the charset patch must not touch it.
	d := rf.data
	for pos+8 <= len(d) {
		grp, el := bo.Uint16(d[pos:]), bo.Uint16(d[pos+2:])
		t := uint32(grp)<<16 | uint32(el)
		if t > 0x00080005 {
			break
		}
		hdr, n := 8, int64(bo.Uint32(d[pos+4:]))
		if !implicit {
			vr := string(d[pos+4 : pos+6])
			hdr, n = 8, int64(bo.Uint16(d[pos+6:]))
			if longVR(vr) {
				if pos+12 > len(d) {
					break
				}
				hdr, n = 12, int64(bo.Uint32(d[pos+8:]))
			}
		}
		if n == 0xFFFFFFFF || int64(pos+hdr)+n > int64(len(d)) {
			break
		}
		if t == 0x00080005 {
			val := d[pos+hdr : pos+hdr+int(n)]
			rf.charset = strings.Split(strings.TrimRight(string(val), " \x00"), `\`)
			if !isASCII(string(val)) {
				return nil, failed("charset", "specific character set is not ASCII", nil)
			}
			if n > 0 {
				rf.own(in, owned)
				d = rf.data
				// An unknown term: the library then decodes nothing.
				copy(d[pos+hdr:], bytes.Repeat([]byte{'X'}, int(n)))
			}
			break
		}
		pos += hdr + int(n)
	}
	return rf, nil
}

// syntaxOf is the byte order and VR mode the library uses for ts; a UID
// it does not know as a transfer syntax is refused (the library would
// guess big endian).
func syntaxOf(ts string) (binary.ByteOrder, bool, error) {
	bo, implicit, err := uid.ParseTransferSyntaxUID(ts)
	if err != nil {
		return nil, false, failed("precheck", "unknown transfer syntax", nil)
	}
	return bo, implicit, nil
}

// withMeta prefixes a bare dataset with a preamble and a file meta group
// holding only the transfer syntax.
func withMeta(in []byte, ts string) []byte {
	v := ts
	if len(v)%2 == 1 {
		v += "\x00"
	}
	out := make([]byte, 128, 132+12+8+len(v)+len(in))
	out = append(out, "DICM"...)
	out = append(out, 0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(8+len(v)))
	out = append(out, 0x02, 0x00, 0x10, 0x00, 'U', 'I')
	out = binary.LittleEndian.AppendUint16(out, uint16(len(v)))
	out = append(out, v...)
	return append(out, in...)
}
