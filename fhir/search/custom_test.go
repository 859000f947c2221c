package search

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"testing"

	"phix/fhir"
)

func defObj(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustDef(t *testing.T, s string) *Definition {
	t.Helper()
	d, err := ParseDefinition(defObj(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParseDefinitionErrors(t *testing.T) {
	base := `"resourceType":"SearchParameter","url":"http://x/sp","status":"active","code":"c","base":["Patient"],"type":"token"`
	tests := []struct {
		name, body, field string
		pos               bool
	}{
		{"not a SearchParameter", `{"resourceType":"Patient"}`, "resourceType", false},
		{"bad status", `{"resourceType":"SearchParameter","status":"x"}`, "status", false},
		{"no url", `{"resourceType":"SearchParameter","status":"active","code":"c"}`, "url", false},
		{"bad code", `{"resourceType":"SearchParameter","url":"http://x","status":"active","code":"_c"}`, "code", false},
		{"composite", `{"resourceType":"SearchParameter","url":"http://x","status":"active","code":"c","type":"composite"}`, "type", false},
		{"no base", `{"resourceType":"SearchParameter","url":"http://x","status":"active","code":"c","type":"token"}`, "base", false},
		{"abstract base", `{"resourceType":"SearchParameter","url":"http://x","status":"active","code":"c","type":"token","base":["Resource"]}`, "base", false},
		{"core code", `{"resourceType":"SearchParameter","url":"http://x","status":"active","code":"gender","type":"token","base":["Patient"],"expression":"Patient.gender"}`, "code", false},
		{"target on token", `{` + base + `,"target":["Patient"],"expression":"Patient.id"}`, "target", false},
		{"no expression", `{` + base + `}`, "expression", false},
		{"syntax", `{` + base + `,"expression":"Patient.name.where("}`, "expression", true},
		{"unknown function", `{` + base + `,"expression":"Patient.name.frobnicate()"}`, "expression", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDefinition(defObj(t, tc.body))
			var de *DefinitionError
			if !errors.As(err, &de) || de.Field != tc.field || (de.Pos != nil) != tc.pos {
				t.Fatalf("got %v (%+v), want field %s, position %v", err, de, tc.field, tc.pos)
			}
		})
	}
}

func patientRes(t *testing.T, s string) *fhir.Resource {
	t.Helper()
	r, err := fhir.Parse([]byte(s), fhir.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCustomExtract(t *testing.T) {
	c := NewCustom()
	defs := []string{
		`{"resourceType":"SearchParameter","url":"http://x/nick","status":"active","code":"nick","base":["Patient"],"type":"string","expression":"Patient.name.where(use='nickname')"}`,
		`{"resourceType":"SearchParameter","url":"http://x/gp","status":"active","code":"gp-org","base":["Patient"],"type":"reference","target":["Organization"],"expression":"Patient.generalPractitioner.where(resolve() is Organization)"}`,
		`{"resourceType":"SearchParameter","url":"http://x/born","status":"active","code":"born","base":["Patient"],"type":"date","expression":"Patient.birthDate"}`,
		`{"resourceType":"SearchParameter","url":"http://x/names","status":"active","code":"name-count","base":["Patient"],"type":"number","expression":"Patient.name.count()"}`,
		`{"resourceType":"SearchParameter","url":"http://x/upper","status":"active","code":"upper-family","base":["Patient"],"type":"string","expression":"Patient.name.family.upper()"}`,
	}
	for _, s := range defs {
		if err := c.Register(mustDef(t, s), "k", true); err != nil {
			t.Fatal(err)
		}
	}
	r := patientRes(t, `{"resourceType":"Patient","id":"p","birthDate":"1970-03","name":[{"use":"official","family":"Zhāng"},{"use":"nickname","given":["Bo"]}],
"generalPractitioner":[{"reference":"Practitioner/1"},{"reference":"Organization/o1"}]}`)
	got := map[string][]Entry{}
	for _, e := range c.Extract(r) {
		got[e.Param] = append(got[e.Param], e)
	}
	if e := got["nick"]; len(e) != 1 || e[0].Str != "bo" {
		t.Errorf("nick: %+v", e)
	}
	if e := got["gp-org"]; len(e) != 1 || e[0].RefType != "Organization" || e[0].RefID != "o1" {
		t.Errorf("gp-org: %+v", e)
	}
	if e := got["born"]; len(e) != 1 || e[0].Lo.Month() != 3 || e[0].Hi.Month() != 3 {
		t.Errorf("born: %+v", e)
	}
	if e := got["name-count"]; len(e) != 1 || e[0].Num != 2 {
		t.Errorf("name-count: %+v", e)
	}
	if e := got["upper-family"]; len(e) != 1 || e[0].Str != "zhang" {
		t.Errorf("upper-family: %+v", e)
	}
	if e := c.ExtractCustom(r, "http://x/nick"); len(e) != 1 {
		t.Errorf("ExtractCustom: %+v", e)
	}
	if e := c.Extract(patientRes(t, `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"}}`)); len(e) != 0 {
		t.Errorf("a Patient parameter extracted from an Observation: %+v", e)
	}
}

func TestCustomParse(t *testing.T) {
	c := NewCustom()
	d := mustDef(t, `{"resourceType":"SearchParameter","url":"http://x/gp","status":"active","code":"gp-org","base":["Patient"],"type":"reference","target":["Organization"],"expression":"Patient.generalPractitioner"}`)
	if err := c.Register(d, "v1", false); err != nil {
		t.Fatal(err)
	}
	parse := func(typ, qs string) error {
		v, _ := url.ParseQuery(qs)
		_, _, err := Parse(typ, v, ParseOptions{Strict: true, Custom: c})
		return err
	}
	for _, q := range [][2]string{
		{"Patient", "gp-org=Organization/1"},
		{"Patient", "gp-org.name=acme"},
		{"Patient", "_sort=gp-org"},
		{"Patient", "_include=Patient:gp-org"},
		{"Observation", "subject:Patient.gp-org=Organization/1"},
	} {
		var se *Error
		if err := parse(q[0], q[1]); !errors.As(err, &se) || se.Code != CodeIndexing {
			t.Errorf("%s?%s while indexing: %v", q[0], q[1], err)
		}
	}
	if c.SetReady("http://x/gp", "v0") {
		t.Fatal("SetReady accepted another definition's key")
	}
	if !c.SetReady("http://x/gp", "v1") {
		t.Fatal("SetReady refused")
	}
	for _, q := range []string{"gp-org=Organization/1", "gp-org.name=acme", "_include=Patient:gp-org"} {
		if err := parse("Patient", q); err != nil {
			t.Errorf("Patient?%s when ready: %v", q, err)
		}
	}
	if err := parse("Observation", "gp-org=x"); err == nil {
		t.Error("a Patient parameter parsed on Observation")
	}
	// A second URL with the same code on the same base conflicts.
	d2 := mustDef(t, `{"resourceType":"SearchParameter","url":"http://x/other","status":"active","code":"gp-org","base":["Patient","Group"],"type":"token","expression":"Patient.id"}`)
	if !c.Conflict(d2) || c.Register(d2, "v", true) == nil {
		t.Fatal("a conflicting definition was registered")
	}
	if p := c.Remove("http://x/gp"); p == nil || c.Lookup("Patient", "gp-org") != nil {
		t.Fatal("Remove")
	}
	if err := parse("Patient", "gp-org=Organization/1"); err == nil {
		t.Fatal("a removed parameter parsed")
	}
	if got := c.Params(); len(got) != 0 {
		t.Fatalf("Params after Remove: %v", got)
	}
	var nilC *Custom
	if nilC.Lookup("Patient", "x") != nil || nilC.Pending(d.Param) || nilC.Extract(nil) != nil || slices.Contains(nilC.Params(), d.Param) {
		t.Fatal("a nil registry is not empty")
	}
}

// FuzzParseDefinition feeds arbitrary SearchParameter JSON through the
// definition parser and, when it is accepted, extracts with it: neither may
// panic, and an accepted definition always has a code, a type and bases.
func FuzzParseDefinition(f *testing.F) {
	f.Add(`{"resourceType":"SearchParameter","url":"http://x","status":"active","code":"c","base":["Patient"],"type":"token","expression":"Patient.gender"}`)
	f.Add(`{"resourceType":"SearchParameter","url":"http://x","status":"active","code":"c","base":["Patient"],"type":"string","expression":"Patient.name.where(given.exists()).family | Patient.name.text"}`)
	f.Add(`{"resourceType":"SearchParameter","url":"http://x","status":"draft","code":"c","base":["Observation"],"type":"quantity","expression":"(Observation.value as Quantity)"}`)
	f.Add(`{"resourceType":"SearchParameter","url":"http://x","status":"active","code":"c","base":["Patient"],"type":"date","expression":"Patient.name.where("}`)
	pat := []byte(`{"resourceType":"Patient","id":"p","gender":"female","birthDate":"1970","name":[{"family":"A","given":["B"]}]}`)
	res, err := fhir.Parse(pat, fhir.ParseOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) != nil {
			return
		}
		d, err := ParseDefinition(m)
		if err != nil {
			return
		}
		if d.Param.Code == "" || d.Param.Type == "" || len(d.Param.Base) == 0 {
			t.Fatalf("accepted an incomplete definition: %+v", d.Param)
		}
		c := NewCustom()
		if err := c.Register(d, "k", true); err != nil {
			t.Fatal(err)
		}
		_ = c.Extract(res)
	})
}
