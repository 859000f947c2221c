package invariant

import (
	"context"
	"strings"
	"testing"

	"phix/fhir"
	"phix/fhir/fhirpath"
)

// FuzzCheck: random JSON resources never panic, and every issue is an
// invariant issue (or the timeout) with a location and no input text beyond
// element names.
func FuzzCheck(f *testing.F) {
	seeds := []string{
		`{"resourceType":"Patient","name":[{"id":"n1"}]}`,
		`{"resourceType":"Patient","contained":[{"resourceType":"Patient","contained":[{"resourceType":"Basic"}]}]}`,
		`{"resourceType":"Patient","_birthDate":{"id":"b","extension":[{"url":"u"}]}}`,
		`{"resourceType":"Patient","name":[{"given":[null,"a"],"_given":[{"id":"x"},null]}]}`,
		`{"resourceType":"Bundle","type":"searchset","total":1,"entry":[{"fullUrl":"a","resource":{"resourceType":"Patient","contact":[{}]}},{"fullUrl":"a"}]}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1,"code":"mg"},"component":[{"code":{"text":"x"}}]}`,
		`{"resourceType":"Questionnaire","item":[{"linkId":"1","type":"group","item":[{"type":7}]}]}`,
		`{"resourceType":"Patient","extension":[{"url":"u","valueString":"a","extension":[{"url":"b"}]}],"managingOrganization":{"reference":"#x"}}`,
		`{"resourceType":"Parameters","parameter":[{"name":"a","resource":{"resourceType":"Patient","id":"p"}}]}`,
		`{"resourceType":"Patient","name":"notarray","contact":7,"_gender":[1,2]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := fhir.Parse(data, fhir.ParseOptions{})
		if err != nil {
			return
		}
		is := Check(context.Background(), r, Options{Limits: fhirpath.Limits{MaxSteps: 100_000}})
		for _, i := range is {
			if i.Code != IssueInvariant && i.Code != "timeout" {
				t.Fatalf("issue code %q", i.Code)
			}
			if len(i.Expression) != 1 || !strings.HasPrefix(i.Expression[0], r.Type) {
				t.Fatalf("location %v", i.Expression)
			}
		}
	})
}
