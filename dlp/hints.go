package dlp

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Hints are values from the patient's own record (for example the FHIR
// Patient): mentions of them in the text are findings with a high score,
// whatever their shape.
type Hints struct {
	// Names are full names as written ("John Smith", "王丽"); for HumanName
	// use NameHints.
	Names []string
	// Identifiers are MRNs, resident ids, insurance numbers and the like.
	Identifiers []string
	// Phones are compared by their digits (the last 7 or more).
	Phones    []string
	Emails    []string
	Addresses []string
}

// NameHints returns the name strings to look for given a family name and
// given names: "Given Family", "Family Given", "Family, Given", "FamilyGiven"
// (for Chinese), and each part that is long enough to be distinctive.
func NameHints(family string, given ...string) []string {
	family = strings.TrimSpace(family)
	g := strings.TrimSpace(strings.Join(given, " "))
	var out []string
	add := func(s string) {
		if utf8.RuneCountInString(strings.TrimSpace(s)) >= 2 {
			out = append(out, strings.TrimSpace(s))
		}
	}
	if family != "" && g != "" {
		add(g + " " + family)
		add(family + " " + g)
		add(family + ", " + g)
		if hasHan(family) {
			add(family + strings.Join(given, ""))
		}
	}
	// Single parts: Latin parts of 3+ letters; Han parts of 2+ characters.
	for _, part := range append([]string{family}, given...) {
		n := utf8.RuneCountInString(part)
		if (hasHan(part) && n >= 2) || (!hasHan(part) && n >= 3) {
			add(part)
		}
	}
	return out
}

func hasHan(s string) bool {
	for _, r := range s {
		if isHan(r) {
			return true
		}
	}
	return false
}

type hintPattern struct {
	lower string // ASCII-lower-cased, blanks collapsed
	typ   Type
	score float64
	word  bool // needs alphanumeric boundaries
}

type compiledHints struct {
	pats   []hintPattern
	phones []string // digits only
}

func normHint(s string) string {
	return asciiLower(strings.Join(strings.Fields(s), " "))
}

func compileHints(h Hints) *compiledHints {
	c := &compiledHints{}
	add := func(vals []string, t Type, score float64, minLen int) {
		for _, v := range vals {
			n := normHint(v)
			if utf8.RuneCountInString(n) < minLen {
				continue
			}
			c.pats = append(c.pats, hintPattern{lower: n, typ: t, score: score, word: !hasHan(n)})
		}
	}
	add(h.Names, Name, 0.95, 2)
	add(h.Identifiers, Identifier, 0.95, 4)
	add(h.Emails, Email, 0.99, 5)
	add(h.Addresses, Address, 0.95, 5)
	for _, p := range h.Phones {
		d := digitsOnly(p)
		if len(d) > 11 {
			d = d[len(d)-11:]
		}
		if len(d) >= 7 {
			c.phones = append(c.phones, d)
		}
	}
	if len(c.pats) == 0 && len(c.phones) == 0 {
		return nil
	}
	return c
}

func digitsOnly(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// foldSpaces lower-cases ASCII and maps every run of blanks to one space,
// keeping a map from each output byte to its input offset.
func foldSpaces(s string) (string, []int) {
	b := make([]byte, 0, len(s))
	pos := make([]int, 0, len(s)+1)
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			if space {
				continue
			}
			space = true
			c = ' '
		} else {
			space = false
		}
		if isUpper(c) {
			c |= 0x20
		}
		b = append(b, c)
		pos = append(pos, i)
	}
	pos = append(pos, len(s))
	return string(b), pos
}

func (c *compiledHints) find(st *state) {
	s := st.s
	if len(c.pats) > 0 {
		low, pos := foldSpaces(s)
		for _, p := range c.pats {
			for off := 0; ; {
				k := strings.Index(low[off:], p.lower)
				if k < 0 {
					break
				}
				// Matches do not overlap (as strings.Count counts), which
				// keeps overlap groups small whatever the hint.
				a, b := off+k, off+k+len(p.lower)
				off = b
				if p.word && ((a > 0 && wordBefore(low, a)) || (b < len(low) && wordByte(low, b))) {
					continue
				}
				st.add(p.typ, pos[a], pos[b-1]+1, p.score, "hint")
			}
		}
	}
	if len(c.phones) == 0 {
		return
	}
	// Digits of the text with separators dropped inside numbers.
	var digs []byte
	var at []int
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			digs = append(digs, s[i])
			at = append(at, i)
		} else if len(digs) > 0 && !(s[i] == ' ' || s[i] == '-' || s[i] == '.' || s[i] == '(' || s[i] == ')') {
			digs = append(digs, '|')
			at = append(at, i)
		}
	}
	d := string(digs)
	for _, ph := range c.phones {
		for off := 0; ; {
			k := strings.Index(d[off:], ph)
			if k < 0 {
				break
			}
			a, b := off+k, off+k+len(ph)
			off = b
			if b < len(d) && isDigit(d[b]) {
				continue
			}
			st.add(Phone, at[a], at[b-1]+1, 0.95, "hint")
		}
	}
}

func wordByte(s string, i int) bool {
	c := s[i]
	if c < utf8.RuneSelf {
		return isAlnum(c)
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.IsLetter(r) && !isHan(r)
}

func wordBefore(s string, i int) bool {
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	if r < utf8.RuneSelf {
		return isAlnum(byte(r))
	}
	return unicode.IsLetter(r) && !isHan(r)
}
