package deid

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// Finding is one PHI finding in a text: a type name and a half-open range
// in code points. It never carries the value.
type Finding struct {
	Type       string
	Start, End int
}

// Hints are the patient's own values, which a scanner looks for verbatim in
// free text besides its own patterns.
type Hints struct {
	Names       []string
	Identifiers []string
	Phones      []string
	Emails      []string
	Addresses   []string
	Dates       []string
}

// TextScanner finds PHI in free text. The dlp package's engine satisfies it
// through a small adapter; builtinScanner is the fallback.
type TextScanner interface {
	Scan(ctx context.Context, text string, hints Hints) []Finding
}

// collectHints gathers a Patient's identifying values for the scanner.
func collectHints(p map[string]any) Hints {
	var h Hints
	for _, n := range arr(p["name"]) {
		nm, _ := n.(map[string]any)
		h.Names = appendStr(h.Names, nm["family"], nm["text"])
		for _, g := range arr(nm["given"]) {
			h.Names = appendStr(h.Names, g)
		}
	}
	for _, id := range arr(p["identifier"]) {
		m, _ := id.(map[string]any)
		h.Identifiers = appendStr(h.Identifiers, m["value"])
	}
	for _, tc := range arr(p["telecom"]) {
		m, _ := tc.(map[string]any)
		if m["system"] == "email" {
			h.Emails = appendStr(h.Emails, m["value"])
		} else {
			h.Phones = appendStr(h.Phones, m["value"])
		}
	}
	for _, a := range arr(p["address"]) {
		m, _ := a.(map[string]any)
		h.Addresses = appendStr(h.Addresses, m["city"], m["postalCode"], m["text"], m["district"])
		for _, l := range arr(m["line"]) {
			h.Addresses = appendStr(h.Addresses, l)
		}
	}
	h.Dates = appendStr(h.Dates, p["birthDate"])
	return h
}

func arr(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case nil:
		return nil
	default:
		return []any{x}
	}
}

func appendStr(dst []string, vs ...any) []string {
	for _, v := range vs {
		if s, ok := v.(string); ok && utf8.RuneCountInString(s) >= 2 {
			dst = append(dst, s)
		}
	}
	return dst
}

// builtinScanner finds the hints and a few validated patterns.
type builtinScanner struct{}

var textPatterns = []struct {
	typ string
	re  *regexp.Regexp
	ok  func(string) bool
}{
	{"EMAIL", regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`), nil},
	{"US_SSN", regexp.MustCompile(`\b\d{3}-\d{2}-\d{4}\b`), nil},
	{"CN_RESIDENT_ID", regexp.MustCompile(`\b\d{17}[\dXx]\b`), ValidResidentID},
	{"CN_MOBILE", regexp.MustCompile(`\b1[3-9]\d{9}\b`), nil},
	{"PHONE", regexp.MustCompile(`(\+?1[ .-]?)?\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b`), nil},
	{"DATE", regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}\b`), nil},
}

// Scan implements TextScanner.
func (builtinScanner) Scan(_ context.Context, text string, h Hints) []Finding {
	var out []Finding
	add := func(typ string, bs, be int) {
		out = append(out, Finding{Type: typ, Start: utf8.RuneCountInString(text[:bs]), End: utf8.RuneCountInString(text[:be])})
	}
	for _, p := range textPatterns {
		for _, m := range p.re.FindAllStringIndex(text, -1) {
			if p.ok == nil || p.ok(text[m[0]:m[1]]) {
				add(p.typ, m[0], m[1])
			}
		}
	}
	lower := strings.ToLower(text)
	foldable := len(lower) == len(text)
	hint := func(typ string, vals []string) {
		for _, v := range vals {
			hay, needle := text, v
			if foldable {
				hay, needle = lower, strings.ToLower(v)
			}
			for off := 0; ; {
				i := strings.Index(hay[off:], needle)
				if i < 0 || needle == "" {
					break
				}
				add(typ, off+i, off+i+len(needle))
				off += i + len(needle)
			}
		}
	}
	hint("NAME", h.Names)
	hint("ID", h.Identifiers)
	hint("PHONE", h.Phones)
	hint("EMAIL", h.Emails)
	hint("ADDRESS", h.Addresses)
	hint("DATE", h.Dates)
	return out
}

// scanText replaces each finding with [TYPE]; for XHTML only text between
// tags is scanned, so the markup stays well-formed.
func (e *Engine) scanText(ctx context.Context, s string, xhtml bool, pc *patientCtx) string {
	if !xhtml {
		return redactFindings(s, e.scanner.Scan(ctx, s, pc.hints))
	}
	var b strings.Builder
	for len(s) > 0 {
		lt := strings.IndexByte(s, '<')
		if lt < 0 {
			lt = len(s)
		}
		if lt > 0 {
			seg := s[:lt]
			b.WriteString(redactFindings(seg, e.scanner.Scan(ctx, seg, pc.hints)))
		}
		s = s[lt:]
		if s == "" {
			break
		}
		gt := strings.IndexByte(s, '>')
		if gt < 0 {
			// Unterminated tag: drop the rest rather than pass it through.
			break
		}
		b.WriteString(s[:gt+1])
		s = s[gt+1:]
	}
	return b.String()
}

func redactFindings(s string, fs []Finding) string {
	if len(fs) == 0 {
		return s
	}
	r := []rune(s)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Start < fs[j].Start })
	var b strings.Builder
	pos := 0
	for _, f := range fs {
		st, en := max(f.Start, pos), min(f.End, len(r))
		if st >= en || st < 0 {
			continue
		}
		// Never cut inside an XML entity.
		for st > pos && st < len(r) && entityBefore(r, st) {
			st--
		}
		b.WriteString(string(r[pos:st]))
		b.WriteString("[" + f.Type + "]")
		pos = en
		for pos < len(r) && entityOpen(r, pos) {
			pos++
		}
	}
	b.WriteString(string(r[pos:]))
	return b.String()
}

// entityBefore reports whether position i is inside "&...;".
func entityBefore(r []rune, i int) bool {
	for k := i - 1; k >= 0 && i-k < 10; k-- {
		if r[k] == ';' || r[k] == ' ' {
			return false
		}
		if r[k] == '&' {
			return true
		}
	}
	return false
}

func entityOpen(r []rune, i int) bool {
	for k := i - 1; k >= 0 && i-k < 10; k-- {
		if r[k] == ';' || r[k] == ' ' {
			return false
		}
		if r[k] == '&' {
			return true
		}
	}
	return false
}
