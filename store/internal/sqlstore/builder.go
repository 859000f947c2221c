package sqlstore

import "strings"

// builder accumulates SQL text and its bound arguments.
type builder struct {
	d    Dialect
	sb   strings.Builder
	args []any
}

// arg binds v and returns its placeholder.
func (b *builder) arg(v any) string {
	b.args = append(b.args, v)
	return b.d.Placeholder(len(b.args))
}

// w writes SQL text.
func (b *builder) w(parts ...string) {
	for _, p := range parts {
		b.sb.WriteString(p)
	}
}

// list binds every value and returns "(p1, p2, ...)".
func (b *builder) list(vals []string) string {
	var s strings.Builder
	s.WriteByte('(')
	for i, v := range vals {
		if i > 0 {
			s.WriteString(", ")
		}
		s.WriteString(b.arg(v))
	}
	s.WriteByte(')')
	return s.String()
}

// int64List is list for integer keys.
func (b *builder) int64List(vals []int64) string {
	var s strings.Builder
	s.WriteByte('(')
	for i, v := range vals {
		if i > 0 {
			s.WriteString(", ")
		}
		s.WriteString(b.arg(v))
	}
	s.WriteByte(')')
	return s.String()
}

// prefixUpper is the exclusive upper bound of the strings that start with p
// in code-point (UTF-8 byte) order: p followed by the highest code point,
// U+10FFFF, a permanent noncharacter that never occurs in stored text.
func prefixUpper(p string) string { return p + "\U0010FFFF" }
