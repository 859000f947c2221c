package storetest

import (
	"testing"

	"phix/fhir/search"
	"phix/store"
)

// link builders for hand-made chains.
func fwd(code string, types ...string) search.Link {
	return search.Link{Param: param(code, search.TypeReference), Types: types}
}

func has(typ, code string) search.Link {
	return search.Link{Reverse: true, Param: param(code, search.TypeReference), Types: []string{typ}}
}

func chained(c search.Clause, links ...search.Link) search.Clause {
	c.Chain = links
	return c
}

// seedChain writes a small graph: observations about patients and a group,
// patients in organizations, audit events about observations.
func seedChain(t *testing.T, s store.Store) {
	t.Helper()
	seed(t, s,
		res{"Organization", "acme", []search.Entry{str("name", "Acme Hospital")}},
		res{"Organization", "other", []search.Entry{str("name", "Other")}},
		res{"Patient", "p1", []search.Entry{str("name", "Peter"), ref("organization", "Organization", "acme")}},
		res{"Patient", "p2", []search.Entry{str("name", "Paul"), ref("organization", "Organization", "other")}},
		res{"Patient", "p3", []search.Entry{str("name", "Peter")}},
		res{"Patient", "gone", []search.Entry{str("name", "Peter"), ref("organization", "Organization", "acme")}},
		res{"Group", "g1", []search.Entry{str("name", "Peter's group")}},
		res{"Observation", "o1", []search.Entry{ref("subject", "Patient", "p1"), tok("code", "http://loinc.org", "1234-5")}},
		res{"Observation", "o2", []search.Entry{ref("subject", "Patient", "p2"), tok("code", "http://loinc.org", "1234-5")}},
		res{"Observation", "o3", []search.Entry{ref("subject", "Group", "g1"), tok("code", "http://loinc.org", "9999-9")}},
		res{"Observation", "o4", []search.Entry{ref("subject", "Patient", "p3"), tok("code", "http://loinc.org", "9999-9")}},
		res{"Observation", "o5", []search.Entry{ref("subject", "Patient", "gone"), tok("code", "http://loinc.org", "1234-5")}},
		res{"Observation", "dangling", []search.Entry{ref("subject", "Patient", "nobody")}},
		res{"AuditEvent", "a1", []search.Entry{ref("entity", "Observation", "o2"), ref("agent", "Practitioner", "dr1")}},
		res{"AuditEvent", "a2", []search.Entry{ref("entity", "Observation", "o1"), ref("agent", "Practitioner", "dr2")}},
	)
	put(t, s, &store.Write{Type: "Patient", ID: "gone", Version: 2, Method: "DELETE", Deleted: true, LastUpdated: t0})
}

func testSearchChain(t *testing.T, open Opener) {
	s := open(t)
	seedChain(t, s)
	peter := clause("name", search.TypeString, "", sv("peter"))
	acme := clause("name", search.TypeString, "", sv("acme"))
	code := clause("code", search.TypeToken, "", tv("http://loinc.org", "1234-5"))
	for _, tc := range []struct {
		name string
		q    *search.Query
		want []string
	}{
		{"typed", q("Observation", chained(peter, fwd("subject", "Patient"))),
			[]string{"Observation/o1", "Observation/o4"}},
		{"any target", q("Observation", chained(peter, fwd("subject", "Patient", "Group"))),
			[]string{"Observation/o1", "Observation/o3", "Observation/o4"}},
		{"two levels", q("Observation", chained(acme, fwd("subject", "Patient"), fwd("organization", "Organization"))),
			[]string{"Observation/o1"}},
		{"with own clause", q("Observation", code, chained(peter, fwd("subject", "Patient"))),
			[]string{"Observation/o1"}},
		{"terminal _id", q("Observation", chained(clause("_id", search.TypeToken, "", cv("p2")), fwd("subject", "Patient"))),
			[]string{"Observation/o2"}},
		{"terminal missing", q("Observation", chained(clause("organization", search.TypeReference, "missing", missing(true)), fwd("subject", "Patient"))),
			[]string{"Observation/o4"}},
		{"no match", q("Observation", chained(clause("name", search.TypeString, "", sv("nobody")), fwd("subject", "Patient"))), nil},
		{"has", q("Patient", chained(code, has("Observation", "subject"))),
			[]string{"Patient/p1", "Patient/p2"}},
		{"has nested", q("Patient", chained(clause("agent", search.TypeReference, "", search.Value{Raw: "Practitioner/dr1", RefType: "Practitioner", RefID: "dr1"}),
			has("Observation", "subject"), has("AuditEvent", "entity"))),
			[]string{"Patient/p2"}},
		{"has then chain", q("Organization", chained(code, has("Patient", "organization"), has("Observation", "subject"))),
			[]string{"Organization/acme", "Organization/other"}},
		{"chain then has", q("Observation", chained(clause("agent", search.TypeReference, "", search.Value{Raw: "Practitioner/dr2", RefType: "Practitioner", RefID: "dr2"}),
			fwd("subject", "Patient"), has("Observation", "subject"), has("AuditEvent", "entity"))),
			[]string{"Observation/o1"}},
	} {
		t.Run(tc.name, func(t *testing.T) { expect(t, s, tc.q, tc.want...) })
	}
	// A bad chain is refused, not run.
	bad := chained(peter, search.Link{Param: param("subject", search.TypeString), Types: []string{"Patient"}})
	if _, err := s.Search(ctx, q("Observation", bad)); err == nil {
		t.Error("chain through a non-reference parameter: no error")
	}
}
