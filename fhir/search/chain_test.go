package search_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"phix/fhir/search"
)

// linkString renders a chain as "Param>Type|Type" (">" forward, "<" _has).
func linkString(c search.Clause) string {
	var parts []string
	for _, l := range c.Chain {
		dir := ">"
		if l.Reverse {
			dir = "<"
		}
		parts = append(parts, l.Param.Code+dir+strings.Join(l.Types, "|"))
	}
	return strings.Join(append(parts, c.Param.Code+":"+c.Modifier), " ")
}

func TestParseChain(t *testing.T) {
	tests := []struct {
		typ, query string
		want       string
	}{
		{"Observation", "subject:Patient.name=peter", "subject>Patient name:"},
		{"Observation", "patient.organization.name=x", "patient>Patient organization>Organization name:"},
		{"Observation", "subject.name:exact=Peter", "subject>Patient|Location name:exact"},
		{"Observation", "subject:Patient._id=p1", "subject>Patient _id:"},
		{"Observation", "subject:Patient.organization:missing=true", "subject>Patient organization:missing"},
		{"Patient", "_has:Observation:subject:code=1234-5", "subject<Observation code:"},
		{"Patient", "_has:Observation:patient:_has:AuditEvent:entity:agent=Practitioner/1",
			"patient<Observation entity<AuditEvent agent:"},
		{"Observation", "subject:Patient._has:Observation:subject:code=1", "subject>Patient subject<Observation code:"},
		{"Encounter", "_has:Observation:encounter:subject:Patient.name=x", "encounter<Observation subject>Patient name:"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, warns, err := search.Parse(tt.typ, mustQuery(t, tt.query), search.ParseOptions{Strict: true})
			if err != nil || len(warns) != 0 || len(q.Clauses) != 1 {
				t.Fatalf("%v %v %+v", err, warns, q)
			}
			if got := linkString(q.Clauses[0]); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// Targets that do not define the next parameter are left out.
	q, _, err := search.Parse("Observation", mustQuery(t, "subject.birthdate=2000"), search.ParseOptions{Strict: true})
	if err != nil || !slices.Equal(q.Clauses[0].Chain[0].Types, []string{"Patient"}) {
		t.Errorf("subject.birthdate: %v %+v", err, q)
	}
}

func TestParseChainErrors(t *testing.T) {
	tests := []struct {
		typ, query string
		code       string
	}{
		{"Observation", "status.name=x", search.CodeInvalidValue},                    // not a reference
		{"Observation", "subject:Medication.name=x", search.CodeInvalidModifier},     // not a target
		{"Observation", "subject:Nope.name=x", search.CodeInvalidModifier},           // not a type
		{"Patient", "_has:Nope:subject:code=1", search.CodeUnknownType},              // not a type
		{"Patient", "_has:Observation:code:code=1", search.CodeInvalidValue},         // not a reference
		{"Patient", "_has:Observation:subject=1", search.CodeInvalidValue},           // too few parts
		{"Organization", "_has:Observation:subject:code=1", search.CodeInvalidValue}, // cannot point here
		{"Observation", "subject:Patient.name=a\\x", search.CodeInvalidValue},        // bad value
		{"Observation", "subject:Patient.name:nosuch=x", search.CodeInvalidModifier}, // bad terminal modifier
		{"Observation", "patient.organization.partof.partof.partof.name=x", search.CodeTooMany},
		{"Patient", "_has:Observation:patient:_has:Observation:has-member:_has:Observation:has-member:_has:Observation:has-member:_has:Observation:has-member:code=1", search.CodeTooMany},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			_, _, err := search.Parse(tt.typ, mustQuery(t, tt.query), search.ParseOptions{})
			var se *search.Error
			if !errors.As(err, &se) || se.Code != tt.code {
				t.Fatalf("got %v, want %s", err, tt.code)
			}
			if strings.Contains(err.Error(), "=") {
				t.Errorf("error quotes the value: %v", err)
			}
		})
	}
	// The limits are configurable.
	_, _, err := search.Parse("Observation", mustQuery(t, "patient.organization.name=x"), search.ParseOptions{MaxChainDepth: 1})
	var se *search.Error
	if !errors.As(err, &se) || se.Code != search.CodeTooMany {
		t.Errorf("MaxChainDepth 1: %v", err)
	}
	_, _, err = search.Parse("Patient", mustQuery(t, "_has:Observation:subject:_has:AuditEvent:entity:agent=x"), search.ParseOptions{MaxHasDepth: 1})
	if !errors.As(err, &se) || se.Code != search.CodeTooMany {
		t.Errorf("MaxHasDepth 1: %v", err)
	}
}

func TestParseIncludeLimits(t *testing.T) {
	q, _, err := search.Parse("Observation", mustQuery(t, "_include:iterate=*"), search.ParseOptions{})
	if err != nil || q.MaxIncluded != 1000 || q.MaxIncludeRounds != 8 || len(q.Include) != 1 || !q.Include[0].Iterate {
		t.Errorf("defaults: %v %+v", err, q)
	}
	q, _, err = search.Parse("Observation", mustQuery(t, "_revinclude:iterate=Observation:has-member"), search.ParseOptions{MaxIncluded: 5, MaxIncludeRounds: 2})
	if err != nil || q.MaxIncluded != 5 || q.MaxIncludeRounds != 2 || !q.RevInclude[0].Iterate {
		t.Errorf("configured: %v %+v", err, q)
	}
}
