package dlp

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// span is a range of code points in the original markup.
type span struct{ start, end int }

// stripXHTML turns FHIR narrative XHTML into text for scanning: tags are
// dropped (block-level tags and <br> become one blank so words do not run
// together), character references are decoded. For every rune of the text,
// orig holds the code points of the markup it came from, so findings map
// back to offsets in the div string.
func stripXHTML(div string) (string, []span) {
	var b strings.Builder
	orig := make([]span, 0, len(div))
	cp := 0 // code point index into div
	for i := 0; i < len(div); {
		c := div[i]
		switch {
		case c == '<':
			e := strings.IndexByte(div[i:], '>')
			if e < 0 {
				e = len(div) - i - 1
			}
			tag := div[i : i+e+1]
			n := utf8.RuneCountInString(tag)
			if blockTag(tag) {
				b.WriteByte(' ')
				orig = append(orig, span{cp, cp + n})
			}
			i += e + 1
			cp += n
		case c == '&':
			e := strings.IndexByte(div[i:min(len(div), i+12)], ';')
			if r, ok := entity(div[i+1 : i+max(e, 1)]); e > 1 && ok {
				b.WriteRune(r)
				orig = append(orig, span{cp, cp + e + 1})
				i += e + 1
				cp += e + 1
				continue
			}
			b.WriteByte('&')
			orig = append(orig, span{cp, cp + 1})
			i++
			cp++
		default:
			r, n := utf8.DecodeRuneInString(div[i:])
			b.WriteRune(r)
			orig = append(orig, span{cp, cp + 1})
			i += n
			cp++
		}
	}
	return b.String(), orig
}

// blockTag reports tags that separate words.
func blockTag(tag string) bool {
	t := strings.TrimLeft(tag, "</")
	k := 0
	for k < len(t) && isAlnum(t[k]) {
		k++
	}
	switch strings.ToLower(t[:k]) {
	case "br", "p", "div", "li", "ul", "ol", "tr", "td", "th", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "pre", "blockquote", "dd", "dt", "dl", "caption", "thead", "tbody":
		return true
	}
	return false
}

// entity decodes the body of a character reference ("amp", "#39", "#x4E2D").
func entity(name string) (rune, bool) {
	switch name {
	case "amp":
		return '&', true
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "quot":
		return '"', true
	case "apos":
		return '\'', true
	case "nbsp":
		return ' ', true
	}
	if len(name) > 1 && name[0] == '#' {
		var v uint64
		var err error
		if name[1] == 'x' || name[1] == 'X' {
			v, err = strconv.ParseUint(name[2:], 16, 32)
		} else {
			v, err = strconv.ParseUint(name[1:], 10, 32)
		}
		if err == nil && v > 0 && utf8.ValidRune(rune(v)) {
			return rune(v), true
		}
	}
	return 0, false
}
