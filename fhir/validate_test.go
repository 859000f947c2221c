package fhir

import (
	"strings"
	"testing"
)

func mustParse(t testing.TB, s string) *Resource {
	t.Helper()
	r, err := Parse([]byte(s), ParseOptions{})
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return r
}

func TestValidateNegative(t *testing.T) {
	tests := []struct {
		name, json string
		code, expr string // the one issue expected
	}{
		{"unknown resource type", `{"resourceType":"Patientx"}`, IssueNotSupported, ""},
		{"abstract resource type", `{"resourceType":"DomainResource"}`, IssueNotSupported, ""},
		{"unknown element", `{"resourceType":"Patient","foo":1}`, IssueStructure, "Patient.?"},
		{"unknown nested element", `{"resourceType":"Patient","name":[{"famly":"X"}]}`, IssueStructure, "Patient.name[0].?"},
		{"key not echoed", `{"resourceType":"Patient","John Smith":1}`, IssueStructure, "Patient.?"},
		{"misplaced known name echoed", `{"resourceType":"Patient","status":"active"}`, IssueStructure, "Patient.status"},
		{"string for boolean", `{"resourceType":"Patient","active":"true"}`, IssueValue, "Patient.active"},
		{"number for string", `{"resourceType":"Patient","gender":1}`, IssueValue, "Patient.gender"},
		{"object for string", `{"resourceType":"Patient","name":[{"family":{"a":"b"}}]}`, IssueValue, "Patient.name[0].family"},
		{"string for object", `{"resourceType":"Patient","maritalStatus":"M"}`, IssueStructure, "Patient.maritalStatus"},
		{"array for max 1", `{"resourceType":"Patient","gender":["male"]}`, IssueStructure, "Patient.gender"},
		{"single for repeating", `{"resourceType":"Patient","name":{"family":"X"}}`, IssueStructure, "Patient.name"},
		{"too many items", `{"resourceType":"Patient","contact":[{"relationship":[{"text":"x"}],"name":{"family":"a"}}],"link":[{"other":{"reference":"Patient/1"},"type":"seealso"}],"communication":[{"language":{"text":"en"}}],"photo":[{"contentType":"image/png"}],"multipleBirthBoolean":true,"deceasedBoolean":false,"birthDate":"2000-01-01","name":[{"given":["A","B"]}],"identifier":[{"value":"1"}],"address":[{"city":"x"}],"telecom":[{"value":"1"}],"maritalStatus":{"text":"x"},"managingOrganization":{"reference":"Organization/1"},"generalPractitioner":[{"reference":"Practitioner/1"}]}`, "", ""},
		{"two choice types", `{"resourceType":"Patient","deceasedBoolean":true,"deceasedDateTime":"2020-01-01"}`, IssueStructure, "Patient.deceased"},
		{"bad choice suffix", `{"resourceType":"Patient","deceasedString":"yes"}`, IssueStructure, "Patient.deceasedString"},
		{"missing required", `{"resourceType":"Observation","code":{"text":"x"}}`, IssueRequired, "Observation.status"},
		{"missing required in backbone", `{"resourceType":"Patient","link":[{"type":"seealso"}]}`, IssueRequired, "Patient.link[0].other"},
		{"missing required in datatype", `{"resourceType":"Patient","extension":[{"valueString":"x"}]}`, IssueRequired, "Patient.extension[0].url"},
		{"empty object", `{"resourceType":"Patient","maritalStatus":{}}`, IssueStructure, "Patient.maritalStatus"},
		{"empty array", `{"resourceType":"Patient","name":[]}`, IssueStructure, "Patient.name"},
		{"empty string", `{"resourceType":"Patient","name":[{"family":""}]}`, IssueValue, "Patient.name[0].family"},
		{"null single", `{"resourceType":"Patient","active":null}`, IssueStructure, "Patient.active"},
		{"null in array without _", `{"resourceType":"Patient","name":[{"given":["a",null]}]}`, IssueStructure, "Patient.name[0].given[1]"},
		{"null in object array", `{"resourceType":"Patient","name":[null]}`, IssueStructure, "Patient.name[0]"},
		{"bad id", `{"resourceType":"Patient","id":"a b"}`, IssueValue, "Patient.id"},
		{"long id", `{"resourceType":"Patient","id":"` + strings.Repeat("a", 65) + `"}`, IssueValue, "Patient.id"},
		{"bad code whitespace", `{"resourceType":"Observation","status":"final ","code":{"text":"x"}}`, IssueValue, "Observation.status"},
		{"code not in value set", `{"resourceType":"Patient","gender":"mal"}`, IssueCodeInvalid, "Patient.gender"},
		{"code binding in datatype", `{"resourceType":"Patient","name":[{"use":"nickname2"}]}`, IssueCodeInvalid, "Patient.name[0].use"},
		{"bad uri", `{"resourceType":"Patient","implicitRules":"a b"}`, IssueValue, "Patient.implicitRules"},
		{"bad oid", `{"resourceType":"Patient","identifier":[{"system":"urn:oid:3.1"}]}`, "", ""},
		{"bad date", `{"resourceType":"Patient","birthDate":"2001-02-29"}`, IssueValue, "Patient.birthDate"},
		{"bad date format", `{"resourceType":"Patient","birthDate":"01/02/2001"}`, IssueValue, "Patient.birthDate"},
		{"dateTime without zone", `{"resourceType":"Patient","deceasedDateTime":"2001-02-03T04:05:06"}`, IssueValue, "Patient.deceasedDateTime"},
		{"dateTime zone out of range", `{"resourceType":"Patient","deceasedDateTime":"2001-02-03T04:05:06+15:00"}`, IssueValue, "Patient.deceasedDateTime"},
		{"instant partial", `{"resourceType":"Patient","meta":{"lastUpdated":"2001-02-03"}}`, IssueValue, "Patient.meta.lastUpdated"},
		{"bad time", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueTime":"25:00:00"}`, IssueValue, "Observation.valueTime"},
		{"decimal as string", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"1.5"}}`, IssueValue, "Observation.valueQuantity.value"},
		{"integer with fraction", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueInteger":1.5}`, IssueValue, "Observation.valueInteger"},
		{"integer out of range", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueInteger":2147483648}`, IssueValue, "Observation.valueInteger"},
		{"positiveInt zero", `{"resourceType":"Patient","multipleBirthInteger":0}`, "", ""},
		{"positiveInt zero real", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueSampledData":{"origin":{"value":1},"period":1,"dimensions":0}}`, IssueValue, "Observation.valueSampledData.dimensions"},
		{"unsignedInt negative", `{"resourceType":"Patient","photo":[{"size":-1}]}`, IssueValue, "Patient.photo[0].size"},
		{"bad base64", `{"resourceType":"Patient","photo":[{"data":"abc"}]}`, IssueValue, "Patient.photo[0].data"},
		{"bad uuid", `{"resourceType":"Patient","identifier":[{"system":"urn:ietf:rfc:3986","value":"x","assigner":{"reference":"urn:uuid:ABC"}}]}`, "", ""},
		{"control char in string", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"a\\u0001b\"}]}", IssueValue, "Patient.name[0].family"},
		{"bad boolean", `{"resourceType":"Patient","active":1}`, IssueValue, "Patient.active"},
		{"bad xhtml", `{"resourceType":"Patient","text":{"status":"generated","div":"hello"}}`, IssueValue, "Patient.text.div"},
		{"max 0 in SimpleQuantity", `{"resourceType":"MedicationRequest","status":"active","intent":"order","medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/1"},"dispenseRequest":{"quantity":{"value":1,"comparator":"<"}}}`, IssueStructure, "MedicationRequest.dispenseRequest.quantity.comparator"},
		{"primitive ext on complex", `{"resourceType":"Patient","_maritalStatus":{"id":"a"}}`, IssueStructure, "Patient._maritalStatus"},
		{"primitive ext not object", `{"resourceType":"Patient","_birthDate":"x"}`, IssueStructure, "Patient._birthDate"},
		{"primitive ext unknown child", `{"resourceType":"Patient","_birthDate":{"foo":1}}`, IssueStructure, "Patient._birthDate.?"},
		{"primitive ext misaligned", `{"resourceType":"Patient","name":[{"given":["a","b"],"_given":[null]}]}`, IssueStructure, "Patient.name[0]._given"},
		{"primitive ext both null", `{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,null]}]}`, IssueStructure, "Patient.name[0].given[1]"},
		{"contained bad", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","status":"x"}]}`, IssueStructure, "Patient.contained[0].status"},
		{"contained unknown type", `{"resourceType":"Patient","contained":[{"resourceType":"Nope"}]}`, IssueNotSupported, "Patient.contained[0]"},
		{"bundle entry", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":"x"}}]}`, IssueCodeInvalid, "Bundle.entry[0].resource.gender"},
		{"parameters resource", `{"resourceType":"Parameters","parameter":[{"name":"p","resource":{"resourceType":"Patient","active":"yes"}}]}`, IssueValue, "Parameters.parameter[0].resource.active"},
		{"wrong resource type for element", `{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"200","outcome":{"resourceType":"Patient"}}}]}`, IssueStructure, "Bundle.entry[0].response.outcome"},
		{"string too long", `{"resourceType":"Patient","name":[{"text":"` + strings.Repeat("x", MaxStringBytes+1) + `"}]}`, IssueTooLong, "Patient.name[0].text"},
		{"content reference", `{"resourceType":"Questionnaire","status":"active","item":[{"linkId":"1","type":"group","item":[{"linkId":"2","type":"bogus"}]}]}`, IssueCodeInvalid, "Questionnaire.item[0].item[0].type"},
		{"content reference unknown", `{"resourceType":"Questionnaire","status":"active","item":[{"linkId":"1","type":"group","item":[{"linkId":"2","type":"group","zz":1}]}]}`, IssueStructure, "Questionnaire.item[0].item[0].?"},
		{"nested extension", `{"resourceType":"Patient","extension":[{"url":"http://x","extension":[{"valueString":"a"}]}]}`, IssueRequired, "Patient.extension[0].extension[0].url"},
		{"extension value type", `{"resourceType":"Patient","extension":[{"url":"http://x","valueFoo":"a"}]}`, IssueStructure, "Patient.extension[0].?"},
		{"resourceType in datatype", `{"resourceType":"Patient","name":[{"resourceType":"HumanName"}]}`, IssueStructure, "Patient.name[0].resourceType"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := Validate(mustParse(t, tc.json))
			if tc.code == "" {
				if len(is) > 0 {
					t.Fatalf("want valid, got%s", issuesText(is))
				}
				return
			}
			if len(is) != 1 || is[0].Code != tc.code || strings.Join(is[0].Expression, ",") != tc.expr || is[0].Severity != SeverityError {
				t.Fatalf("want one %s at %q, got%s", tc.code, tc.expr, issuesText(is))
			}
		})
	}
}

// TestValidateNoValueEcho checks that diagnostics never carry the value.
func TestValidateNoValueEcho(t *testing.T) {
	const secret = "Zhang-San-13800138000"
	docs := []string{
		`{"resourceType":"Patient","gender":"` + secret + `"}`,
		`{"resourceType":"Patient","birthDate":"` + secret + `"}`,
		`{"resourceType":"Patient","id":"` + secret + `!"}`,
		`{"resourceType":"Patient","active":"` + secret + `"}`,
		`{"resourceType":"Patient","` + secret + `":1}`,
		`{"resourceType":"` + secret + `"}`,
	}
	for _, d := range docs {
		is := Validate(mustParse(t, d))
		if len(is) == 0 {
			t.Fatalf("no issue for %s", d)
		}
		for _, i := range is {
			if strings.Contains(i.Diagnostics+strings.Join(i.Expression, ""), "Zhang") {
				t.Errorf("issue echoes the value: %+v", i)
			}
		}
	}
}

func TestValidateValid(t *testing.T) {
	docs := []string{
		`{"resourceType":"Patient"}`,
		`{"resourceType":"Patient","id":"p-1.2","birthDate":"1970","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-03-30T12:00:00+08:00"}]}}`,
		`{"resourceType":"Patient","_birthDate":{"id":"b"}}`,
		`{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"id":"x"}]}]}`,
		`{"resourceType":"Patient","name":[{"_given":[{"id":"x"}]}]}`,
		`{"resourceType":"Patient","deceasedDateTime":"2024-02-29T23:59:60.123Z"}`,
		`{"resourceType":"Patient","photo":[{"data":"aGVs bG8=","size":0}]}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e3,"comparator":"<"},"_status":{"id":"s"}}`,
		`{"resourceType":"Basic","code":{"text":"x"},"extension":[{"url":"http://x","valueUuid":"urn:uuid:0f2a3c4e-1b2d-4c5e-8f9a-0b1c2d3e4f5a"},{"url":"http://y","valueOid":"urn:oid:2.16.840.1"}]}`,
	}
	for _, d := range docs {
		if is := Validate(mustParse(t, d)); len(is) > 0 {
			t.Errorf("%s:%s", d, issuesText(is))
		}
	}
}

func TestValidateNil(t *testing.T) {
	if is := Validate(nil); len(is) != 1 || is[0].Severity != SeverityFatal {
		t.Fatalf("nil resource: %v", is)
	}
	if is := Validate(&Resource{Object: map[string]any{"resourceType": "Patient", "active": 1.5}}); len(is) != 1 {
		t.Fatalf("float64 boolean: %v", is)
	}
}
