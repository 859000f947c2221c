package fhirserver

import (
	"net/url"
	"strings"
	"testing"
)

func TestSearchFullText(t *testing.T) {
	forEachBackend(t, testSearchFullText)
}

// testSearchFullText: _text and _content over HTTP, English and Chinese, with
// Bundle.total, combined parameters, updates, and refused modifiers.
func testSearchFullText(t *testing.T, e *env) {
	withText := func(family, given, div string) map[string]any {
		p := patient(family, given)
		p["text"] = map[string]any{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml">` + div + `</div>`}
		return p
	}
	a := e.do("POST", "/Patient", withText("Ftsmith", "Ann", "<p>Chronic <b>bone</b> pain</p>")).want(t, 201).str("id")
	e.do("POST", "/Patient", withText("Ftjones", "Bob", "<p>Bone fracture</p>")).want(t, 201)
	c := e.do("POST", "/Patient", withText("王", "芳", "<p>患者王芳，诊断：糖尿病</p>")).want(t, 201).str("id")

	count := func(query string) int {
		t.Helper()
		return e.do("GET", "/Patient?"+query, nil).want(t, 200).total()
	}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"_text=bone", 2},
		{"_text=" + url.QueryEscape("bone pain"), 1},
		{"_text=" + url.QueryEscape("pain OR fracture"), 2},
		{"_text=" + url.QueryEscape(`"bone fracture"`), 1},
		{"_text=糖尿病", 1},
		{"_text=糖", 1},
		{"_text=尿糖", 0},
		{"_content=ftsmith", 1},
		{"_content=王芳", 1},
		{"_text=bone&family=ftjones", 1},
		{"_text=bone&_count=1", 2},
	} {
		if got := count(tc.query); got != tc.want {
			t.Errorf("%s: total %d, want %d", tc.query, got, tc.want)
		}
	}
	one := e.do("GET", "/Patient?_text=bone&_count=1", nil).want(t, 200)
	if len(one.entries()) != 1 || one.link("next") == "" {
		t.Errorf("paging: %s", one.body)
	}
	// An update replaces the terms.
	upd := withText("Ftsmith", "Ann", "<p>Recovered</p>")
	upd["id"] = a
	e.do("PUT", "/Patient/"+a, upd).want(t, 200)
	if count("_text=bone") != 1 || count("_text=recovered") != 1 {
		t.Error("update did not replace the narrative terms")
	}
	e.do("DELETE", "/Patient/"+c, nil).want(t, 204)
	if count("_text=糖尿病") != 0 {
		t.Error("delete left the terms")
	}
	// Modifiers and malformed queries are refused, never ignored.
	for _, q := range []string{"_text:missing=true", "_content:exact=x", "_text=" + url.QueryEscape("(bone")} {
		r := e.do("GET", "/Patient?"+q, nil)
		if r.status != 400 || r.obj["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: status %d %.200s", q, r.status, r.body)
		}
		if strings.Contains(string(r.body), "bone") {
			t.Errorf("%s: the error quotes the value: %s", q, r.body)
		}
	}
	// With field protection the index holds blind word tokens: whole words
	// and phrases work (above), a prefix cannot and is refused.
	if e.protected {
		e.do("GET", "/Patient?_text=bon*", nil).wantCode(t, "PHI-6006")
	}
	// The CapabilityStatement lists both parameters.
	md := string(e.do("GET", "/metadata", nil).want(t, 200).body)
	for _, p := range []string{`"name":"_text"`, `"name":"_content"`} {
		if !strings.Contains(md, p) {
			t.Errorf("CapabilityStatement lacks %s", p)
		}
	}
}
