package dicom

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// charset decodes the bytes of a text value under (0008,0005)
// SpecificCharacterSet. The DICOM library decodes single-byte and GB18030
// sets but not ISO 2022 code extensions (escape sequences), and it would
// write the UTF-8 result under the old (0008,0005). We read raw bytes and
// decode here; the writer then declares ISO_IR 192.
type charset struct {
	single *encoding.Decoder // non-ISO 2022 set; nil for ASCII or UTF-8
	utf8   bool
	ext    bool // ISO 2022 code extensions
	g0, g1 graphicSet
}

// graphicSet is a code element that an ISO 2022 escape selects.
type graphicSet uint8

const (
	gsASCII graphicSet = iota
	gsJISRoman
	gsJIS0208
	gsJIS0212
	gsJISKatakana
	gsGB2312
	gsKSX1001
	gsLatin // 8-bit G1 of an ISO 8859 part; see charset.latin
	gsNone
)

// singleSets maps the non-extension defined terms (PS3.3 C.12.1.1.2).
var singleSets = map[string]encoding.Encoding{
	"ISO_IR 100": charmap.ISO8859_1, "ISO_IR 101": charmap.ISO8859_2, "ISO_IR 109": charmap.ISO8859_3,
	"ISO_IR 110": charmap.ISO8859_4, "ISO_IR 144": charmap.ISO8859_5, "ISO_IR 127": charmap.ISO8859_6,
	"ISO_IR 126": charmap.ISO8859_7, "ISO_IR 138": charmap.ISO8859_8, "ISO_IR 148": charmap.ISO8859_9,
	"ISO_IR 203": charmap.ISO8859_15, "ISO_IR 166": charmap.Windows874, "ISO_IR 13": japanese.ShiftJIS,
	"GB18030": simplifiedchinese.GB18030, "GBK": simplifiedchinese.GBK,
}

// latinEscapes maps "ESC - F" final bytes to ISO 8859 parts, and the ISO
// 2022 defined terms to the same parts.
var latinEscapes = map[byte]*charmap.Charmap{
	'A': charmap.ISO8859_1, 'B': charmap.ISO8859_2, 'C': charmap.ISO8859_3, 'D': charmap.ISO8859_4,
	'L': charmap.ISO8859_5, 'G': charmap.ISO8859_6, 'F': charmap.ISO8859_7, 'H': charmap.ISO8859_8,
	'M': charmap.ISO8859_9, 'T': charmap.Windows874,
}

var ext2022 = map[string]struct {
	g0, g1 graphicSet
	latin  byte
}{
	"ISO 2022 IR 6": {gsASCII, gsNone, 0}, "ISO 2022 IR 100": {gsASCII, gsLatin, 'A'},
	"ISO 2022 IR 101": {gsASCII, gsLatin, 'B'}, "ISO 2022 IR 109": {gsASCII, gsLatin, 'C'},
	"ISO 2022 IR 110": {gsASCII, gsLatin, 'D'}, "ISO 2022 IR 144": {gsASCII, gsLatin, 'L'},
	"ISO 2022 IR 127": {gsASCII, gsLatin, 'G'}, "ISO 2022 IR 126": {gsASCII, gsLatin, 'F'},
	"ISO 2022 IR 138": {gsASCII, gsLatin, 'H'}, "ISO 2022 IR 148": {gsASCII, gsLatin, 'M'},
	"ISO 2022 IR 166": {gsASCII, gsLatin, 'T'}, "ISO 2022 IR 13": {gsJISRoman, gsJISKatakana, 0},
	"ISO 2022 IR 87": {gsJIS0208, gsNone, 0}, "ISO 2022 IR 159": {gsJIS0212, gsNone, 0},
	"ISO 2022 IR 58": {gsASCII, gsGB2312, 0}, "ISO 2022 IR 149": {gsASCII, gsKSX1001, 0},
}

// charsetState is the initial state of an ISO 2022 value plus the 8859
// part currently in G1.
type charsetState struct {
	g0, g1 graphicSet
	latin  *charmap.Charmap
}

// newCharset reads the values of (0008,0005). Unknown terms are an error:
// decoding under a guessed set could leave identifying bytes undetected.
func newCharset(values []string) (*charset, bool) {
	cs := &charset{g0: gsASCII, g1: gsNone}
	var vals []string
	for _, v := range values {
		vals = append(vals, strings.TrimSpace(v))
	}
	if len(vals) == 0 || (len(vals) == 1 && (vals[0] == "" || vals[0] == "ISO_IR 6")) {
		return cs, true
	}
	if len(vals) == 1 {
		switch vals[0] {
		case "ISO_IR 192":
			cs.utf8 = true
			return cs, true
		}
		if enc, ok := singleSets[vals[0]]; ok {
			cs.single = enc.NewDecoder()
			return cs, true
		}
		if _, ok := ext2022[vals[0]]; !ok {
			return nil, false
		}
	}
	cs.ext = true
	for i, v := range vals {
		if v == "" && i == 0 {
			continue
		}
		if _, ok := ext2022[v]; !ok {
			// GB18030 and UTF-8 must not be used with code extensions.
			return nil, false
		}
	}
	if first, ok := ext2022[vals[0]]; ok {
		cs.g0, cs.g1 = first.g0, first.g1
		if first.latin != 0 {
			cs.g1 = gsLatin
		}
	}
	return cs, true
}

