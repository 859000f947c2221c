package fhirserver

import (
	"testing"

	"phix/fhir"
)

// TestSecurityLabelsOnWrite: meta.security is kept on writes, refused when
// it breaks the R4 value set rules (PHI-6007), and searchable with _security.
func TestSecurityLabelsOnWrite(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	label := func(sys, code string) map[string]any { return map[string]any{"system": sys, "code": code} }
	withLabels := func(family string, ls ...any) map[string]any {
		p := patient(family, "Lab")
		p["meta"] = map[string]any{"security": ls}
		return p
	}
	r := e.do("POST", "/Patient", withLabels("Restricted", label(fhir.SystemConfidentiality, "R"), label(fhir.SystemActCode, "PSY"))).want(t, 201)
	rid := r.str("id")
	sec := r.obj["meta"].(map[string]any)["security"].([]any)
	if len(sec) != 2 {
		t.Fatalf("labels not kept: %v", sec)
	}
	nid := e.do("POST", "/Patient", withLabels("Normal", label(fhir.SystemConfidentiality, "N"))).want(t, 201).str("id")

	for name, body := range map[string]map[string]any{
		"unknown confidentiality": withLabels("Bad", label(fhir.SystemConfidentiality, "X")),
		"two confidentialities":   withLabels("Bad", label(fhir.SystemConfidentiality, "N"), label(fhir.SystemConfidentiality, "V")),
		"no system":               withLabels("Bad", map[string]any{"code": "R"}),
	} {
		got := e.do("POST", "/Patient", body)
		if got.status != 400 || got.errCode() != "PHI-6007" {
			t.Errorf("%s: %d %s", name, got.status, got.errCode())
		}
	}
	// Updates and transaction entries are checked the same way.
	bad := withLabels("Bad", label(fhir.SystemConfidentiality, "X"))
	bad["id"] = nid
	e.do("PUT", "/Patient/"+nid, bad).want(t, 400)
	tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"resource": bad, "request": map[string]any{"method": "PUT", "url": "Patient/" + nid}},
	}}
	e.do("POST", "", tx).want(t, 400)

	ids := func(q string) []string {
		var out []string
		for _, en := range e.do("GET", "/Patient?"+q, nil).want(t, 200).entries() {
			out = append(out, en["resource"].(map[string]any)["id"].(string))
		}
		return out
	}
	if got := ids("_security=" + fhir.SystemConfidentiality + "|R"); len(got) != 1 || got[0] != rid {
		t.Fatalf("_security=R: %v", got)
	}
	if got := ids("_security=N"); len(got) != 1 || got[0] != nid {
		t.Fatalf("_security=N: %v", got)
	}
	if got := ids("_security:not=" + fhir.SystemConfidentiality + "|R"); len(got) != 1 || got[0] != nid {
		t.Fatalf("_security:not=R: %v", got)
	}
	if got := ids("_security=PSY,N"); len(got) != 2 {
		t.Fatalf("_security=PSY,N: %v", got)
	}
}
