package dlp

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Options configures a Scanner. The zero value is the default configuration.
type Options struct {
	// Hints are values taken from the patient's own record; exact
	// (normalised) mentions of them are findings with a high score.
	Hints Hints
	// MRN configures medical-record-number detection.
	MRN MRNConfig
	// MinScore drops findings scored below it. Zero means DefaultMinScore.
	MinScore float64
}

// DefaultMinScore is the score below which findings are dropped by default.
const DefaultMinScore = 0.5

// MRNConfig configures medical record number detection. Numbers are found
// after a context keyword ("MRN", "病历号", ...); Pattern narrows what an id
// looks like, and Bare patterns match anywhere without a keyword.
type MRNConfig struct {
	// Keywords are added to the default context keywords (DefaultMRNKeywords);
	// matching is case-insensitive for ASCII.
	Keywords []string
	// Pattern, when set, must match the whole id token after a keyword (e.g.
	// `^MR\d{7,8}$`); otherwise the default shape applies (4–20 letters,
	// digits and '-', at least 3 digits, not an ICD-10 or LOINC code).
	Pattern string
	// Bare are patterns for this hospital's MRN format matched anywhere in
	// the text, without a keyword (e.g. `\bMR\d{8}\b`). They cost a regexp
	// pass per text; leave empty unless the format is distinctive.
	Bare []string
}

// Scanner finds PHI. It is safe for concurrent use.
type Scanner struct {
	minScore   float64
	mrnKW      []string // lower-cased ASCII keywords beyond the defaults
	mrnPattern *regexp.Regexp
	mrnBare    []*regexp.Regexp
	hints      *compiledHints
}

// New builds a Scanner. It fails only on an invalid MRN pattern; the error
// names the pattern's position, never text being scanned.
func New(o Options) (*Scanner, error) {
	sc := &Scanner{minScore: o.MinScore}
	if sc.minScore == 0 {
		sc.minScore = DefaultMinScore
	}
	for _, k := range o.MRN.Keywords {
		k = strings.TrimSpace(k)
		if k != "" {
			sc.mrnKW = append(sc.mrnKW, asciiLower(k))
		}
	}
	if o.MRN.Pattern != "" {
		re, err := regexp.Compile(o.MRN.Pattern)
		if err != nil {
			return nil, fmt.Errorf("dlp: MRN pattern: %w", err)
		}
		sc.mrnPattern = re
	}
	for i, p := range o.MRN.Bare {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("dlp: MRN bare pattern %d: %w", i, err)
		}
		sc.mrnBare = append(sc.mrnBare, re)
	}
	sc.hints = compileHints(o.Hints)
	return sc, nil
}

var defaultScanner, _ = New(Options{})

// Default returns a Scanner with the default options.
func Default() *Scanner { return defaultScanner }

// WithHints returns a copy of the scanner that also reports mentions of the
// given patient's values.
func (sc *Scanner) WithHints(h Hints) *Scanner {
	c := *sc
	c.hints = compileHints(h)
	return &c
}

// ScanText scans plain text with the default scanner.
func ScanText(text string) []Finding { return defaultScanner.ScanText(text) }

// ScanText returns the findings in text, non-overlapping and sorted by start,
// with offsets in code points. Invalid UTF-8 is scanned as if each bad byte
// were U+FFFD (one code point).
func (sc *Scanner) ScanText(text string) []Finding {
	fs := sc.scanBytes(text)
	toCodePoints(text, fs)
	return fs
}

// scanBytes returns resolved findings with byte offsets.
func (sc *Scanner) scanBytes(s string) []Finding {
	st := state{sc: sc, s: s, out: make([]Finding, 0, min(4+len(s)/32, 4096)), ssnCtx: -1, passportCtx: -1, idCtx: -1}
	st.run()
	for _, re := range sc.mrnBare {
		for _, m := range re.FindAllStringIndex(s, -1) {
			if m[1] > m[0] {
				st.add(MRN, m[0], m[1], 0.8, "mrn-bare")
			}
		}
	}
	if sc.hints != nil {
		sc.hints.find(&st)
	}
	out := st.out[:0]
	for _, f := range st.out {
		if f.Score >= sc.minScore {
			out = append(out, f)
		}
	}
	return resolve(out)
}

// state is one scan of one string.
type state struct {
	sc  *Scanner
	s   string
	out []Finding
	// Byte offsets up to which a context keyword applies.
	ssnCtx, passportCtx, idCtx int
	// Ends of the last address and URL found: detectors that scan far
	// ahead do not restart inside them.
	addrEnd, urlEnd int
}

