package storetest

import (
	"errors"
	"slices"
	"testing"

	"phix/fhir/search"
	"phix/store"
)

func testSearchIncludeIterate(t *testing.T, open Opener) {
	s := open(t)
	seed(t, s,
		res{"MedicationRequest", "mr1", []search.Entry{ref("medication", "Medication", "m1"), ref("subject", "Patient", "p1")}},
		res{"Medication", "m1", []search.Entry{ref("manufacturer", "Organization", "o1")}},
		// A cycle: o1 -> o2 -> o3 -> o1.
		res{"Organization", "o1", []search.Entry{ref("partof", "Organization", "o2")}},
		res{"Organization", "o2", []search.Entry{ref("partof", "Organization", "o3")}},
		res{"Organization", "o3", []search.Entry{ref("partof", "Organization", "o1")}},
		res{"Patient", "p1", nil},
		res{"Observation", "ob1", []search.Entry{ref("subject", "Patient", "p1")}},
		res{"Observation", "ob2", []search.Entry{ref("has-member", "Observation", "ob1")}},
		res{"Observation", "ob3", []search.Entry{ref("has-member", "Observation", "ob2")}},
		res{"Observation", "unrelated", nil},
	)
	inc := func(src, prm string, iterate bool) search.Include {
		return search.Include{Source: src, Param: prm, Iterate: iterate}
	}
	run := func(typ, id string, incs, revs []search.Include, maxInc, rounds int) ([]string, error) {
		qq := q(typ, clause("_id", search.TypeToken, "", cv(id)))
		qq.Include, qq.RevInclude, qq.MaxIncluded, qq.MaxIncludeRounds = incs, revs, maxInc, rounds
		res, err := s.Search(ctx, qq)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, r := range res.Included {
			out = append(out, r.Type+"/"+r.ID)
		}
		if !slices.IsSorted(out) {
			t.Errorf("included not in type/id order: %v", out)
		}
		return out, nil
	}
	for _, tc := range []struct {
		name       string
		typ, id    string
		incs, revs []search.Include
		want       []string
	}{
		{"one level", "MedicationRequest", "mr1", []search.Include{inc("MedicationRequest", "medication", false)}, nil,
			[]string{"Medication/m1"}},
		{"iterate", "MedicationRequest", "mr1", []search.Include{inc("MedicationRequest", "medication", false), inc("Medication", "manufacturer", true)}, nil,
			[]string{"Medication/m1", "Organization/o1"}},
		{"iterate through a cycle", "MedicationRequest", "mr1", []search.Include{
			inc("MedicationRequest", "medication", false), inc("Medication", "manufacturer", true), inc("Organization", "partof", true)}, nil,
			[]string{"Medication/m1", "Organization/o1", "Organization/o2", "Organization/o3"}},
		{"non-iterate applies to matches only", "MedicationRequest", "mr1", []search.Include{
			inc("MedicationRequest", "medication", false), inc("Medication", "manufacturer", true), inc("Organization", "partof", false)}, nil,
			[]string{"Medication/m1", "Organization/o1"}},
		{"wildcard iterate", "MedicationRequest", "mr1", []search.Include{inc("*", "*", true)}, nil,
			[]string{"Medication/m1", "Organization/o1", "Organization/o2", "Organization/o3", "Patient/p1"}},
		{"revinclude iterate", "Patient", "p1", nil, []search.Include{inc("Observation", "subject", false), inc("Observation", "has-member", true)},
			[]string{"Observation/ob1", "Observation/ob2", "Observation/ob3"}},
		{"revinclude then include iterate", "Patient", "p1", []search.Include{inc("MedicationRequest", "medication", true)},
			[]search.Include{inc("MedicationRequest", "subject", false)},
			[]string{"Medication/m1", "MedicationRequest/mr1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(tc.typ, tc.id, tc.incs, tc.revs, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("included %v, want %v", got, tc.want)
			}
		})
	}
	cycle := []search.Include{inc("MedicationRequest", "medication", false), inc("Medication", "manufacturer", true), inc("Organization", "partof", true)}
	// Fixed point after 4 iterate rounds (the 4th adds nothing).
	if _, err := run("MedicationRequest", "mr1", cycle, nil, 0, 4); err != nil {
		t.Errorf("4 rounds: %v", err)
	}
	if _, err := run("MedicationRequest", "mr1", cycle, nil, 0, 3); !errors.Is(err, store.ErrTooMany) || !errors.Is(err, store.ErrInvalid) {
		t.Errorf("3 rounds: %v, want ErrTooMany", err)
	}
	if _, err := run("MedicationRequest", "mr1", cycle, nil, 4, 0); err != nil {
		t.Errorf("limit 4: %v", err)
	}
	if _, err := run("MedicationRequest", "mr1", cycle, nil, 3, 0); !errors.Is(err, store.ErrTooMany) {
		t.Errorf("limit 3: %v, want ErrTooMany", err)
	}
}
