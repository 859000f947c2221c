package fhirserver

import (
	"context"
	"testing"

	"phix/fhir"
	"phix/store"
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

// TestStoredSecurityLabels: labels read straight from a stored version.
func TestStoredSecurityLabels(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	p := patient("Stored", "Sue")
	p["meta"] = map[string]any{"security": []any{map[string]any{"system": fhir.SystemConfidentiality, "code": "V", "display": "very restricted"}}}
	id := e.do("POST", "/Patient", p).want(t, 201).str("id")
	rec, err := e.store.Read(context.Background(), "Patient", id)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := SecurityLabels(rec)
	if err != nil || len(ls) != 1 || ls[0] != (fhir.SecurityLabel{System: fhir.SystemConfidentiality, Code: "V", Display: "very restricted"}) {
		t.Fatalf("labels %+v %v", ls, err)
	}
	if ls, err := SecurityLabels(&store.Record{Deleted: true}); ls != nil || err != nil {
		t.Fatal("deletion has labels")
	}
	if _, err := SecurityLabels(&store.Record{Type: "Patient", Body: []byte("{")}); err == nil {
		t.Fatal("broken body parsed")
	}
}
