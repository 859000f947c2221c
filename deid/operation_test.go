package deid

import (
	"context"
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"phix/fhir"
	"phix/suite"
)

const opPatient = `{"resourceType":"Patient","id":"patient-12345",
 "text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p class=\"n\">Zelda Quimby &amp; family, born 1980-03-14, tel 617-253-1000</p></div>"},
 "identifier":[{"system":"urn:oid:1.2.3","value":"MRN-778812"}],
 "name":[{"family":"Quimby","given":["Zelda"]}],
 "telecom":[{"system":"phone","value":"617-253-1000"}],
 "gender":"female","birthDate":"1980-03-14",
 "address":[{"line":["12 Elm Street"],"city":"Springfield","state":"MA","postalCode":"02139"}]}`

const opObs = `{"resourceType":"Observation","id":"obs-1","status":"final",
 "code":{"text":"note"},"subject":{"reference":"Patient/patient-12345"},
 "effectiveDateTime":"2020-05-06T10:00:00Z",
 "note":[{"text":"Zelda Quimby reports pain; MRN-778812"}]}`

func opParams(t *testing.T, params string) *fhir.Resource {
	return mustParse(t, `{"resourceType":"Parameters","parameter":[`+params+`]}`)
}

func newOp(t *testing.T) *Operation {
	t.Helper()
	o, err := NewOperation(testKeys(t, suite.Intl, 7), Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestHandleOperationPatient(t *testing.T) {
	o := newOp(t)
	for _, level := range []string{"safe-harbor", "limited-data-set", "china"} {
		t.Run(level, func(t *testing.T) {
			out, err := o.HandleOperation(context.Background(), opParams(t, `{"name":"level","valueCode":"`+level+`"}`), mustParse(t, opPatient))
			if err != nil {
				t.Fatal(err)
			}
			if out.Type != "Patient" || out.ID == "patient-12345" {
				t.Fatalf("got %s/%s", out.Type, out.ID)
			}
			text, _ := jsonText(out)
			for _, v := range []string{"Zelda", "Quimby", "MRN-778812", "617-253-1000", "12 Elm"} {
				if strings.Contains(text, v) {
					t.Errorf("output still holds an identifier (len %d)", len(v))
				}
			}
			tags := out.Object["meta"].(map[string]any)["tag"].([]any)
			tag := tags[len(tags)-1].(map[string]any)
			if tag["code"] != "MASKED" || tag["system"] != "http://terminology.hl7.org/CodeSystem/v3-ObservationValue" {
				t.Errorf("tag %v", tag)
			}
			if level == "safe-harbor" && tag["display"] != "De-identified per HIPAA Safe Harbor" {
				t.Errorf("display %v", tag["display"])
			}
			if issues := fhir.Validate(out); len(issues) > 0 {
				t.Errorf("invalid output: %v", issues)
			}
			if div, ok := out.Object["text"].(map[string]any)["div"].(string); ok {
				wellFormed(t, div)
			}
		})
	}
}

func wellFormed(t *testing.T, div string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(div))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("narrative is not well formed: %v", err)
		}
	}
}

