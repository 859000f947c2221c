package fhirserver

import "testing"

// TestPatientEverything: Patient/{id}/$everything answers the Patient and
// its compartment, not another patient's resources; bad targets are refused.
func TestPatientEverything(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	a := e.do("POST", "/Patient", patient("Everything", "Ann")).want(t, 201)
	b := e.do("POST", "/Patient", patient("Other", "Bob")).want(t, 201)
	obs := func(pid string) map[string]any {
		return map[string]any{"resourceType": "Observation", "status": "final",
			"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8302-2"}}},
			"subject": map[string]any{"reference": "Patient/" + pid}}
	}
	e.do("POST", "/Observation", obs(a.str("id"))).want(t, 201)
	e.do("POST", "/Observation", obs(a.str("id"))).want(t, 201)
	e.do("POST", "/Observation", obs(b.str("id"))).want(t, 201)

	r := e.do("GET", "/Patient/"+a.str("id")+"/$everything", nil).want(t, 200)
	if r.str("type") != "searchset" || r.total() != 3 {
		t.Fatalf("bundle type %q total %d", r.str("type"), r.total())
	}
	types := map[string]int{}
	for _, en := range r.entries() {
		res := en["resource"].(map[string]any)
		types[res["resourceType"].(string)]++
		if res["resourceType"] == "Observation" {
			if ref := res["subject"].(map[string]any)["reference"]; ref != "Patient/"+a.str("id") {
				t.Fatalf("another patient's observation: %v", ref)
			}
		}
	}
	if types["Patient"] != 1 || types["Observation"] != 2 {
		t.Fatalf("types %v", types)
	}
	if c := e.do("GET", "/Patient/nope/$everything", nil).status; c != 404 {
		t.Fatalf("unknown patient: %d", c)
	}
	if c := e.do("GET", "/Observation/x/$everything", nil).status; c != 400 {
		t.Fatalf("$everything on Observation: %d", c)
	}
}
