package fhirserver

import "testing"

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
	if after := stored(t, e.store); after != before {
		t.Fatal("$validate stored something")
	}
}
