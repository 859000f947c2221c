package fhirserver

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"phix/deid"
	"phix/suite"
)

func withDeid(t testing.TB) func(*Config) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	keys, err := deid.DeriveKeys(suite.Intl, secret)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.DeidKeys = keys }
}

func levelParams(level string, extra ...any) map[string]any {
	ps := []any{map[string]any{"name": "level", "valueCode": level}}
	return map[string]any{"resourceType": "Parameters", "parameter": append(ps, extra...)}
}

// TestDeidentify: the seed 002 request/response shape, the compartment and
// Bundle forms, and the error mapping.
func TestDeidentify(t *testing.T) {
	e := newEnv(t, openSQLite(t), withDeid(t))
	p := patient("Zebulon", "Quixotic")
	p["address"] = []any{map[string]any{"line": []any{"12 Elmwood Lane"}, "city": "Springfield", "state": "CA", "postalCode": "94110"}}
	p["telecom"] = []any{map[string]any{"system": "phone", "value": "555-867-5309"}}
	id := e.do("POST", "/Patient", p).want(t, 201).str("id")
	obs := map[string]any{"resourceType": "Observation", "status": "final",
		"code":    map[string]any{"text": "weight"},
		"subject": map[string]any{"reference": "Patient/" + id},
	}
	e.do("POST", "/Observation", obs).want(t, 201)
	phi := []string{"Zebulon", "Quixotic", "Elmwood", "867-5309", "Zebulon-Quixotic", id}

	got := e.do("POST", "/Patient/"+id+"/$de-identify", levelParams("safe-harbor")).want(t, 200)
	if got.str("resourceType") != "Patient" || !strings.Contains(string(got.body), `"code":"MASKED"`) {
		t.Fatalf("shape: %s", got.body)
	}
	for _, v := range phi {
		if strings.Contains(string(got.body), v) {
			t.Fatalf("de-identified Patient still holds a PHI value")
		}
	}

	comp := e.do("POST", "/Patient/"+id+"/$de-identify", levelParams("safe-harbor",
		map[string]any{"name": "scope", "valueCode": "compartment"})).want(t, 200)
	if comp.str("resourceType") != "Bundle" || len(comp.obj["entry"].([]any)) != 2 {
		t.Fatalf("compartment: %s", comp.body)
	}
	for _, v := range phi {
		if strings.Contains(string(comp.body), v) {
			t.Fatalf("de-identified compartment still holds a PHI value")
		}
	}

	raw, _ := json.Marshal(p)
	var pm map[string]any
	_ = json.Unmarshal(raw, &pm)
	bundle := map[string]any{"resourceType": "Bundle", "type": "collection", "entry": []any{map[string]any{"resource": pm}}}
	sys := e.do("POST", "/$de-identify", levelParams("safe-harbor", map[string]any{"name": "resource", "resource": bundle})).want(t, 200)
	if sys.str("resourceType") != "Bundle" || strings.Contains(string(sys.body), "Zebulon") {
		t.Fatalf("system: %s", sys.body)
	}

	for _, c := range []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"bad level", "/Patient/" + id + "/$de-identify", levelParams("nope"), 400, "DEID-PARAM-INVALID"},
		{"no level", "/Patient/" + id + "/$de-identify", map[string]any{"resourceType": "Parameters"}, 400, "DEID-PARAM-INVALID"},
		{"bad scope", "/Patient/" + id + "/$de-identify", levelParams("safe-harbor", map[string]any{"name": "scope", "valueCode": "all"}), 400, "DEID-PARAM-INVALID"},
		{"not Parameters", "/Patient/" + id + "/$de-identify", p, 400, "DEID-PARAM-INVALID"},
		{"risk", "/Patient/" + id + "/$de-identify", levelParams("expert"), 422, "PHI-6009"},
		{"unknown patient", "/Patient/nobody/$de-identify", levelParams("safe-harbor"), 404, "not-found"},
		{"system without Bundle", "/$de-identify", levelParams("safe-harbor"), 400, "DEID-PARAM-INVALID"},
		{"invalid Bundle", "/$de-identify", levelParams("safe-harbor", map[string]any{"name": "resource", "resource": map[string]any{"resourceType": "Bundle", "type": "Smithname"}}), 400, "PHI-6007"},
		{"other type", "/Observation/x/$de-identify", levelParams("safe-harbor"), 501, "not-supported"},
	} {
		r := e.do("POST", c.path, c.body)
		if r.status != c.status || r.errCode() != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.errCode(), c.status, c.code)
		}
	}

	md := e.do("GET", "/metadata", nil).want(t, 200)
	if n := strings.Count(string(md.body), DeidentifyDefinition); n != 2 {
		t.Fatalf("CapabilityStatement lists $de-identify %d times, want 2 (Patient and system)", n)
	}
}

// TestDeidentifySynthea: a Synthea patient and compartment, de-identified,
// hold none of the patient's names, identifiers, phones or addresses.
func TestDeidentifySynthea(t *testing.T) {
	bundles := syntheaBundles(t)
	e := newEnv(t, openSQLite(t), withDeid(t))
	var data []byte
	for _, d := range bundles {
		data = d
		break
	}
	e.do("POST", "", data, "Prefer", "return=minimal").want(t, 200)
	words, subs := syntheaPHI(t, data)
	found := e.do("GET", "/Patient?_count=1", nil).want(t, 200)
	entries, _ := found.obj["entry"].([]any)
	if len(entries) != 1 {
		t.Fatal("no imported Patient")
	}
	id := entries[0].(map[string]any)["resource"].(map[string]any)["id"].(string)
	for _, scope := range []string{"resource", "compartment"} {
		r := e.do("POST", "/Patient/"+id+"/$de-identify", levelParams("safe-harbor",
			map[string]any{"name": "scope", "valueCode": scope})).want(t, 200)
		if hits := findPHI([][]byte{r.body}, words, subs); len(hits) > 0 {
			t.Fatalf("scope %s: %d PHI values in the de-identified output", scope, len(hits))
		}
		if strings.Contains(string(r.body), id) {
			t.Fatalf("scope %s: the patient's id is in the output", scope)
		}
	}
}
