package fhir

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70)
	tests := []struct {
		name, in string
		code     string
		offset   int64
	}{
		{"empty", ``, ParseCodeSyntax, 0},
		{"array top", `[1]`, ParseCodeNotObject, 0},
		{"string top", ` "x"`, ParseCodeNotObject, 1},
		{"trailing", `{"resourceType":"Patient"} x`, ParseCodeTrailing, 27},
		{"two objects", `{"resourceType":"Patient"}{}`, ParseCodeTrailing, 26},
		{"duplicate", `{"resourceType":"Patient","id":"a","id":"b"}`, ParseCodeDuplicateKey, 35},
		{"nested duplicate", `{"resourceType":"Patient","name":[{"family":"a","family":"b"}]}`, ParseCodeDuplicateKey, 48},
		{"bad utf8", "{\"resourceType\":\"Patient\",\"id\":\"\xff\"}", ParseCodeUTF8, 32},
		{"lone surrogate", `{"resourceType":"Patient","id":"\ud800"}`, ParseCodeUTF8, 32},
		{"reversed surrogates", `{"resourceType":"Patient","id":"\udc00\ud800"}`, ParseCodeUTF8, 32},
		{"deep", deep, ParseCodeDepth, 320},
		{"no resourceType", `{"id":"a"}`, ParseCodeResourceType, 0},
		{"numeric resourceType", `{"resourceType":1}`, ParseCodeResourceType, 0},
		{"numeric id", `{"resourceType":"Patient","id":1}`, ParseCodeID, 0},
		{"unterminated", `{"resourceType":"Patient"`, ParseCodeSyntax, 25},
		{"unterminated string", `{"resourceType":"Pat`, ParseCodeSyntax, 20},
		{"bare control", "{\"resourceType\":\"Pa\ntient\"}", ParseCodeSyntax, 19},
		{"bad escape", `{"resourceType":"Pa\xtient"}`, ParseCodeSyntax, 19},
		{"leading zero", `{"resourceType":"Patient","a":01}`, ParseCodeTrailing, 0},
		{"bad number", `{"resourceType":"Patient","a":1.}`, ParseCodeSyntax, 32},
		{"plus number", `{"resourceType":"Patient","a":+1}`, ParseCodeSyntax, 30},
		{"NaN", `{"resourceType":"Patient","a":NaN}`, ParseCodeSyntax, 30},
		{"trailing comma", `{"resourceType":"Patient",}`, ParseCodeSyntax, 26},
		{"single quotes", `{'resourceType':'Patient'}`, ParseCodeSyntax, 1},
		{"bad literal", `{"resourceType":"Patient","a":tru}`, ParseCodeSyntax, 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), ParseOptions{})
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("want *ParseError, got %v", err)
			}
			if pe.Code != tc.code && !(tc.name == "leading zero" && pe.Code == ParseCodeSyntax) {
				t.Fatalf("code %s, want %s (%v)", pe.Code, tc.code, err)
			}
			if tc.offset != 0 && pe.Offset != tc.offset {
				t.Errorf("offset %d, want %d", pe.Offset, tc.offset)
			}
			if strings.Contains(err.Error(), "Patient") {
				t.Errorf("error echoes content: %v", err)
			}
		})
	}
}

func TestParseDepthOption(t *testing.T) {
	in := []byte(`{"resourceType":"Patient","a":{"b":[{"c":1}]}}`) // depth 4
	if _, err := Parse(in, ParseOptions{MaxDepth: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(in, ParseOptions{MaxDepth: 3}); err == nil {
		t.Fatal("depth 4 accepted with MaxDepth 3")
	}
}

func TestParseValues(t *testing.T) {
	in := `{ "resourceType" : "Observation", "id":"o1", "valueQuantity":{"value":1.50e+2},
		"x":[true,false,null,-0,"a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\u4e2d"], "y":{}, "z":[] }`
	r, err := Parse([]byte(in), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != "Observation" || r.ID != "o1" {
		t.Fatalf("type/id %q %q", r.Type, r.ID)
	}
	var want map[string]any
	d := json.NewDecoder(strings.NewReader(in))
	d.UseNumber()
	if err := d.Decode(&want); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(r.Object)
	b, _ := json.Marshal(want)
	if string(a) != string(b) {
		t.Fatalf("got  %s\nwant %s", a, b)
	}
	if n := r.Object["valueQuantity"].(map[string]any)["value"]; n != json.Number("1.50e+2") {
		t.Fatalf("number %v (%T)", n, n)
	}
}
