// Package search holds the FHIR search-parameter registry, the parser that turns
// a query string into a Query, and the extractor that turns a resource into the
// index Entries a store keeps. The store executes a Query against those entries;
// this package never touches a database.
package search

import "time"

// Type is a search parameter type, as SearchParameter.type names it.
type Type string

// The search parameter types of FHIR R4.
const (
	TypeString    Type = "string"
	TypeToken     Type = "token"
	TypeDate      Type = "date"
	TypeReference Type = "reference"
	TypeNumber    Type = "number"
	TypeQuantity  Type = "quantity"
	TypeURI       Type = "uri"
	TypeComposite Type = "composite"
	TypeSpecial   Type = "special"
)

// Param is one search parameter definition.
type Param struct {
	Code       string   `json:"code"`              // the name used in a query, e.g. "family"
	URL        string   `json:"url"`               // canonical URL of the SearchParameter
	Type       Type     `json:"type"`              // value type
	Base       []string `json:"base"`              // resource types it applies to
	Expression string   `json:"expr,omitempty"`    // FHIRPath expression from the definition
	Targets    []string `json:"targets,omitempty"` // reference target types (reference params only)
	// Paths are the plain element paths the expression reduces to, one per
	// union branch, each starting at the resource type ("Patient.name.family").
	// Empty when the expression is not a plain path; extraction of those
	// parameters arrives with the FHIRPath engine.
	//
	// A choice element restricted to one type is written with its concrete
	// name ("(Observation.value as Quantity)" is "Observation.valueQuantity").
	// Restrictions a dotted path cannot carry (where(resolve() is T),
	// where(system='email'), [0]) are dropped here and kept in Elements, which
	// is what extraction follows.
	Paths      []string    `json:"paths,omitempty"`
	Components []Component `json:"components,omitempty"` // composite params only

	// Elements are the Paths resolved against the R4 structure definitions:
	// one per concrete element and datatype (an unrestricted choice element
	// such as Observation.effective[x] gives one Element per allowed type),
	// keeping only datatypes the parameter type can index.
	Elements []Element `json:"elements,omitempty"`

	// ComponentParams are, for a composite parameter, the definitions its
	// Components name, in order (resolved from the registry when it loads;
	// nil when one cannot be resolved). A query value gives one part per
	// component, separated by '$'.
	ComponentParams []*Param `json:"-"`
}

// Element is one concrete element a parameter indexes.
type Element struct {
	// Resource is the resource type the path starts at; "Resource" or
	// "DomainResource" for the parameters every type shares.
	Resource string `json:"res"`
	Steps    []Step `json:"steps"`
	// DataType is the FHIR datatype of the element reached: "HumanName",
	// "dateTime", "CodeableConcept", "Reference", "canonical", ...
	DataType string `json:"dt"`
	// Target, for a reference, keeps only references to this resource type
	// (the expression's where(resolve() is Target)).
	Target string `json:"target,omitempty"`
}

// Step is one JSON property to follow from the current object(s).
type Step struct {
	Name string `json:"n"`
	// Item, when non-zero, keeps only the array item at position Item-1
	// ("entry[0]" has Item 1); zero keeps every item.
	Item int `json:"i,omitempty"`
	// WhereChild and WhereValue keep only the items whose primitive child
	// WhereChild equals WhereValue (the expression's where(system='email')).
	WhereChild string `json:"wc,omitempty"`
	WhereValue string `json:"wv,omitempty"`
}

// Component is one part of a composite parameter.
type Component struct {
	Definition string `json:"def"`  // canonical URL of the component's SearchParameter
	Expression string `json:"expr"` // FHIRPath relative to the composite's value
}

// Entry is one index value extracted from a resource for one parameter. A
// resource yields zero or more entries per parameter; a store keeps them in
// index tables and matches Query clauses against them.
//
// Which fields are set depends on Type:
//   - string: Str is the normalised form (case folded, accents removed) and
//     Exact the original text;
//   - token: System, Code and, for :text, Str (normalised display/text);
//   - date: Lo and Hi bound the instant range the value covers (inclusive);
//   - number: Num, with NumLo/NumHi the range its precision implies;
//   - quantity: Num, NumLo, NumHi, and System/Code for the unit;
//   - reference: RefType and RefID for a local reference, or URL for an
//     absolute one; RefVersion when the reference names a version. When the
//     Reference has an identifier, System and Code carry that identifier's
//     system and value, so :identifier can match it (RefType then comes from
//     Reference.type when given);
//   - uri: URL.
type Entry struct {
	Param string
	Type  Type

	Str   string
	Exact string

	System string
	Code   string

	Lo, Hi time.Time

	Num, NumLo, NumHi float64

	RefType, RefID, RefVersion string
	URL                        string

	// TypeSystem and TypeCode are, for a token entry of an Identifier, one
	// coding of Identifier.type (for :of-type); an identifier with several
	// type codings yields one entry per coding.
	TypeSystem, TypeCode string

	// Group ties the components of one composite value together: for a
	// composite parameter P, the entry of component k has Param "P$k", the
	// component's Type, and the Group (1, 2, ...) of the element instance it
	// comes from, shared by that instance's other components. Zero for
	// every other entry.
	Group int
}

