package fhirserver

import (
	"net/http"
	"strings"
	"testing"

	"phix/fhir"
)

func TestMetadata(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	// no token needed.
	r := e.do("GET", "/metadata", nil, "Authorization", "").want(t, 200)
	if r.str("resourceType") != "CapabilityStatement" || r.str("fhirVersion") != "4.0.1" || r.str("kind") != "instance" {
		t.Fatalf("metadata: %.300s", r.body)
	}
	if f := r.obj["format"].([]any); len(f) == 0 || f[0] != "json" {
		t.Fatalf("format %v", f)
	}
	rest := r.obj["rest"].([]any)[0].(map[string]any)
	res := rest["resource"].([]any)
	if len(res) != len(fhir.ResourceTypes()) {
		t.Fatalf("%d resource types, want %d", len(res), len(fhir.ResourceTypes()))
	}
	var pat map[string]any
	for _, x := range res {
		m := x.(map[string]any)
		if m["type"] == "Patient" {
			pat = m
		}
	}
	names := map[string]bool{}
	for _, p := range pat["searchParam"].([]any) {
		names[p.(map[string]any)["name"].(string)] = true
	}
	for _, want := range []string{"_id", "_lastUpdated", "family", "identifier", "birthdate", "general-practitioner"} {
		if !names[want] {
			t.Fatalf("Patient search param %s missing: %v", want, names)
		}
	}
	if pat["conditionalCreate"] != true || pat["updateCreate"] != true || pat["versioning"] != "versioned-update" || pat["conditionalDelete"] != "multiple" {
		t.Fatalf("Patient flags: %v", pat)
	}
	// every advertised parameter is accepted by the parser in strict mode.
	for _, x := range res {
		m := x.(map[string]any)
		typ := m["type"].(string)
		for _, p := range m["searchParam"].([]any) {
			name := p.(map[string]any)["name"].(string)
			if _, _, err := e.srvParse(typ, name+":missing=true"); err != nil && !strings.Contains(err.Error(), "modifier") {
				t.Fatalf("%s?%s advertised but refused: %v", typ, name, err)
			}
		}
	}
	// other methods on /metadata are refused, and need no token to learn that.
	e.do("POST", "/metadata", "{}").want(t, http.StatusMethodNotAllowed)
}

func (e *env) srvParse(typ, query string) (any, any, error) {
	s := &Server{cfg: Config{MaxPageSize: 1000}}
	vals, _ := parseQueryString(query)
	return s.parseQuery(typ, vals, true)
}

func parseQueryString(q string) (map[string][]string, error) {
	k, v, _ := strings.Cut(q, "=")
	return map[string][]string{k: {v}}, nil
}

// capNames returns the names of a CapabilityStatement's search parameters
// and operations for typ ("" for the system-level operations).
func capNames(t *testing.T, r *resp, typ string) (params, ops map[string]bool) {
	t.Helper()
	params, ops = map[string]bool{}, map[string]bool{}
	rest := r.obj["rest"].([]any)[0].(map[string]any)
	collect := func(m map[string]any) {
		for _, p := range asSlice(m["searchParam"]) {
			params[p.(map[string]any)["name"].(string)] = true
		}
		for _, o := range asSlice(m["operation"]) {
			ops[o.(map[string]any)["name"].(string)] = true
		}
	}
	if typ == "" {
		collect(rest)
		return
	}
	for _, x := range rest["resource"].([]any) {
		if m := x.(map[string]any); m["type"] == typ {
			collect(m)
		}
	}
	return
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// TestMetadataOperations: the CapabilityStatement lists the operations
// that are on, and only those.
func TestMetadataOperations(t *testing.T) {
	on := newEnv(t, openSQLite(t)) // field protection on, no eraser, no enforcement
	r := on.do("GET", "/metadata", nil).want(t, 200)
	_, pat := capNames(t, r, "Patient")
	_, sys := capNames(t, r, "")
	for _, want := range []string{"everything", "encrypt", "validate"} {
		if !pat[want] {
			t.Errorf("Patient operation %s missing: %v", want, pat)
		}
	}
	for _, absent := range []string{"erase", "consent-status", "reindex"} {
		if pat[absent] {
			t.Errorf("Patient operation %s listed but not on", absent)
		}
	}
	if !sys["encrypt"] || sys["break-glass"] || sys["reindex"] {
		t.Errorf("system operations: %v", sys)
	}
	off := newEnv(t, openSQLite(t), noProtect)
	_, sys = capNames(t, off.do("GET", "/metadata", nil).want(t, 200), "")
	if sys["encrypt"] {
		t.Errorf("encrypt listed without protection: %v", sys)
	}
	ee := newEnfEnv(t, openSQLite(t))
	r = ee.do("GET", "/metadata", nil).want(t, 200)
	_, pat = capNames(t, r, "Patient")
	_, sys = capNames(t, r, "")
	if !pat["consent-status"] || !sys["break-glass"] || !sys["break-glass-review"] {
		t.Errorf("enforcement operations: Patient %v, system %v", pat, sys)
	}
}
