package fhirserver

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"phix/audit"
	"phix/internal/testenv"
)

const jsonPatchCT = "application/json-patch+json"

// fpPatch builds a FHIRPath Patch Parameters body from operations given
// as their parts.
func fpPatch(ops ...string) string {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Parameters","parameter":[`)
	for i, op := range ops {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":"operation","part":[` + op + `]}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

func fpPatchObj(t *testing.T, ops ...string) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := json.Unmarshal([]byte(fpPatch(ops...)), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPatch(t *testing.T) {
	forEachBackend(t, testPatch)
}

func testPatch(t *testing.T, e *env) {
	id := e.do("POST", "/Patient", patient("Smith", "Ann")).want(t, 201).str("id")
	path := "/Patient/" + id

	// JSON Patch: a new version, stamped like an update.
	r := e.do("PATCH", path, `[{"op":"test","path":"/gender","value":"female"},{"op":"replace","path":"/name/0/family","value":"Smyth"},{"op":"add","path":"/active","value":true}]`,
		"Content-Type", jsonPatchCT).want(t, 200)
	if r.str("meta", "versionId") != "2" || r.header.Get("ETag") != `W/"2"` || r.obj["active"] != true {
		t.Fatalf("JSON Patch result: %s", r.body)
	}
	if fam := r.obj["name"].([]any)[0].(map[string]any)["family"]; fam != "Smyth" {
		t.Fatalf("family %v", fam)
	}
	if !strings.HasSuffix(r.header.Get("Location"), path+"/_history/2") {
		t.Fatalf("Location %q", r.header.Get("Location"))
	}

	// FHIRPath Patch with If-Match of the current version.
	r = e.do("PATCH", path, fpPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueDate":"1971-02-03"}`,
		`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"telecom"},{"name":"value","valueContactPoint":{"system":"phone","value":"555"}}`),
		"If-Match", `W/"2"`).want(t, 200)
	if r.str("birthDate") != "1971-02-03" || r.str("meta", "versionId") != "3" || len(r.obj["telecom"].([]any)) != 1 {
		t.Fatalf("FHIRPath Patch result: %s", r.body)
	}
	if got := e.do("GET", path+"/_history", nil).want(t, 200).total(); got != 3 {
		t.Fatalf("history has %d versions", got)
	}

	// Failures store nothing.
	fails := []struct {
		name   string
		body   string
		hdr    []string
		status int
		code   string
	}{
		{"stale If-Match", `[]`, []string{"Content-Type", jsonPatchCT, "If-Match", `W/"2"`}, 412, string(CodeVersionConflict)},
		{"failed test", `[{"op":"test","path":"/gender","value":"male"},{"op":"remove","path":"/gender"}]`, []string{"Content-Type", jsonPatchCT}, 422, "patch-test-failed"},
		{"missing target", `[{"op":"remove","path":"/deceasedBoolean"}]`, []string{"Content-Type", jsonPatchCT}, 422, "patch-path-not-found"},
		{"bad pointer", `[{"op":"remove","path":"gender"}]`, []string{"Content-Type", jsonPatchCT}, 400, "patch-invalid-path"},
		{"not a patch", `{"op":"remove"}`, []string{"Content-Type", jsonPatchCT}, 400, "patch-invalid"},
		{"change id", `[{"op":"replace","path":"/id","value":"other"}]`, []string{"Content-Type", jsonPatchCT}, 400, "patch-immutable"},
		{"change resourceType", `[{"op":"replace","path":"/resourceType","value":"Group"}]`, []string{"Content-Type", jsonPatchCT}, 400, "patch-immutable"},
		{"invalid result", `[{"op":"replace","path":"/gender","value":"robot"}]`, []string{"Content-Type", jsonPatchCT}, 400, string(CodeValidation)},
		{"unknown element in result", `[{"op":"add","path":"/shoeSize","value":42}]`, []string{"Content-Type", jsonPatchCT}, 400, string(CodeValidation)},
		{"FHIRPath not single", fpPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.descendants().where($this is string)"},{"name":"value","valueString":"x"}`), nil, 422, "patch-not-single"},
		{"Parameters that is no patch", `{"resourceType":"Parameters","parameter":[{"name":"x","valueString":"y"}]}`, nil, 400, "patch-invalid"},
		{"other resource as patch", `{"resourceType":"Patient"}`, nil, 400, "patch-invalid"},
		{"XML", `<x/>`, []string{"Content-Type", "application/fhir+xml"}, 415, string(CodeUnsupportedMedia)},
		{"Latin-1 JSON Patch", `[]`, []string{"Content-Type", jsonPatchCT + "; charset=iso-8859-1"}, 415, string(CodeUnsupportedMedia)},
		{"FHIR version 3", `{"resourceType":"Parameters"}`, []string{"Content-Type", "application/fhir+json; fhirVersion=3.0"}, 415, string(CodeUnsupportedVersion)},
		{"too deep", `[{"op":"add","path":"/extension","value":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]`, []string{"Content-Type", jsonPatchCT}, 400, string(CodeTooDeep)},
	}
	for _, f := range fails {
		r := e.do("PATCH", path, f.body, f.hdr...)
		if r.status != f.status || r.errCode() != f.code {
			t.Errorf("%s: %d %s, want %d %s; %s", f.name, r.status, r.errCode(), f.status, f.code, r.body)
		}
		if strings.Contains(string(r.body), "Smyth") {
			t.Errorf("%s: the error echoes resource content: %s", f.name, r.body)
		}
	}
	if v := e.do("GET", path, nil).want(t, 200).str("meta", "versionId"); v != "3" {
		t.Fatalf("a failed patch wrote version %s", v)
	}

	// An invalid FHIRPath is a 400 that points at the operation and position.
	r = e.do("PATCH", path, fpPatch(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.active"}`,
		`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.where(family = 'Smyth'"}`)).want(t, 400)
	issue := r.obj["issue"].([]any)[0].(map[string]any)
	diag, _ := issue["diagnostics"].(string)
	if r.errCode() != "patch-invalid-path" || !strings.Contains(diag, "operation 1") || !strings.Contains(diag, "column") || strings.Contains(diag, "Smyth") {
		t.Fatalf("invalid FHIRPath: %s", r.body)
	}
	if expr := issue["expression"].([]any); expr[0] != "Parameters.parameter[1].part.where(name = 'path')" {
		t.Fatalf("expression %v", expr)
	}

	// Missing and deleted resources.
	e.do("PATCH", "/Patient/nope", `[]`, "Content-Type", jsonPatchCT).want(t, 404)
	gone := e.do("POST", "/Patient", patient("Gone", "Gil")).want(t, 201).str("id")
	e.do("DELETE", "/Patient/"+gone, nil).want(t, 204)
	e.do("PATCH", "/Patient/"+gone, `[]`, "Content-Type", jsonPatchCT).want(t, 410)

	// application/json: an array is JSON Patch, an object FHIRPath Patch.
	r = e.do("PATCH", path, `[{"op":"replace","path":"/active","value":false}]`, "Content-Type", "application/json").want(t, 200)
	if r.obj["active"] != false {
		t.Fatalf("application/json JSON Patch: %s", r.body)
	}
}

func TestConditionalPatch(t *testing.T) {
	forEachBackend(t, testConditionalPatch)
}

func testConditionalPatch(t *testing.T, e *env) {
	id := e.do("POST", "/Patient", patient("Cond", "One")).want(t, 201).str("id")
	e.do("POST", "/Patient", patient("Twin", "A")).want(t, 201)
	e.do("POST", "/Patient", patient("Twin", "B")).want(t, 201)
	body := `[{"op":"add","path":"/active","value":true}]`
	r := e.do("PATCH", "/Patient?identifier=urn:test:mrn|Cond-One", body, "Content-Type", jsonPatchCT).want(t, 200)
	if r.str("id") != id || r.obj["active"] != true {
		t.Fatalf("conditional patch: %s", r.body)
	}
	if r := e.do("PATCH", "/Patient?identifier=urn:test:mrn|nobody", body, "Content-Type", jsonPatchCT); r.status != 404 || r.errCode() != string(CodeNotFound) {
		t.Fatalf("no match: %d %s", r.status, r.body)
	}
	if r := e.do("PATCH", "/Patient?family=Twin", body, "Content-Type", jsonPatchCT); r.status != 412 || r.errCode() != string(CodeMultipleMatches) {
		t.Fatalf("two matches: %d %s", r.status, r.body)
	}
}

func TestPatchInBundles(t *testing.T) {
	forEachBackend(t, testPatchInBundles)
}

func binaryPatch(ops string) map[string]any {
	return map[string]any{"resourceType": "Binary", "contentType": jsonPatchCT, "data": base64.StdEncoding.EncodeToString([]byte(ops))}
}

func testPatchInBundles(t *testing.T, e *env) {
	a := e.do("POST", "/Patient", patient("Bundle", "A")).want(t, 201).str("id")
	b := e.do("POST", "/Patient", patient("Bundle", "B")).want(t, 201).str("id")

	// A transaction with both kinds of PATCH, one conditional.
	tx := bundleOf("transaction",
		entry("", binaryPatch(`[{"op":"add","path":"/active","value":true}]`), "PATCH", "Patient/"+a, "ifMatch", `W/"1"`),
		entry("", fpPatchObj(t, `{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":"male"}`),
			"PATCH", "Patient?identifier=urn:test:mrn|Bundle-B"),
	)
	r := e.do("POST", "", tx).want(t, 200)
	if s := responseOf(t, r, 0)["status"]; s != "200 OK" {
		t.Fatalf("entry 0: %s", r.body)
	}
	if got := e.do("GET", "/Patient/"+a, nil).want(t, 200); got.obj["active"] != true || got.str("meta", "versionId") != "2" {
		t.Fatalf("A after transaction: %s", got.body)
	}
	if got := e.do("GET", "/Patient/"+b, nil).want(t, 200).str("gender"); got != "male" {
		t.Fatalf("B gender %q", got)
	}

	// A failing PATCH fails the whole transaction: the first entry is not applied.
	tx = bundleOf("transaction",
		entry("", binaryPatch(`[{"op":"replace","path":"/active","value":false}]`), "PATCH", "Patient/"+a),
		entry("", binaryPatch(`[{"op":"test","path":"/gender","value":"female"}]`), "PATCH", "Patient/"+b),
	)
	r = e.do("POST", "", tx)
	if r.status != 422 || r.errCode() != "patch-test-failed" {
		t.Fatalf("failing transaction: %d %s", r.status, r.body)
	}
	if got := e.do("GET", "/Patient/"+a, nil).want(t, 200); got.obj["active"] != true || got.str("meta", "versionId") != "2" {
		t.Fatalf("a failed transaction changed A: %s", got.body)
	}

	// In a batch each entry stands alone.
	batch := bundleOf("batch",
		entry("", binaryPatch(`[{"op":"replace","path":"/active","value":false}]`), "PATCH", "Patient/"+a),
		entry("", binaryPatch(`[{"op":"test","path":"/gender","value":"female"}]`), "PATCH", "Patient/"+b),
		entry("", map[string]any{"resourceType": "Binary", "contentType": "text/plain", "data": "eA=="}, "PATCH", "Patient/"+b),
		entry("", fpPatchObj(t, `{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.("}`), "PATCH", "Patient/"+b),
		entry("", patient("X", "Y"), "PATCH", "Patient/"+b),
	)
	r = e.do("POST", "", batch).want(t, 200)
	want := []string{"200 OK", "422", "415", "400", "400"}
	for i, w := range want {
		if s, _ := responseOf(t, r, i)["status"].(string); !strings.HasPrefix(s, w) {
			t.Errorf("batch entry %d: status %q, want %s; %s", i, s, w, r.body)
		}
	}
	if got := e.do("GET", "/Patient/"+a, nil).want(t, 200); got.obj["active"] != false {
		t.Fatalf("batch entry 0 not applied: %s", got.body)
	}
}

func TestPatchCapability(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	r := e.do("GET", "/metadata", nil).want(t, http.StatusOK)
	if !strings.Contains(string(r.body), `{"code":"patch"}`) || !strings.Contains(string(r.body), `"patchFormat":["application/json-patch+json","application/fhir+json"]`) {
		t.Fatalf("CapabilityStatement lacks patch: %.400s", r.body)
	}
}

// TestPatchAudited: an instance and a conditional PATCH are audited as
// action patch on the patched resource; a refused one as a failure; no
// event carries the patch's values or the name.
func TestPatchAudited(t *testing.T) {
	a := newAuditEnv(t)
	id := a.do("POST", "/Patient", patient("Audpatch", "Ann")).want(t, 201).str("id")
	rids := []string{
		a.do("PATCH", "/Patient/"+id, `[{"op":"replace","path":"/name/0/family","value":"Secretname"}]`, "Content-Type", jsonPatchCT).want(t, 200).header.Get("X-Request-Id"),
		a.do("PATCH", "/Patient?identifier=urn:test:mrn|Audpatch-Ann", fpPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":"male"}`)).want(t, 200).header.Get("X-Request-Id"),
		a.do("PATCH", "/Patient/"+id, `[{"op":"test","path":"/gender","value":"Secretvalue"}]`, "Content-Type", jsonPatchCT).want(t, 422).header.Get("X-Request-Id"),
	}
	evs := a.events(t)
	byRID := map[string]audit.Event{}
	for _, ev := range evs {
		byRID[ev.RequestID] = ev
	}
	for i, rid := range rids {
		ev, ok := byRID[rid]
		if !ok {
			t.Fatalf("request %d: no audit event", i)
		}
		want := audit.OutcomeSuccess
		if i == 2 {
			want = audit.OutcomeMinorFailure
		}
		if ev.Action != audit.ActionPatch || ev.Outcome != want || ev.What.ResourceType != "Patient" {
			t.Fatalf("request %d: event %+v", i, ev)
		}
		if i != 1 && ev.What.ResourceID != a.ps.Patient(id) {
			t.Fatalf("request %d: resource pseudonym %q", i, ev.What.ResourceID)
		}
	}
	raw, _ := json.Marshal(evs)
	for _, phi := range []string{"Audpatch", "Secretname", "Secretvalue", id} {
		if strings.Contains(string(raw), phi) {
			t.Fatalf("audit events contain %q", phi)
		}
	}
}

// BenchmarkPatchVsPut: a 3-operation JSON Patch of a Synthea Patient over
// HTTP next to a PUT of the whole (already patched) Patient, both through
// parse, validation, invariants and the store:
//
//	go test -run '^$' -bench PatchVsPut -count 5 ./fhirserver
func BenchmarkPatchVsPut(b *testing.B) {
	var patientJSON []byte
	for _, raw := range testenv.SyntheaResources(b) {
		var head struct{ ResourceType string }
		if json.Unmarshal(raw, &head) == nil && head.ResourceType == "Patient" {
			patientJSON = raw
			break
		}
	}
	if patientJSON == nil {
		testenv.Missing(b, "no Synthea Patient")
	}
	benchBackends(b, func(b *testing.B, open storeFactory) {
		e := newEnv(b, open(b))
		var obj map[string]any
		if err := json.Unmarshal(patientJSON, &obj); err != nil {
			b.Fatal(err)
		}
		id, _ := obj["id"].(string)
		e.do("PUT", "/Patient/"+id, obj).want(b, 201)
		ops := `[{"op":"replace","path":"/name/0/family","value":"Patched"},{"op":"add","path":"/active","value":true},{"op":"test","path":"/id","value":"` + id + `"}]`
		b.Run("patch", func(b *testing.B) {
			for b.Loop() {
				e.do("PATCH", "/Patient/"+id, ops, "Content-Type", jsonPatchCT, "Prefer", "return=minimal").want(b, 200)
			}
		})
		b.Run("put", func(b *testing.B) {
			cur := e.do("GET", "/Patient/"+id, nil).want(b, 200).obj
			delete(cur, "meta")
			for b.Loop() {
				e.do("PUT", "/Patient/"+id, cur, "Prefer", "return=minimal").want(b, 200)
			}
		})
	})
}
