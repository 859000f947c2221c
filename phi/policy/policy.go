// Package policy says which FHIR elements are PHI: element paths per resource
// type, datatype-wide rules (every HumanName, ContactPoint.value, …, wherever
// it occurs) and extension URLs whose value is PHI. Package phi seals what a
// Policy names. See docs/phi-isolation.md for the JSON format.
package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"phix/fhir"
)

// Mode says how a PHI element is protected.
type Mode int

const (
	// Seal replaces the whole element by its ciphertext.
	Seal Mode = iota + 1
	// SealKeepYear seals a date but leaves its year in clear (birthDate).
	SealKeepYear
)

// File is the JSON form of a policy.
type File struct {
	// Version must be 1.
	Version int `json:"version"`
	// Datatypes maps a FHIR datatype to the child elements that are PHI
	// wherever the datatype occurs; "*" means every child but id and extension.
	Datatypes map[string][]string `json:"datatypes"`
	// Elements are element paths ("Patient.contact", "Patient.birthDate");
	// a "@year" suffix keeps the year of a date in clear.
	Elements []string `json:"elements"`
	// Extensions are extension URLs whose value[x] is PHI.
	Extensions []string `json:"extensions"`
}

// Policy is a loaded, validated policy. It is read-only and safe for
// concurrent use.
type Policy struct {
	rules map[string]map[string]Mode // parent (datatype or element path) -> child -> mode
	exts  map[string]bool
	file  File
}

// Error is a policy load error. It names the offending entry (a path, never
// a resource value).
type Error struct{ Msg string }

func (e *Error) Error() string { return "phi policy: " + e.Msg }

func errf(format string, args ...any) error { return &Error{fmt.Sprintf(format, args...)} }

// Load reads and validates a JSON policy. Unknown fields are refused.
func Load(data []byte) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, errf("malformed JSON policy")
	}
	if dec.More() {
		return nil, errf("trailing data after the policy")
	}
	return New(f)
}

// New validates f and compiles it.
func New(f File) (*Policy, error) {
	if f.Version != 1 {
		return nil, errf("version must be 1")
	}
	p := &Policy{rules: map[string]map[string]Mode{}, exts: map[string]bool{}, file: f}
	add := func(parent, child string, m Mode) {
		if p.rules[parent] == nil {
			p.rules[parent] = map[string]Mode{}
		}
		p.rules[parent][child] = m
	}
	for dt, children := range f.Datatypes {
		if fhir.IsPrimitiveType(dt) || fhir.IsResourceType(dt) {
			return nil, errf("datatype %q is not a complex datatype", dt)
		}
		if len(children) == 0 {
			return nil, errf("datatype %q lists no elements", dt)
		}
		for _, c := range children {
			if c == "*" {
				add(dt, c, Seal)
				continue
			}
			if c == "id" || c == "extension" || strings.HasPrefix(c, "_") {
				return nil, errf("datatype %q: element %q cannot be PHI", dt, c)
			}
			if _, _, ok := fhir.LookupElement(dt, c); !ok {
				return nil, errf("datatype %q has no element %q", dt, c)
			}
			add(dt, c, Seal)
		}
	}
	for _, e := range f.Elements {
		path, mode := e, Seal
		if s, ok := strings.CutSuffix(e, "@year"); ok {
			path, mode = s, SealKeepYear
		}
		i := strings.LastIndexByte(path, '.')
		if i <= 0 || i == len(path)-1 {
			return nil, errf("element %q is not a path Type.element", e)
		}
		parent, child := path[:i], path[i+1:]
		if !fhir.IsResourceType(strings.SplitN(parent, ".", 2)[0]) {
			return nil, errf("element %q does not start with a resource type", e)
		}
		if child == "id" || child == "extension" || child == "resourceType" || child == "meta" {
			return nil, errf("element %q cannot be PHI", e)
		}
		info, typ, ok := fhir.LookupElement(parent, child)
		if !ok {
			return nil, errf("unknown element %q", e)
		}
		if mode == SealKeepYear && typ != "date" && typ != "dateTime" {
			return nil, errf("element %q: @year needs a date, not %s", e, strings.Join(info.Types, "|"))
		}
		add(parent, child, mode)
	}
	for _, u := range f.Extensions {
		if !strings.Contains(u, ":") {
			return nil, errf("extension %q is not an absolute URL", u)
		}
		p.exts[u] = true
	}
	return p, nil
}

// Lookup reports whether child of parent is PHI. parent is a datatype name or
// an element path of a resource or backbone element ("Patient",
// "Patient.contact").
func (p *Policy) Lookup(parent, child string) (Mode, bool) {
	if child == "id" || child == "extension" || child == "modifierExtension" || child == "resourceType" || child == "meta" {
		return 0, false
	}
	r := p.rules[parent]
	if r == nil {
		return 0, false
	}
	if m, ok := r[child]; ok {
		return m, true
	}
	if m, ok := r["*"]; ok {
		return m, true
	}
	return 0, false
}

// Extension reports whether the value of extension url is PHI.
func (p *Policy) Extension(url string) bool { return p.exts[url] }

// JSON returns the policy's JSON form, keys sorted.
func (p *Policy) JSON() []byte {
	f := p.file
	sort.Strings(f.Elements)
	b, _ := json.MarshalIndent(f, "", "  ")
	return b
}

// Default is the built-in policy: HIPAA's 18 identifiers and PIPL personal
// information (docs/phi-isolation.md lists the reasoning).
func Default() *Policy {
	p, err := New(DefaultFile())
	if err != nil {
		panic("phi policy: built-in default does not validate") // a build defect, caught by tests
	}
	return p
}

// DefaultFile is the JSON form of Default.
func DefaultFile() File {
	return File{
		Version: 1,
		Datatypes: map[string][]string{
			"HumanName":    {"*"},
			"ContactPoint": {"value"},
			"Address":      {"text", "line", "city", "district", "postalCode"},
			"Identifier":   {"value"},
			"Annotation":   {"text", "authorString"},
			"Attachment":   {"data", "url"},
			"Narrative":    {"div"},
			// A reference's display is often the patient's or a relative's name.
			"Reference": {"display"},
		},
		Elements: []string{
			"Patient.birthDate@year", "Patient.photo", "Patient.contact",
			"RelatedPerson.birthDate@year", "RelatedPerson.photo",
			"Practitioner.birthDate@year", "Practitioner.photo",
			"Person.birthDate@year", "Person.photo",
			"Patient.deceasedDateTime",
		},
		Extensions: []string{
			"http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
			"http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
			"http://hl7.org/fhir/StructureDefinition/us-core-birthsex-name",
			"http://synthetichealth.github.io/synthea/disability-adjusted-life-years",
			"http://synthetichealth.github.io/synthea/quality-adjusted-life-years",
		},
	}
}
