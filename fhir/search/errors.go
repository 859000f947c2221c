package search

import (
	"fmt"
	"strings"
	"sync"
)

// Stable codes of parse errors and warnings. The server maps them to an
// OperationOutcome; they never carry a value, since values may be PHI.
const (
	CodeUnknownParam     = "unknown-parameter"     // no such parameter for the type
	CodeUnsupported      = "unsupported"           // chaining, _has, composite, _text... not yet
	CodeInvalidValue     = "invalid-value"         // a value that does not parse for its type
	CodeInvalidModifier  = "invalid-modifier"      // a modifier the parameter type does not take
	CodeTooMany          = "too-many"              // a limit on clauses, values or length exceeded
	CodeUnknownType      = "unknown-resource-type" // not an R4 resource type
	CodeCountClamped     = "count-clamped"         // warning: _count above MaxCount
	CodeIgnoredParameter = "ignored-parameter"     // warning: _format, _pretty
)

// Error is a search parse error. Param is the parameter name as given (never
// its value) and Msg says what is wrong without quoting the value.
type Error struct {
	Param string
	Code  string
	Msg   string
}

func (e *Error) Error() string {
	if e.Param == "" {
		return fmt.Sprintf("search: %s (%s)", e.Msg, e.Code)
	}
	return fmt.Sprintf("search: parameter %q: %s (%s)", e.Param, e.Msg, e.Code)
}

// Warning is a problem lenient handling let through: the parameter was
// ignored (or, for _count, clamped).
type Warning struct {
	Param string
	Code  string
	Msg   string
}

func (w Warning) String() string {
	return fmt.Sprintf("parameter %q: %s (%s)", w.Param, w.Msg, w.Code)
}

// safeName bounds a parameter name before it goes into an error or a
// warning. Names are chosen by the client, who can put PHI in them
// (?Smith=1, subject:Patient.Smith, _has:Observation:Smith:code): only the
// parts that are search vocabulary (parameter codes, resource types,
// modifiers, _has) are kept, every other part becomes "?", so the error
// still says where the problem is without quoting what was sent.
func safeName(s string) string {
	const max = 64
	vocab := vocabulary()
	var out strings.Builder
	for len(s) > 0 && out.Len() < max {
		i := strings.IndexAny(s, ":.")
		part, sep := s, ""
		if i >= 0 {
			part, sep, s = s[:i], s[i:i+1], s[i+1:]
		} else {
			s = ""
		}
		if vocab[part] {
			out.WriteString(part)
		} else if part != "" {
			out.WriteByte('?')
		}
		out.WriteString(sep)
	}
	r := out.String()
	if len(r) > max {
		r = r[:max]
	}
	return r
}

var (
	vocabOnce sync.Once
	vocab     map[string]bool
)

// vocabulary is every word a parameter name may be built from.
func vocabulary() map[string]bool {
	vocabOnce.Do(func() {
		r := load()
		vocab = make(map[string]bool, len(r.all)+len(r.typeNames)+32)
		for _, p := range r.all {
			vocab[p.Code] = true
		}
		for _, t := range r.typeNames {
			vocab[t] = true
		}
		for _, w := range []string{
			// result and control parameters
			"_has", "_type", "_count", "_sort", "_include", "_revinclude", "_elements", "_summary", "_total",
			"_contained", "_containedType", "_format", "_pretty", "_query", "_filter", "_list", "_score",
			"_since", "_at", "_offset", "_page", "_getpages",
			// modifiers
			"missing", "exact", "contains", "not", "text", "of-type", "above", "below", "in", "not-in",
			"identifier", "iterate", "type", "code-text", "text-advanced",
		} {
			vocab[w] = true
		}
	})
	return vocab
}

// VocabularyName reports whether every part of a parameter name is search
// vocabulary, so the name can be recorded (an audit event) without risk of
// carrying the client's free text.
func VocabularyName(name string) bool { return name != "" && safeName(name) == name }
