package search

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// NormalizeString is the form string parameters index and match: full Unicode
// case folding, compatibility decomposition (NFKD) and removal of combining
// marks, so "Zhāng", "ZHANG" and full-width "Ｚｈａｎｇ" all become "zhang" and
// "Straße" becomes "strasse". Han, Hangul, Hiragana, Katakana and Bopomofo
// characters pass through unchanged (NFKD would split Hangul syllables into
// jamo and rewrite CJK compatibility ideographs). Whitespace is kept as given.
func NormalizeString(s string) string {
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return normalizeUnicode(s)
		}
		if 'A' <= c && c <= 'Z' {
			upper = true
		}
	}
	if !upper {
		return s
	}
	return strings.ToLower(s)
}

var folders = sync.Pool{New: func() any { c := cases.Fold(); return &c }}

func isCJK(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hangul, unicode.Hiragana, unicode.Katakana, unicode.Bopomofo)
}

func normalizeUnicode(s string) string {
	c := folders.Get().(*cases.Caser)
	defer folders.Put(c)
	var out strings.Builder
	out.Grow(len(s))
	// Runs of CJK text are copied; every other run is folded, decomposed,
	// stripped of marks and folded again (NFKD can yield capitals: "℡" -> "TEL").
	for len(s) > 0 {
		i := 0
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			if isCJK(r) {
				break
			}
			i += n
		}
		if i > 0 {
			out.WriteString(foldRun(c, s[:i]))
			s = s[i:]
		}
		j := 0
		for j < len(s) {
			r, n := utf8.DecodeRuneInString(s[j:])
			if !isCJK(r) {
				break
			}
			j += n
		}
		out.WriteString(s[:j])
		s = s[j:]
	}
	return out.String()
}

func foldRun(c *cases.Caser, s string) string {
	c.Reset()
	s = norm.NFKD.String(c.String(s))
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, s)
	c.Reset()
	return c.String(s)
}
