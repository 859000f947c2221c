package dlp

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// Action is what a policy does with a finding of some kind.
type Action string

// Actions, from the strictest.
const (
	// Block refuses the whole text (the edge gateway does not send it).
	Block Action = "block"
	// Redact replaces the span with a kind marker such as [NAME].
	Redact Action = "redact"
	// Warn keeps the text and reports the finding.
	Warn Action = "warn"
	// Allow ignores the kind.
	Allow Action = "allow"
)

// Policy maps kinds to actions; kinds not listed get Default (Block when
// Default is empty, so a zero Policy fails closed).
type Policy struct {
	Default Action
	Kinds   map[Type]Action
}

// Action returns the action for kind t.
func (p Policy) Action(t Type) Action {
	if a, ok := p.Kinds[t]; ok {
		return a
	}
	if p.Default == "" {
		return Block
	}
	return p.Default
}

// ParsePolicy reads "default=redact,US_SSN=block,DATE=warn". Kind names are
// the Type names; unknown kinds and actions are errors.
func ParsePolicy(s string) (Policy, error) {
	p := Policy{Kinds: map[Type]Action{}}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return Policy{}, errorf(CodeInvalidPolicy, "item %q is not KIND=ACTION", item)
		}
		a := Action(strings.ToLower(strings.TrimSpace(v)))
		switch a {
		case Block, Redact, Warn, Allow:
		default:
			return Policy{}, errorf(CodeInvalidPolicy, "unknown action %q (block, redact, warn, allow)", v)
		}
		k = strings.TrimSpace(k)
		if strings.EqualFold(k, "default") {
			p.Default = a
			continue
		}
		t := Type(strings.ToUpper(k))
		if !slices.Contains(Types, t) {
			return Policy{}, errorf(CodeInvalidPolicy, "unknown kind %q", k)
		}
		p.Kinds[t] = a
	}
	return p, nil
}

// ReportItem is one finding as the report tells it: kind, where, what was
// done; never the value.
type ReportItem struct {
	Type     Type    `json:"type"`
	Location string  `json:"location,omitempty"`
	Start    int     `json:"start"`
	End      int     `json:"end"`
	Score    float64 `json:"score"`
	Detector string  `json:"detector"`
	Action   Action  `json:"action"`
}

// Report summarises what Apply did.
type Report struct {
	Blocked bool           `json:"blocked"`
	Items   []ReportItem   `json:"items"`
	Counts  map[Type]int   `json:"counts"`
	Actions map[Action]int `json:"actions"`
}

// Apply applies p to findings in text: spans whose action is Redact become
// "[KIND]"; any Block finding sets blocked. Overlapping or out-of-range
// findings are reported but only the first of an overlap is redacted.
// Findings' offsets are code points of text, as ScanText returns them.
func Apply(text string, findings []Finding, p Policy) (redacted string, blocked bool, report Report) {
	report = Report{Counts: map[Type]int{}, Actions: map[Action]int{}}
	fs := slices.Clone(findings)
	slices.SortStableFunc(fs, func(a, b Finding) int { return a.Start - b.Start })
	// Byte offset of every code point boundary, computed once.
	n := utf8.RuneCountInString(text)
	var b strings.Builder
	b.Grow(len(text))
	cpByte := make([]int, 0, n+1)
	for i := range text {
		cpByte = append(cpByte, i)
	}
	cpByte = append(cpByte, len(text))
	last := 0 // code point up to which text has been written
	for _, f := range fs {
		a := p.Action(f.Type)
		report.Items = append(report.Items, ReportItem{Type: f.Type, Location: f.Location, Start: f.Start, End: f.End, Score: f.Score, Detector: f.Detector, Action: a})
		report.Counts[f.Type]++
		report.Actions[a]++
		if a == Block {
			blocked = true
		}
		if a != Redact || f.Start < last || f.End > n || f.Start >= f.End {
			continue
		}
		b.WriteString(text[cpByte[last]:cpByte[f.Start]])
		b.WriteString("[" + string(f.Type) + "]")
		last = f.End
	}
	b.WriteString(text[cpByte[last]:])
	report.Blocked = blocked
	return b.String(), blocked, report
}