// initial latin part of G1 for the first value, if any.
func (cs *charset) initial(values []string) *charmap.Charmap {
	if len(values) > 0 {
		if e, ok := ext2022[strings.TrimSpace(values[0])]; ok && e.latin != 0 {
			return latinEscapes[e.latin]
		}
	}
	return nil
}

// decode turns raw value bytes into UTF-8. Bytes that do not decode
// become U+FFFD, so nothing of the original passes through undecoded.
func (cs *charset) decode(raw string, latin0 *charmap.Charmap) string {
	if isASCII(raw) {
		return raw
	}
	switch {
	case cs.utf8:
		return strings.ToValidUTF8(raw, "\uFFFD")
	case cs.single != nil:
		out, err := cs.single.String(raw)
		if err != nil {
			return strings.Repeat("\uFFFD", utf8.RuneCountInString(raw))
		}
		return out
	case cs.ext:
		return cs.decode2022(raw, latin0)
	}
	// Default repertoire with stray 8-bit bytes: read them as Latin-1, the
	// commonest real-world cause.
	out, _ := charmap.ISO8859_1.NewDecoder().String(raw)
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == 0x1b {
			return false
		}
	}
	return true
}

// decode2022 follows escape sequences (PS3.5 6.1.2.5). The state returns
// to the initial one at each value and PN component delimiter and at
// control characters.
func (cs *charset) decode2022(raw string, latin0 *charmap.Charmap) string {
	st := charsetState{g0: cs.g0, g1: cs.g1, latin: latin0}
	reset := st
	var b strings.Builder
	for i := 0; i < len(raw); {
		c := raw[i]
		if c == 0x1b {
			n := st.escape(raw[i:])
			if n == 0 {
				b.WriteRune('\uFFFD')
				n = 1
			}
			i += n
			continue
		}
		if c < 0x80 {
			if c == '\\' || c == '^' || c == '=' || c < 0x20 {
				if st.g0 != gsJIS0208 && st.g0 != gsJIS0212 || c < 0x20 {
					b.WriteByte(c)
					st = reset
					i++
					continue
				}
			}
			switch st.g0 {
			case gsJIS0208, gsJIS0212:
				if i+1 >= len(raw) || raw[i+1] < 0x21 || raw[i+1] > 0x7e {
					b.WriteRune('\uFFFD')
					i++
					continue
				}
				esc := "\x1b$B"
				if st.g0 == gsJIS0212 {
					esc = "\x1b$(D"
				}
				s, err := japanese.ISO2022JP.NewDecoder().String(esc + raw[i:i+2] + "\x1b(B")
				if err != nil || s == "" {
					s = "\uFFFD"
				}
				b.WriteString(s)
				i += 2
			case gsJISRoman:
				switch c {
				case 0x5c:
					b.WriteRune('¥')
				case 0x7e:
					b.WriteRune('‾')
				default:
					b.WriteByte(c)
				}
				i++
			default:
				b.WriteByte(c)
				i++
			}
			continue
		}
		switch st.g1 {
		case gsLatin:
			if st.latin == nil {
				b.WriteRune('\uFFFD')
			} else {
				b.WriteRune(st.latin.DecodeByte(c))
			}
			i++
		case gsJISKatakana:
			if c >= 0xa1 && c <= 0xdf {
				b.WriteRune(rune(0xff61 + int(c) - 0xa1))
			} else {
				b.WriteRune('\uFFFD')
			}
			i++
		case gsGB2312, gsKSX1001:
			if i+1 >= len(raw) || raw[i+1] < 0xa1 {
				b.WriteRune('\uFFFD')
				i++
				continue
			}
			var d *encoding.Decoder
			if st.g1 == gsGB2312 {
				d = simplifiedchinese.GBK.NewDecoder()
			} else {
				d = korean.EUCKR.NewDecoder()
			}
			s, err := d.String(raw[i : i+2])
			if err != nil || s == "" {
				s = "\uFFFD"
			}
			b.WriteString(s)
			i += 2
		default:
			b.WriteRune('\uFFFD')
			i++
		}
	}
	return b.String()
}

// escape applies the escape sequence at s[0] and returns its length, or 0
// if it is not one DICOM defines.
func (st *charsetState) escape(s string) int {
	switch {
	case strings.HasPrefix(s, "\x1b(B"):
		st.g0 = gsASCII
		return 3
	case strings.HasPrefix(s, "\x1b(J"):
		st.g0 = gsJISRoman
		return 3
	case strings.HasPrefix(s, "\x1b)I"):
		st.g1 = gsJISKatakana
		return 3
	case strings.HasPrefix(s, "\x1b$B"):
		st.g0 = gsJIS0208
		return 3
	case strings.HasPrefix(s, "\x1b$(D"):
		st.g0 = gsJIS0212
		return 4
	case strings.HasPrefix(s, "\x1b$)A"):
		st.g1 = gsGB2312
		return 4
	case strings.HasPrefix(s, "\x1b$)C"):
		st.g1 = gsKSX1001
		return 4
	case len(s) >= 3 && s[1] == '-':
		if cm, ok := latinEscapes[s[2]]; ok {
			st.g1, st.latin = gsLatin, cm
			return 3
		}
	}
	return 0
}

// textVR reports whether (0008,0005) applies to values of vr (PS3.5 6.2).
func textVR(vr string) bool {
	switch vr {
	case "SH", "LO", "ST", "LT", "UT", "PN", "UC":
		return true
	}
	return false
}
