package search

import "fmt"

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

// safeName bounds a parameter name before it goes into an error: names are
// chosen by the client, so keep them short and printable.
func safeName(s string) string {
	const max = 64
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(out) < max; i++ {
		c := s[i]
		if c >= 0x21 && c < 0x7f {
			out = append(out, c)
		} else {
			out = append(out, '?')
		}
	}
	return string(out)
}
