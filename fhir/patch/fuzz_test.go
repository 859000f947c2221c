package patch

import (
	"strings"
	"testing"
)

// FuzzJSONPatch: parsing and applying any document never panics, errors
// are *Error, and the input resource is never modified.
func FuzzJSONPatch(f *testing.F) {
	for _, s := range []string{
		`[{"op":"replace","path":"/name/0/family","value":"Li"}]`,
		`[{"op":"add","path":"/identifier/-","value":{"value":"C3"}},{"op":"test","path":"/identifier/2/value","value":"C3"}]`,
		`[{"op":"move","from":"/name/0/given/0","path":"/name/0/given/-"},{"op":"copy","from":"/id","path":"/a~1b~0"}]`,
		`[{"op":"remove","path":"/contact/0/name"},{"op":"test","path":"","value":{}}]`,
		`[{"op":"replace","path":"","value":{"resourceType":"Patient","id":"p1"}}]`,
		`[]`, `{}`, `[1]`, `[{"op":"add","path":"/x/01","value":1e999}]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		in := obj(t, testPatient)
		before := canon(t, in)
		p, err := ParseJSONPatch([]byte(doc))
		if err == nil {
			_, err = p.ApplyTo(in)
		}
		if err != nil {
			if _, ok := AsError(err); !ok {
				t.Fatalf("error %v is not *Error", err)
			}
		}
		if canon(t, in) != before {
			t.Fatal("the input was modified")
		}
	})
}

// FuzzFHIRPathPatch: the same for FHIRPath Patch Parameters; an error
// never echoes the resource's content.
func FuzzFHIRPathPatch(f *testing.F) {
	for _, s := range []string{
		params(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.name[0].given[1]"},{"name":"value","valueString":"Ming"}`),
		params(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"contact"},{"name":"value","part":[{"name":"gender","valueCode":"female"}]}`),
		params(`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.identifier"},{"name":"index","valueInteger":1},{"name":"value","valueIdentifier":{"value":"Z"}}`),
		params(`{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.name.given"},{"name":"source","valueInteger":1},{"name":"destination","valueInteger":0}`),
		params(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"descendants().where($this is string)"}`),
		params(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.multipleBirth"},{"name":"value","valueBoolean":true}`),
		`{"resourceType":"Parameters"}`, `{}`, `[]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		in := obj(t, testPatient)
		before := canon(t, in)
		p, err := ParseFHIRPathPatchJSON([]byte(doc))
		var out map[string]any
		if err == nil {
			out, err = p.ApplyTo(in)
		}
		if err == nil {
			if msg := shapeProblem(out, true); msg != "" {
				t.Fatalf("patched resource is not FHIR JSON shaped: %s: %s", msg, canon(t, out))
			}
		}
		if err != nil {
			if _, ok := AsError(err); !ok {
				t.Fatalf("error %v is not *Error", err)
			}
			if strings.Contains(err.Error(), "Zhang") && !strings.Contains(doc, "Zhang") {
				t.Fatalf("error echoes resource content: %v", err)
			}
		}
		if canon(t, in) != before {
			t.Fatal("the input was modified")
		}
	})
}

// shapeProblem checks what FHIR JSON requires and a patch must keep: no
// empty objects or arrays, and a primitive list and its "_x" list of equal
// length.
func shapeProblem(v any, root bool) string {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 && !root {
			return "empty object"
		}
		for k, x := range t {
			if l, ok := x.([]any); ok {
				if len(l) == 0 {
					return "empty array " + k
				}
				if e, ok := t["_"+k].([]any); ok && len(e) != len(l) {
					return "misaligned " + k
				}
			}
			if msg := shapeProblem(x, false); msg != "" {
				return msg
			}
		}
	case []any:
		for _, x := range t {
			if msg := shapeProblem(x, false); msg != "" {
				return msg
			}
		}
	}
	return ""
}
