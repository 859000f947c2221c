package fhirpath

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokKind int

const (
	tEOF      tokKind = iota
	tIdent            // identifier or keyword
	tDelim            // `delimited identifier`
	tString           // 'string' (text holds the unescaped value)
	tNumber           // 12 or 12.5
	tDateTime         // @... (text holds the part after @)
	tExtConst         // %name, %`name`, %'name' (text holds the name)
	tSpecial          // $this, $index, $total (text holds the name without $)
	tOp               // punctuation and symbolic operators
)

type token struct {
	kind tokKind
	text string
	pos  int // byte offset
}

// lexer turns an expression into tokens.
type lexer struct {
	src  string
	toks []token
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) }

func (lx *lexer) errAt(off int, format string, args ...any) *Error {
	return newErr(KindSyntax, CodeSyntax, positionOf(lx.src, off), format, args...)
}

// positionOf converts a byte offset into a line/column position.
func positionOf(src string, off int) Position {
	if off > len(src) {
		off = len(src)
	}
	line, col := 1, 1
	for i := 0; i < off; i++ {
		if src[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return Position{Offset: off, Line: line, Column: col}
}

func lex(src string) ([]token, error) {
	lx := &lexer{src: src}
	if !utf8.ValidString(src) {
		return nil, lx.errAt(0, "expression is not valid UTF-8")
	}
	i := 0
	for {
		// whitespace and comments
		for i < len(src) {
			c := src[i]
			if c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' {
				i++
				continue
			}
			if c == '/' && i+1 < len(src) && src[i+1] == '/' {
				for i < len(src) && src[i] != '\n' {
					i++
				}
				continue
			}
			if c == '/' && i+1 < len(src) && src[i+1] == '*' {
				end := strings.Index(src[i+2:], "*/")
				if end < 0 {
					return nil, lx.errAt(i, "unterminated comment")
				}
				i += 2 + end + 2
				continue
			}
			break
		}
		if i >= len(src) {
			lx.toks = append(lx.toks, token{kind: tEOF, pos: i})
			return lx.toks, nil
		}
		start := i
		c := src[i]
		switch {
		case isIdentStart(c):
			for i < len(src) && isIdentPart(src[i]) {
				i++
			}
			lx.toks = append(lx.toks, token{kind: tIdent, text: src[start:i], pos: start})
		case isDigit(c):
			for i < len(src) && isDigit(src[i]) {
				i++
			}
			if i+1 < len(src) && src[i] == '.' && isDigit(src[i+1]) {
				i++
				for i < len(src) && isDigit(src[i]) {
					i++
				}
			}
			lx.toks = append(lx.toks, token{kind: tNumber, text: src[start:i], pos: start})
		case c == '`':
			s, n, err := lx.quoted(i, '`')
			if err != nil {
				return nil, err
			}
			i = n
			lx.toks = append(lx.toks, token{kind: tDelim, text: s, pos: start})
		case c == '\'':
			s, n, err := lx.quoted(i, '\'')
			if err != nil {
				return nil, err
			}
			i = n
			lx.toks = append(lx.toks, token{kind: tString, text: s, pos: start})
		case c == '@':
			n, err := lx.dateTime(i + 1)
			if err != nil {
				return nil, err
			}
			lx.toks = append(lx.toks, token{kind: tDateTime, text: src[i+1 : n], pos: start})
			i = n
		case c == '%':
			i++
			if i < len(src) && (src[i] == '`' || src[i] == '\'') {
				s, n, err := lx.quoted(i, src[i])
				if err != nil {
					return nil, err
				}
				i = n
				lx.toks = append(lx.toks, token{kind: tExtConst, text: s, pos: start})
				break
			}
			if i >= len(src) || !isIdentStart(src[i]) {
				return nil, lx.errAt(start, "expected a name after '%%'")
			}
			for i < len(src) && (isIdentPart(src[i]) || src[i] == '-') {
				i++
			}
			lx.toks = append(lx.toks, token{kind: tExtConst, text: src[start+1 : i], pos: start})
		case c == '$':
			i++
			for i < len(src) && isIdentPart(src[i]) {
				i++
			}
			name := src[start+1 : i]
			if name != "this" && name != "index" && name != "total" {
				return nil, lx.errAt(start, "unknown special variable (expected $this, $index or $total)")
			}
			lx.toks = append(lx.toks, token{kind: tSpecial, text: name, pos: start})
		default:
			op := ""
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch two {
			case "<=", ">=", "!=", "!~":
				op = two
			default:
				switch c {
				case '.', '[', ']', '(', ')', ',', '+', '-', '*', '/', '&', '|', '=', '~', '<', '>', '{', '}':
					op = string(c)
				}
			}
			if op == "" {
				return nil, lx.errAt(start, "unexpected character")
			}
			i += len(op)
			lx.toks = append(lx.toks, token{kind: tOp, text: op, pos: start})
		}
	}
}

// quoted reads a quoted string or delimited identifier starting at src[i]
// (the opening quote) and returns its unescaped text and the offset after the
// closing quote.
func (lx *lexer) quoted(i int, q byte) (string, int, error) {
	src := lx.src
	start := i
	i++
	var b strings.Builder
	for {
		if i >= len(src) {
			return "", 0, lx.errAt(start, "unterminated string or delimited identifier")
		}
		c := src[i]
		if c == q {
			return b.String(), i + 1, nil
		}
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(src) {
			return "", 0, lx.errAt(i, "unterminated escape sequence")
		}
		e := src[i+1]
		i += 2
		switch e {
		case '\'', '"', '`', '\\', '/':
			b.WriteByte(e)
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			if i+4 > len(src) {
				return "", 0, lx.errAt(i-2, "invalid unicode escape")
			}
			v, err := strconv.ParseUint(src[i:i+4], 16, 32)
			if err != nil {
				return "", 0, lx.errAt(i-2, "invalid unicode escape")
			}
			i += 4
			r := rune(v)
			if r >= 0xD800 && r < 0xDC00 && i+6 <= len(src) && src[i] == '\\' && src[i+1] == 'u' {
				if lo, err := strconv.ParseUint(src[i+2:i+6], 16, 32); err == nil && lo >= 0xDC00 && lo < 0xE000 {
					r = (r-0xD800)<<10 + (rune(lo) - 0xDC00) + 0x10000
					i += 6
				}
			}
			if !utf8.ValidRune(r) {
				return "", 0, lx.errAt(i-6, "invalid unicode escape")
			}
			b.WriteRune(r)
		default:
			return "", 0, lx.errAt(i-2, "invalid escape sequence")
		}
	}
}

// dateTime scans the body of a date/time literal starting after '@' and
// returns the offset after it. Validation of the ranges happens in the parser.
func (lx *lexer) dateTime(i int) (int, error) {
	src := lx.src
	start := i
	digits := func(n int) bool {
		if i+n > len(src) {
			return false
		}
		for k := 0; k < n; k++ {
			if !isDigit(src[i+k]) {
				return false
			}
		}
		i += n
		return true
	}
	timePart := func() error {
		if !digits(2) {
			return nil // "@2015T" is a year-precision DateTime
		}
		if i < len(src) && src[i] == ':' {
			i++
			if !digits(2) {
				return lx.errAt(start-1, "malformed time in date/time literal")
			}
			if i < len(src) && src[i] == ':' {
				i++
				if !digits(2) {
					return lx.errAt(start-1, "malformed time in date/time literal")
				}
				if i+1 < len(src) && src[i] == '.' && isDigit(src[i+1]) {
					i++
					for i < len(src) && isDigit(src[i]) {
						i++
					}
				}
			}
		}
		return nil
	}
	if i < len(src) && src[i] == 'T' {
		i++
		if !digits(2) {
			return 0, lx.errAt(start-1, "malformed time literal")
		}
		i -= 2
		if err := timePart(); err != nil {
			return 0, err
		}
		return i, nil
	}
	if !digits(4) {
		return 0, lx.errAt(start-1, "malformed date literal")
	}
	if i+2 < len(src) && src[i] == '-' && isDigit(src[i+1]) {
		i++
		if !digits(2) {
			return 0, lx.errAt(start-1, "malformed date literal")
		}
		if i+2 < len(src) && src[i] == '-' && isDigit(src[i+1]) {
			i++
			if !digits(2) {
				return 0, lx.errAt(start-1, "malformed date literal")
			}
		}
	}
	if i < len(src) && src[i] == 'T' {
		i++
		if err := timePart(); err != nil {
			return 0, err
		}
		// timezone
		if i < len(src) && src[i] == 'Z' {
			i++
		} else if i+5 < len(src)+0 && (src[i] == '+' || src[i] == '-') && i+6 <= len(src) &&
			isDigit(src[i+1]) && isDigit(src[i+2]) && src[i+3] == ':' && isDigit(src[i+4]) && isDigit(src[i+5]) {
			i += 6
		}
	}
	return i, nil
}
