package fhir

// DefaultMaxDepth is the nesting limit Parse applies when ParseOptions.MaxDepth is 0.
const DefaultMaxDepth = 64

// ParseOptions limits what Parse accepts.
type ParseOptions struct {
	// MaxDepth is the deepest nesting of objects and arrays accepted
	// (the top-level object is depth 1). 0 means DefaultMaxDepth.
	MaxDepth int
}

// ParseError is the error Parse returns. It never echoes the input: FHIR
// content is PHI.
type ParseError struct {
	Offset int64  // byte offset in the input where the problem was found
	Code   string // stable code, one of the ParseCode* constants
	Msg    string // human text, free of content
}

// Stable ParseError codes.
const (
	ParseCodeSyntax       = "syntax"        // malformed JSON
	ParseCodeUTF8         = "invalid-utf8"  // invalid UTF-8 or an unpaired surrogate escape
	ParseCodeDuplicateKey = "duplicate-key" // the same key twice in one object
	ParseCodeTrailing     = "trailing-data" // data after the top-level value
	ParseCodeDepth        = "too-deep"      // nesting deeper than MaxDepth
	ParseCodeNotObject    = "not-object"    // top-level value is not an object
	ParseCodeResourceType = "resource-type" // resourceType missing or not a string
	ParseCodeID           = "id"            // id present but not a string
)

func (e *ParseError) Error() string {
	return "fhir: parse error at offset " + itoa(e.Offset) + ": " + e.Msg
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// Issue is one validation finding, shaped like OperationOutcome.issue.
type Issue struct {
	Severity    string   // fatal | error | warning | information
	Code        string   // FHIR IssueType code: structure, required, value, invariant, code-invalid, not-supported, ...
	Diagnostics string   // human text; never echoes the offending value (it may be PHI)
	Expression  []string // FHIRPath location, e.g. "Patient.name[0].given[1]"
	// Key is the constraint key ("ele-1", "dom-3") of an invariant issue,
	// for OperationOutcome.issue.details; "" for other issues.
	Key string
}

// ElementInfo describes one element of a type or resource, from the
// StructureDefinition snapshots of FHIR R4.
type ElementInfo struct {
	Path             string   // e.g. "Observation.value[x]"
	Types            []string // type codes; "BackboneElement"/"Element" for inline structures
	Min              int
	Max              int    // -1 for *
	Choice           bool   // [x]
	Binding          string // required ValueSet canonical URL (no version), "" if none/not required
	ContentReference string // e.g. "#Questionnaire.item"
}
