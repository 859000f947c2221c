package gen

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// pstep is one step of a plain path as written in the expression, with the
// restrictions attached to it.
type pstep struct {
	name       string
	item       int    // [n] gives n+1; 0 means every item
	cast       string // as(T) or (... as T)
	whereChild string // where(child='value')
	whereValue string
	resolveIs  string // where(resolve() is T)
}

// branch is one union branch of an expression: a plain path.
type branch struct{ steps []pstep }

// dotted renders the branch as a dotted element path, a cast choice element
// under its concrete name and the other restrictions left out.
func (b branch) dotted() string {
	parts := make([]string, len(b.steps))
	for i, s := range b.steps {
		parts[i] = s.name
		if s.cast != "" {
			parts[i] += upperFirst(s.cast)
		}
	}
	return strings.Join(parts, ".")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

var errNotPlain = errors.New("not a plain path")

// parseBranch parses the plain-path forms:
//
//	A.b.c
//	(A.b as T) and (A.b as T).c
//	A.b.as(T)
//	A.b.where(resolve() is T)
//	A.b.where(c='v').d
//	A.b[0].c
func parseBranch(s string) (branch, error) {
	var b branch
	t := &tokens{s: s}
	if t.peek() == "(" {
		t.next()
		if err := t.path(&b); err != nil {
			return b, err
		}
		if t.next() != "as" {
			return b, errNotPlain
		}
		typ := t.next()
		if !isIdent(typ) || t.next() != ")" {
			return b, errNotPlain
		}
		b.steps[len(b.steps)-1].cast = typ
		if t.peek() == "" {
			return b, nil
		}
		if t.next() != "." {
			return b, errNotPlain
		}
		if err := t.path(&b); err != nil {
			return b, err
		}
	} else if err := t.path(&b); err != nil {
		return b, err
	}
	if t.peek() != "" {
		return b, fmt.Errorf("%w: trailing %q", errNotPlain, t.peek())
	}
	return b, nil
}

type tokens struct {
	s   string
	pos int
	buf []string
}

func (t *tokens) scan() string {
	for t.pos < len(t.s) && t.s[t.pos] == ' ' {
		t.pos++
	}
	if t.pos >= len(t.s) {
		return ""
	}
	c := t.s[t.pos]
	switch {
	case c == '\'':
		end := strings.IndexByte(t.s[t.pos+1:], '\'')
		if end < 0 {
			t.pos = len(t.s)
			return "'"
		}
		tok := t.s[t.pos : t.pos+end+2]
		t.pos += end + 2
		return tok
	case isIdentByte(c):
		start := t.pos
		for t.pos < len(t.s) && (isIdentByte(t.s[t.pos]) || t.s[t.pos] == '-') {
			t.pos++
		}
		return t.s[start:t.pos]
	case c == '!' && t.pos+1 < len(t.s) && t.s[t.pos+1] == '=':
		t.pos += 2
		return "!="
	default:
		t.pos++
		return string(c)
	}
}

func (t *tokens) peek() string {
	if len(t.buf) == 0 {
		t.buf = append(t.buf, t.scan())
	}
	return t.buf[0]
}

func (t *tokens) next() string {
	tok := t.peek()
	t.buf = t.buf[1:]
	return tok
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isIdent(s string) bool {
	if s == "" || !unicode.IsLetter(rune(s[0])) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdentByte(s[i]) {
			return false
		}
	}
	return true
}

// path reads Ident ('.' segment)* into b.
func (t *tokens) path(b *branch) error {
	first := t.next()
	if !isIdent(first) {
		return errNotPlain
	}
	b.steps = append(b.steps, pstep{name: first})
	if err := t.index(b); err != nil {
		return err
	}
	for t.peek() == "." {
		t.next()
		name := t.next()
		if !isIdent(name) {
			return errNotPlain
		}
		last := &b.steps[len(b.steps)-1]
		switch {
		case name == "as" && t.peek() == "(":
			t.next()
			typ := t.next()
			if !isIdent(typ) || t.next() != ")" || last.cast != "" {
				return errNotPlain
			}
			last.cast = typ
		case name == "where" && t.peek() == "(":
			t.next()
			if err := t.where(last); err != nil {
				return err
			}
		default:
			if t.peek() == "(" { // any other function call
				return errNotPlain
			}
			b.steps = append(b.steps, pstep{name: name})
			if err := t.index(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// index reads an optional [n] after a step.
func (t *tokens) index(b *branch) error {
	if t.peek() != "[" {
		return nil
	}
	t.next()
	n, err := strconv.Atoi(t.next())
	if err != nil || n < 0 || t.next() != "]" {
		return errNotPlain
	}
	b.steps[len(b.steps)-1].item = n + 1
	return nil
}

// where reads the inside of where(...) and its closing parenthesis.
func (t *tokens) where(s *pstep) error {
	if s.whereChild != "" || s.resolveIs != "" {
		return errNotPlain
	}
	first := t.next()
	if first == "resolve" {
		if t.next() != "(" || t.next() != ")" || t.next() != "is" {
			return errNotPlain
		}
		typ := t.next()
		if !isIdent(typ) || t.next() != ")" {
			return errNotPlain
		}
		s.resolveIs = typ
		return nil
	}
	if !isIdent(first) || t.next() != "=" {
		return errNotPlain
	}
	lit := t.next()
	if len(lit) < 2 || lit[0] != '\'' || lit[len(lit)-1] != '\'' || t.next() != ")" {
		return errNotPlain
	}
	s.whereChild, s.whereValue = first, lit[1:len(lit)-1]
	return nil
}
