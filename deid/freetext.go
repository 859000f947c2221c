package deid

import (
	"context"
	"sort"
	"strings"
	"unicode/utf8"

	"phix/dlp"
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
}

// TextScanner finds PHI in free text. NewDLPScanner adapts the dlp
// package's engine (the default).
type TextScanner interface {
	Scan(ctx context.Context, text string, hints Hints) []Finding
}

// HintBinder is an optional TextScanner extension: WithHints prepares a
// scanner for one patient once, instead of on every Scan.
type HintBinder interface {
	WithHints(h Hints) TextScanner
}

// collectHints gathers a Patient's identifying values for the scanner.
func collectHints(p map[string]any) Hints {
	var h Hints
	for _, n := range arr(p["name"]) {
		nm, _ := n.(map[string]any)
		family, _ := nm["family"].(string)
		var given []string
		for _, g := range arr(nm["given"]) {
			if gs, ok := g.(string); ok {
				given = append(given, gs)
			}
		}
		h.Names = append(h.Names, dlp.NameHints(family, given...)...)
		h.Names = appendStr(h.Names, nm["text"])
	}
	for _, ext := range arr(p["extension"]) {
		m, _ := ext.(map[string]any)
		if m["url"] == "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName" {
			h.Names = appendStr(h.Names, m["valueString"])
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

// scanText replaces each finding with [TYPE]; for XHTML only text between
// tags is scanned, so the markup stays well-formed.
func (e *Engine) scanText(ctx context.Context, s string, xhtml bool, pc *patientCtx) string {
	if !xhtml {
		return redactFindings(s, pc.scan.Scan(ctx, s, pc.hints))
	}
	var b strings.Builder
	for len(s) > 0 {
		lt := strings.IndexByte(s, '<')
		if lt < 0 {
			lt = len(s)
		}
		if lt > 0 {
			seg := s[:lt]
			b.WriteString(redactFindings(seg, pc.scan.Scan(ctx, seg, pc.hints)))
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
