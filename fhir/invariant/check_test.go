package invariant

import (
	"context"
	"strings"
	"testing"
	"time"

	"phix/fhir"
	"phix/fhir/fhirpath"
)

const narrative = `"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}`

func mustParse(t testing.TB, src string) *fhir.Resource {
	t.Helper()
	r, err := fhir.Parse([]byte(src), fhir.ParseOptions{})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return r
}

// TestCheck runs table-driven cases: each resource is structurally valid
// (fhir.Validate passes) and breaks exactly the invariant named, at the
// location given, or (key "") none.
func TestCheck(t *testing.T) {
	tests := []struct {
		name, src     string
		key, severity string
		loc           string
		also          string // another issue the case cannot avoid: "key@location"
	}{
		{"valid patient", `{"resourceType":"Patient",` + narrative + `,"contained":[{"resourceType":"Organization","id":"o","name":"x"}],"managingOrganization":{"reference":"#o"},"contact":[{"name":{"family":"x"}}]}`, "", "", "", ""},
		{"ele-1 empty complex element", `{"resourceType":"Patient",` + narrative + `,"name":[{"id":"n1"}]}`, "ele-1", "error", "Patient.name[0]", ""},
		{"ele-1 primitive with only an id", `{"resourceType":"Patient",` + narrative + `,"_birthDate":{"id":"b"}}`, "ele-1", "error", "Patient.birthDate", ""},
		{"ele-1 deep in a datatype", `{"resourceType":"Patient",` + narrative + `,"name":[{"family":"x","period":{"id":"p"}}]}`, "ele-1", "error", "Patient.name[0].period", ""},
		{"dom-2 nested contained", `{"resourceType":"Patient",` + narrative + `,"contained":[{"resourceType":"Patient","id":"c","contained":[{"resourceType":"Organization","id":"o","name":"x"}],"managingOrganization":{"reference":"#o"}}],"link":[{"other":{"reference":"#c"},"type":"seealso"}]}`, "dom-2", "error", "Patient",
			// The nested contained Organization is referenced from the
			// contained Patient; ref-1 looks for it among the root's
			// contained resources, where it is not.
			"ref-1@Patient.contained[0].managingOrganization"},
		{"dom-3 contained not referenced", `{"resourceType":"Patient",` + narrative + `,"contained":[{"resourceType":"Organization","id":"o","name":"x"}]}`, "dom-3", "error", "Patient", ""},
		{"dom-4 contained with versionId", `{"resourceType":"Patient",` + narrative + `,"contained":[{"resourceType":"Organization","id":"o","meta":{"versionId":"1"},"name":"x"}],"managingOrganization":{"reference":"#o"}}`, "dom-4", "error", "Patient", ""},
		{"dom-5 contained with security label", `{"resourceType":"Patient",` + narrative + `,"contained":[{"resourceType":"Organization","id":"o","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},"name":"x"}],"managingOrganization":{"reference":"#o"}}`, "dom-5", "error", "Patient", ""},
		{"dom-6 no narrative", `{"resourceType":"Patient","active":true}`, "dom-6", "warning", "Patient", ""},
		{"pat-1 contact without details", `{"resourceType":"Patient",` + narrative + `,"contact":[{"gender":"male"}]}`, "pat-1", "error", "Patient.contact[0]", ""},
		{"per-1 start after end", `{"resourceType":"Patient",` + narrative + `,"name":[{"family":"x","period":{"start":"2020-01-02","end":"2020-01-01"}}]}`, "per-1", "error", "Patient.name[0].period", ""},
		{"obs-6 value and dataAbsentReason", `{"resourceType":"Observation",` + narrative + `,"status":"final","code":{"text":"x"},"valueString":"x","dataAbsentReason":{"text":"y"}}`, "obs-6", "error", "Observation", ""},
		{"obs-7 component code repeats the code with a value", `{"resourceType":"Observation",` + narrative + `,"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"1-8"}]},"valueString":"x","component":[{"code":{"coding":[{"system":"http://loinc.org","code":"1-8"}]},"valueString":"y"}]}`, "obs-7", "error", "Observation", ""},
		{"qty-3 code without system", `{"resourceType":"Observation",` + narrative + `,"status":"final","code":{"text":"x"},"valueQuantity":{"value":1,"code":"mg"}}`, "qty-3", "error", "Observation.valueQuantity", ""},
		{"ref-1 local reference to nothing", `{"resourceType":"Patient",` + narrative + `,"managingOrganization":{"reference":"#nope"}}`, "ref-1", "error", "Patient.managingOrganization", ""},
		{"ext-1 value and extensions", `{"resourceType":"Patient",` + narrative + `,"extension":[{"url":"http://x","valueString":"a","extension":[{"url":"b","valueBoolean":true}]}]}`, "ext-1", "error", "Patient.extension[0]", ""},
		{"ext-1 neither", `{"resourceType":"Patient",` + narrative + `,"extension":[{"url":"http://x"}]}`, "ext-1", "error", "Patient.extension[0]", ""},
		{"ext-1 in a primitive's extension", `{"resourceType":"Patient",` + narrative + `,"birthDate":"2000","_birthDate":{"extension":[{"url":"http://x"}]}}`, "ext-1", "error", "Patient.birthDate.extension[0]", ""},
		{"bdl-1 total outside search", `{"resourceType":"Bundle","type":"collection","total":1}`, "bdl-1", "error", "Bundle", ""},
		{"bdl-2 entry.search outside search", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:0f2a3c4e-1b2d-4c5e-8f9a-0b1c2d3e4f5a","resource":{"resourceType":"Basic",` + narrative + `,"code":{"text":"x"}},"search":{"mode":"match"}}]}`, "bdl-2", "error", "Bundle", ""},
		{"bdl-7 duplicate fullUrl", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:0f2a3c4e-1b2d-4c5e-8f9a-0b1c2d3e4f5a","resource":{"resourceType":"Basic",` + narrative + `,"code":{"text":"x"}}},{"fullUrl":"urn:uuid:0f2a3c4e-1b2d-4c5e-8f9a-0b1c2d3e4f5a","resource":{"resourceType":"Basic",` + narrative + `,"code":{"text":"y"}}}]}`, "bdl-7", "error", "Bundle", ""},
		{"invariant inside a bundled resource", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:0f2a3c4e-1b2d-4c5e-8f9a-0b1c2d3e4f5a","resource":{"resourceType":"Patient",` + narrative + `,"contact":[{"gender":"male"}]}}]}`, "pat-1", "error", "Bundle.entry[0].resource.contact[0]", ""},
		{"invariant inside a contained resource", `{"resourceType":"Patient",` + narrative + `,"contained":[{"resourceType":"Patient","id":"c","contact":[{"gender":"male"}]}],"link":[{"other":{"reference":"#c"},"type":"seealso"}]}`, "pat-1", "error", "Patient.contained[0].contact[0]", ""},
		{"ref-1 in a contained resource finds its container's contained", `{"resourceType":"Patient",` + narrative + `,"contained":[{"resourceType":"Organization","id":"o","name":"x"},{"resourceType":"Patient","id":"c","managingOrganization":{"reference":"#o"}}],"link":[{"other":{"reference":"#c"},"type":"seealso"}]}`, "", "", "", ""},
		{"que-1 in a nested item (contentReference)", `{"resourceType":"Questionnaire",` + narrative + `,"status":"draft","item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"group"}]}]}`, "que-1", "error", "Questionnaire.item[0].item[0]", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.src)
			if is := fhir.Validate(r); len(is) > 0 {
				t.Fatalf("not structurally valid:%s", issuesText(is))
			}
			is := Check(context.Background(), r, Options{})
			if tc.key == "" {
				if len(is) > 0 {
					t.Fatalf("issues:%s", issuesText(is))
				}
				return
			}
			if tc.also != "" {
				var rest []fhir.Issue
				for _, i := range is {
					if i.Key+"@"+i.Expression[0] != tc.also {
						rest = append(rest, i)
					}
				}
				if len(rest) != len(is)-1 {
					t.Fatalf("want %s, got%s", tc.also, issuesText(is))
				}
				is = rest
			}
			if len(is) != 1 {
				t.Fatalf("want one %s issue, got%s", tc.key, issuesText(is))
			}
			i := is[0]
			if i.Key != tc.key || i.Severity != tc.severity || i.Code != IssueInvariant || len(i.Expression) != 1 || i.Expression[0] != tc.loc {
				t.Errorf("got %+v", i)
			}
			if !strings.HasPrefix(i.Diagnostics, tc.key+": ") || len(i.Diagnostics) < len(tc.key)+10 {
				t.Errorf("diagnostics %q", i.Diagnostics)
			}
			_, hasErr := Validate(context.Background(), r, Options{})
			if hasErr != (tc.severity == fhir.SeverityError) {
				t.Errorf("Validate hasErrors = %v", hasErr)
			}
		})
	}
}

// TestNoPHIInIssues: issue texts come from the specification, never from
// the instance.
func TestNoPHIInIssues(t *testing.T) {
	secret := "Zhang-Wei-SECRET-4711"
	src := `{"resourceType":"Patient","name":[{"id":"` + "n1" + `"}],"contact":[{"gender":"male"}],"managingOrganization":{"reference":"#` + secret + `"},"extension":[{"url":"` + secret + `"}]}`
	is := Check(context.Background(), mustParse(t, src), Options{})
	if len(is) < 4 {
		t.Fatalf("issues:%s", issuesText(is))
	}
	for _, i := range is {
		if strings.Contains(i.Diagnostics+strings.Join(i.Expression, ""), secret) {
			t.Errorf("value leaked: %+v", i)
		}
	}
}

func TestSkipWarnings(t *testing.T) {
	r := mustParse(t, `{"resourceType":"Patient","active":true}`)
	if is := Check(context.Background(), r, Options{SkipWarnings: true}); len(is) != 0 {
		t.Errorf("issues:%s", issuesText(is))
	}
}

func TestNotEvaluatedIsAWarningOnce(t *testing.T) {
	// A step budget too small for ref-1: the engine stops on both
	// references, the constraint is reported once as not evaluated, never
	// as an error.
	src := `{"resourceType":"Patient",` + narrative + `,"contained":[{"resourceType":"Organization","id":"o","name":"x"},{"resourceType":"Organization","id":"p","name":"y"}],"managingOrganization":{"reference":"#o"},"generalPractitioner":[{"reference":"#p"}]}`
	r := mustParse(t, src)
	is := Check(context.Background(), r, Options{Limits: limitsSteps(20)})
	if len(is) == 0 {
		t.Fatal("no issues")
	}
	seen := map[string]int{}
	for _, i := range is {
		if i.Severity != fhir.SeverityWarning || !strings.Contains(i.Diagnostics, DiagNotEvaluated) || i.Key == "" {
			t.Errorf("unexpected %+v", i)
		}
		seen[i.Key]++
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s reported %d times", k, n)
		}
	}
	if seen["ref-1"] != 1 {
		t.Errorf("ref-1 not reported: %v", seen)
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	var entries []string
	for i := 0; i < 600; i++ {
		entries = append(entries, `{"resource":{"resourceType":"Basic","code":{"text":"x"}}}`)
	}
	r := mustParse(t, `{"resourceType":"Bundle","type":"collection","entry":[`+strings.Join(entries, ",")+`]}`)
	is := Check(ctx, r, Options{})
	last := is[len(is)-1]
	found := false
	for _, i := range is {
		if i.Code == "timeout" && i.Severity == fhir.SeverityError {
			found = true
		}
	}
	if !found {
		t.Errorf("no timeout issue; last %+v", last)
	}
}

func TestNilResource(t *testing.T) {
	if is := Check(context.Background(), nil, Options{}); len(is) != 1 || is[0].Severity != fhir.SeverityFatal {
		t.Errorf("%+v", is)
	}
	// Unknown types are fhir.Validate's business.
	if is := Check(context.Background(), &fhir.Resource{Object: map[string]any{"resourceType": "Nope"}}, Options{}); len(is) != 0 {
		t.Errorf("%+v", is)
	}
}

func TestRewritesApply(t *testing.T) {
	for _, rw := range rewrites {
		found := false
		for _, c := range fhir.Constraints() {
			if c.Key == rw.key && strings.Contains(c.Expression, rw.old) {
				found = true
			}
		}
		if !found {
			t.Errorf("rewrite %s %q matches no constraint", rw.key, rw.old)
		}
	}
}

func limitsSteps(n int) (l fhirpath.Limits) {
	l.MaxSteps = n
	return l
}

// TestAllCompile: every R4 constraint compiles, and the count of those
// evaluated natively is what docs/invariants.md says.
func TestAllCompile(t *testing.T) {
	ix := theIndex()
	if len(ix.rules) != len(fhir.Constraints()) || len(ix.rules) < 240 {
		t.Fatalf("%d rules", len(ix.rules))
	}
	native := map[string]int{}
	for _, r := range ix.rules {
		if r.err != nil {
			t.Errorf("%s does not compile: %v", r.c.Key, r.err)
		}
		if r.native != nil || r.dom3 {
			native[r.c.Key]++
		}
	}
	if native["ele-1"] != 2 || native["ext-1"] != 2 || native["dom-3"] != 2 || len(native) != 3 {
		t.Errorf("native rules %v", native)
	}
}