// Prefix is a comparison prefix on number, date and quantity values.
type Prefix string

// The prefixes FHIR R4 defines.
const (
	PrefixEq Prefix = "eq"
	PrefixNe Prefix = "ne"
	PrefixGt Prefix = "gt"
	PrefixLt Prefix = "lt"
	PrefixGe Prefix = "ge"
	PrefixLe Prefix = "le"
	PrefixSa Prefix = "sa"
	PrefixEb Prefix = "eb"
	PrefixAp Prefix = "ap"
)

// Query is a parsed search: clauses are ANDed, the values within a clause ORed.
type Query struct {
	Type    string   // resource type; empty for a system-level search
	Types   []string // _type, for a system-level search
	Clauses []Clause

	Sort  []Sort
	Count int // page size; 0 means the server default
	// Offset is the number of matches to skip. Paging is by offset over a
	// total order (the sort keys, then resource type and id), so links stay
	// stable while the data does not change.
	Offset int
	Total  TotalMode

	Include    []Include
	RevInclude []Include
	// MaxIncluded bounds the resources _include/_revinclude may add to one
	// page, and MaxIncludeRounds the :iterate rounds; a store refuses a
	// search that would exceed either. Zero takes the store's defaults.
	MaxIncluded      int
	MaxIncludeRounds int

	// Summary and Elements shape the returned resources; the store ignores
	// them and the server applies them.
	Summary  string
	Elements []string
}

// Clause is one query parameter: a param, an optional modifier and OR-ed values.
// The special parameters _id and _lastUpdated are Clauses too, with Param set
// to the registry's synthetic definitions of them.
type Clause struct {
	Param    *Param
	Modifier string // "", "exact", "contains", "missing", "not", "identifier", "text", "above", "below", a type name...
	Values   []Value

	// Chain, when not empty, moves the clause to other resources: the
	// clause's Param, Modifier and Values apply to a resource reached from
	// the searched one by following the links in order (a chained parameter
	// such as subject:Patient.name, or _has reverse chaining). Param is then
	// the terminal parameter, defined on the last link's Types.
	Chain []Link
}

// Link is one step of a chained (forward) or _has (reverse) parameter.
type Link struct {
	// Reverse is false for a forward link: Param is a reference parameter of
	// the current resource and the step lands on the resources it references
	// whose type is in Types. Reverse is true for _has: the step lands on
	// resources of Types[0] whose reference parameter Param points at the
	// current resource.
	Reverse bool
	Param   *Param
	// Types are the resource types the step lands on: the type modifier,
	// or every target of Param that defines the next parameter.
	Types []string
}

// Value is one parsed value of a clause. Raw keeps the text as given; the
// other fields are set according to the clause's parameter type, the same way
// Entry's are.
type Value struct {
	Raw    string
	Prefix Prefix

	Str string // normalised string, or token :text

	System    string
	HasSystem bool // "system|code" or "|code" given (an empty System then means "no system")
	Code      string

	Lo, Hi time.Time // date range implied by the value's precision

	Num, NumLo, NumHi float64 // number/quantity value and its precision range

	RefType, RefID, RefVersion string
	URL                        string

	Missing bool // the value of a :missing clause

	// Ident is the identifier value of a token :of-type value
	// "typeSystem|typeCode|value"; System and Code then hold the type coding.
	Ident string

	// Text is the parsed query of a full-text (_text, _content) value.
	Text *FullTextQuery

	// Components are the parts of a composite value, one per component of
	// the parameter (Param.ComponentParams), each parsed as that component.
	Components []Value
}

// Sort is one _sort key.
type Sort struct {
	Param      *Param
	Descending bool
}

// Include is one _include or _revinclude: Source:Param[:Target].
type Include struct {
	Source  string // resource type holding the reference, or "*"
	Param   string // reference parameter code, or "*"
	Target  string // optional target type
	Iterate bool
}

// TotalMode is the _total setting.
type TotalMode string

// The _total values.
const (
	TotalNone     TotalMode = "none"
	TotalEstimate TotalMode = "estimate"
	TotalAccurate TotalMode = "accurate"
)