func TestHandleOperationCompartment(t *testing.T) {
	o := newOp(t)
	out, err := o.HandleOperation(context.Background(), opParams(t, `{"name":"level","valueString":"safe-harbor"}`),
		mustParse(t, opPatient), mustParse(t, opObs))
	if err != nil {
		t.Fatal(err)
	}
	if out.Type != "Bundle" || out.Object["type"] != "collection" {
		t.Fatalf("got %s", out.Type)
	}
	entries := out.Object["entry"].([]any)
	if len(entries) != 2 {
		t.Fatalf("%d entries", len(entries))
	}
	pat := entries[0].(map[string]any)["resource"].(map[string]any)
	obs := entries[1].(map[string]any)["resource"].(map[string]any)
	if ref := obs["subject"].(map[string]any)["reference"]; ref != "Patient/"+pat["id"].(string) {
		t.Errorf("subject %v does not follow the patient's pseudonym", ref)
	}
	note := obs["note"].([]any)[0].(map[string]any)["text"].(string)
	if strings.Contains(note, "Zelda") || strings.Contains(note, "Quimby") || strings.Contains(note, "778812") {
		t.Errorf("note still names the patient: %d runes", len(note))
	}
	if obs["effectiveDateTime"] != "2020" {
		t.Errorf("effective %v", obs["effectiveDateTime"])
	}
	if issues := fhir.Validate(out); len(issues) > 0 {
		t.Errorf("invalid output: %v", issues)
	}
	// A Bundle target gives a Bundle.
	b := mustParse(t, `{"resourceType":"Bundle","type":"collection","entry":[{"resource":`+opPatient+`}]}`)
	if out, err := o.HandleOperation(context.Background(), opParams(t, `{"name":"level","valueCode":"china"}`), b); err != nil || out.Type != "Bundle" {
		t.Fatalf("bundle: %v", err)
	}
}

func TestHandleOperationExpertNeedsCohort(t *testing.T) {
	o := newOp(t)
	_, err := o.HandleOperation(context.Background(), opParams(t, `{"name":"level","valueCode":"expert"},{"name":"k","valueInteger":10}`), mustParse(t, opPatient))
	if de, ok := AsError(err); !ok || de.Code != CodeRiskHigh {
		t.Fatalf("got %v, want PHI-6009", err)
	}
}

func TestHandleOperationBadParameters(t *testing.T) {
	o := newOp(t)
	pat := mustParse(t, opPatient)
	cases := map[string]*fhir.Resource{
		"nil":            nil,
		"not Parameters": mustParse(t, `{"resourceType":"Patient"}`),
		"no level":       opParams(t, ``),
		"bad level":      opParams(t, `{"name":"level","valueCode":"none"}`),
		"level type":     opParams(t, `{"name":"level","valueInteger":1}`),
		"unknown":        opParams(t, `{"name":"level","valueCode":"expert"},{"name":"ids","valueCode":"keep"}`),
		"repeated":       opParams(t, `{"name":"level","valueCode":"expert"},{"name":"level","valueCode":"china"}`),
		"k no risk":      opParams(t, `{"name":"level","valueCode":"safe-harbor"},{"name":"k","valueInteger":9}`),
		"k lowered":      opParams(t, `{"name":"level","valueCode":"expert"},{"name":"k","valueInteger":2}`),
		"k not int":      opParams(t, `{"name":"level","valueCode":"expert"},{"name":"k","valueString":"9"}`),
		"k huge":         opParams(t, `{"name":"level","valueCode":"expert"},{"name":"k","valueInteger":100000}`),
		"param shape":    mustParse(t, `{"resourceType":"Parameters","parameter":[1]}`),
	}
	for name, p := range cases {
		_, err := o.HandleOperation(context.Background(), p, pat)
		de, ok := AsError(err)
		if !ok || de.Code != CodeParamInvalid {
			t.Errorf("%s: got %v, want %s", name, err, CodeParamInvalid)
			continue
		}
		if strings.Contains(err.Error(), "Quimby") {
			t.Errorf("%s: error holds content", name)
		}
	}
	if _, err := o.HandleOperation(context.Background(), opParams(t, `{"name":"level","valueCode":"china"}`)); err == nil {
		t.Error("no target accepted")
	}
}

func TestNarrativeRedactsTextNodesOnly(t *testing.T) {
	o := newOp(t)
	out, err := o.HandleOperation(context.Background(), opParams(t, `{"name":"level","valueCode":"limited-data-set"}`), mustParse(t, opPatient))
	if err != nil {
		t.Fatal(err)
	}
	div := out.Object["text"].(map[string]any)["div"].(string)
	wellFormed(t, div)
	if !strings.Contains(div, `<p class="n">`) || !strings.Contains(div, "[NAME]") || strings.Contains(div, "Quimby") {
		t.Errorf("narrative not redacted as expected (%d bytes)", len(div))
	}
}