func (st *state) add(t Type, start, end int, score float64, det string) {
	st.out = append(st.out, Finding{Type: t, Start: start, End: end, Score: score, Detector: det})
}

// run is the single pass: cheap byte tests pick which parsers to try.
func (st *state) run() {
	s := st.s
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case isDigit(c):
				j := i + 1
				for j < len(s) && isDigit(s[j]) {
					j++
				}
				if i == 0 || !isAlnum(s[i-1]) && !inToken(s, i) {
					st.numeric(i, j)
				}
				i = j
			case isLetter(c):
				j := i + 1
				for j < len(s) && isLetter(s[j]) {
					j++
				}
				if i == 0 || !isAlnum(s[i-1]) {
					st.word(i, j)
				}
				i = j
			case c == '@':
				st.email(i)
				i++
			case c == '+':
				st.plus(i)
				i++
			case c == '(':
				st.paren(i)
				i++
			default:
				i++
			}
			continue
		}
		// Han characters and CJK punctuation are three bytes; decode those
		// inline.
		if c >= 0xE0 && c <= 0xEF && i+2 < len(s) && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 {
			r := rune(c&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F)
			if r >= hanLo && r <= hanHi || r == '〇' {
				st.han(i, r)
			}
			i += 3
			continue
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
	}
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isUpper(c byte) bool  { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool  { return c >= 'a' && c <= 'z' }
func isAlnum(c byte) bool  { return isDigit(c) || isLetter(c) }

// digitsAt returns the end of the digit run starting at i.
func digitsAt(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// atoi parses a short all-digit string.
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// endsClean reports whether position j is not followed by a letter or digit
// (a token boundary on the right).
func endsClean(s string, j int) bool {
	return j >= len(s) || !isAlnum(s[j])
}

// endsNum reports whether j is not followed by a digit, nor by a separator
// and a digit that would make the number longer.
func endsNum(s string, j int) bool {
	if j >= len(s) {
		return true
	}
	if isAlnum(s[j]) {
		return false
	}
	if (s[j] == '-' || s[j] == '.' || s[j] == '/') && j+1 < len(s) && isDigit(s[j+1]) {
		return false
	}
	// A hyphenated token goes on ("…-0755-1234-abcd", a UUID).
	if s[j] == '-' && j+1 < len(s) && isLetter(s[j+1]) {
		return false
	}
	return true
}

// inToken reports whether the number at i continues a token that started
// earlier: a dotted or slashed number ("1.2.840", "12/25") or a hyphenated
// hex/number token ("4f9c-0755-…", "22-8316"). Its parts are not numbers of
// their own. A label before the number ("SSN:", "Tel.", "ID-") is not a token.
func inToken(s string, i int) bool {
	if i < 2 {
		return false
	}
	p := s[i-2]
	switch s[i-1] {
	case '.', '/':
		return isDigit(p)
	case '-':
		return isDigit(p) || (p >= 'a' && p <= 'f')
	case '_':
		return isAlnum(p)
	}
	return false
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if isUpper(c) {
			b[i] = c | 0x20
		}
	}
	return string(b)
}

// hasPrefixFold reports whether s[i:] starts with the lower-case ASCII
// string p, ignoring ASCII case.
func hasPrefixFold(s string, i int, p string) bool {
	if len(s)-i < len(p) {
		return false
	}
	for k := 0; k < len(p); k++ {
		c := s[i+k]
		if isUpper(c) {
			c |= 0x20
		}
		if c != p[k] {
			return false
		}
	}
	return true
}

// skipSpaces skips ASCII blanks and ideographic spaces.
func skipSpaces(s string, i int) int {
	for i < len(s) {
		switch {
		case s[i] == ' ' || s[i] == '\t':
			i++
		case strings.HasPrefix(s[i:], "\u3000"):
			i += 3
		default:
			return i
		}
	}
	return i
}

// skipSep skips blanks and one label separator (':', '：', '#', '=', '-').
func skipSep(s string, i int) int {
	i = skipSpaces(s, i)
	switch {
	case i < len(s) && (s[i] == ':' || s[i] == '#' || s[i] == '=' || s[i] == '-'):
		i++
	case strings.HasPrefix(s[i:], "："):
		i += len("：")
	}
	return skipSpaces(s, i)
}
