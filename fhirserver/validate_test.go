package fhirserver

import (
	"strings"
	"testing"
)

func TestValidateOperation(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	before := stored(t, e.store)
	ok := e.do("POST", "/Patient/$validate", patient("Valid", "One")).want(t, 200)
	if ok.str("resourceType") != "OperationOutcome" || ok.errCode() != string(CodeValidationSuccess) {
		t.Fatalf("valid: %s", ok.body)
	}
	bad := e.do("POST", "/Patient/$validate", `{"resourceType":"Patient","gender":"robot","birthDate":"x"}`).want(t, 200)
	if bad.errCode() != string(CodeValidation) || len(bad.obj["issue"].([]any)) < 2 {
		t.Fatalf("invalid: %s", bad.body)
	}
	params := map[string]any{"resourceType": "Parameters", "parameter": []any{
		map[string]any{"name": "resource", "resource": map[string]any{"resourceType": "Patient", "id": "v1", "active": "yes"}},
	}}
	wrapped := e.do("POST", "/Patient/v1/$validate", params).want(t, 200)
	if wrapped.errCode() != string(CodeValidation) {
		t.Fatalf("Parameters: %s", wrapped.body)
	}
	e.do("POST", "/Observation/$validate", patient("Wrong", "Type")).want(t, 400)
	e.do("POST", "/Patient/other/$validate", map[string]any{"resourceType": "Patient", "id": "v1"}).want(t, 400)
	e.do("POST", "/Patient/$validate", `{"resourceType":`).want(t, 400)
	// An invariant error (pat-1: a contact needs details or an organization)
	// answers 200 with the constraint key next to PHI-6007.
	inv := e.do("POST", "/Patient/$validate", `{"resourceType":"Patient","contact":[{"gender":"male"}]}`).want(t, 200)
	if inv.errCode() != string(CodeValidation) || !strings.Contains(string(inv.body), `{"system":"urn:phix:constraint-key","code":"pat-1"}`) {
		t.Fatalf("invariant: %s", inv.body)
	}
	if after := stored(t, e.store); after != before {
		t.Fatal("$validate stored something")
	}
}

// TestInvariantsOnWrite: an error-level invariant rejects create, update and a
// transaction entry with 422 PHI-6007 naming the constraint key; a warning
// (dom-6, no narrative) does not reject.
func TestInvariantsOnWrite(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	before := stored(t, e.store)
	bad := `{"resourceType":"Patient","contact":[{"gender":"male"}]}`
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/Patient", bad},
		{"PUT", "/Patient/inv1", `{"resourceType":"Patient","id":"inv1","contact":[{"gender":"male"}]}`},
	} {
		got := e.do(c.method, c.path, c.body).want(t, 422)
		if got.errCode() != string(CodeValidation) || !strings.Contains(string(got.body), `"code":"pat-1"`) {
			t.Fatalf("%s %s: %s", c.method, c.path, got.body)
		}
	}
	tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
		"fullUrl":  "urn:uuid:6f1c1a52-8d7e-4d6e-9d55-2b2f0f0a7c11",
		"resource": map[string]any{"resourceType": "Patient", "contact": []any{map[string]any{"gender": "male"}}},
		"request":  map[string]any{"method": "POST", "url": "Patient"},
	}}}
	got := e.do("POST", "", tx)
	if got.status < 400 || !strings.Contains(string(got.body), "pat-1") {
		t.Fatalf("transaction: %d %s", got.status, got.body)
	}
	if after := stored(t, e.store); after != before {
		t.Fatal("an invalid write stored something")
	}
	e.do("POST", "/Patient", `{"resourceType":"Patient","active":true}`).want(t, 201)
}
