package fhir

import (
	"errors"
	"os"
	"reflect"
	"testing"
)

// checkMembers compares ParseMembers with Parse on one input: whatever
// Parse accepts, ParseMembers accepts with the same kept members; what
// ParseMembers accepts, Parse accepts unless a skipped member held a
// duplicate key (not checked there).
func checkMembers(t *testing.T, data []byte, keep func(string) bool) {
	t.Helper()
	full, ferr := Parse(data, ParseOptions{MaxDepth: 32})
	part, perr := ParseMembers(data, keep, ParseOptions{MaxDepth: 32})
	if perr != nil {
		var pe *ParseError
		if !errors.As(perr, &pe) {
			t.Fatalf("error of type %T", perr)
		}
		if ferr == nil {
			t.Fatalf("ParseMembers refused what Parse accepts: %v", perr)
		}
		return
	}
	if ferr != nil {
		var pe *ParseError
		if !errors.As(ferr, &pe) || pe.Code != ParseCodeDuplicateKey {
			t.Fatalf("ParseMembers accepted what Parse refuses (%v)", ferr)
		}
		return
	}
	want := map[string]any{}
	for k, v := range full.Object {
		if k == "resourceType" || k == "id" || keep(k) {
			want[k] = v
		}
	}
	if part.Type != full.Type || part.ID != full.ID || !reflect.DeepEqual(part.Object, want) {
		t.Fatalf("members differ:\n got %v\nwant %v", part.Object, want)
	}
}

func keepMeta(k string) bool { return k == "meta" || k == "subject" || k == "contained" }

func TestParseMembers(t *testing.T) {
	for _, s := range []string{
		`{"resourceType":"Observation","id":"o","meta":{"security":[{"code":"R"}]},"text":{"div":"<div>\u00e9\"</div>"},"subject":{"reference":"Patient/1"},"valueQuantity":{"value":-1.5e3}}`,
		`{"resourceType":"Observation","x":[1,[2,{"a":null}],true,false,"s\\n"],"meta":{}}`,
		`{"resourceType":"Observation","x":{"a":1,"a":2}}`, // duplicate in a skipped member: accepted
		`{"resourceType":"Observation","meta":{"a":1,"a":2}}`,
		`{"resourceType":"Observation","x":[1,}`, `{"resourceType":"Observation","x":"\x01"}`,
		`{"resourceType":"Observation","x":01}`, `{"resourceType":"Observation","x":tru}`,
		`{"resourceType":"Observation","x":"\q"}`, `{"resourceType":"Observation"} x`, `[1]`, ``,
		`{"resourceType":"Observation","x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
	} {
		checkMembers(t, []byte(s), keepMeta)
	}
	files := exampleFiles(t)
	for i, f := range files {
		if i%4 != 0 {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkMembers(t, b, keepMeta)
	}
	for _, b := range syntheaResources(t) {
		checkMembers(t, b, keepMeta)
	}
}

// FuzzParseMembers: no input panics ParseMembers, and it agrees with Parse.
func FuzzParseMembers(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Observation","id":"o","meta":{"security":[{"code":"R"}]},"subject":{"reference":"Patient/1"},"x":[1,{"y":"\u00e9"}]}`,
		`{"resourceType":"Patient","x":{"a":1,"a":2}}`, `{"a":[}`, `{"resourceType":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkMembers(t, data, keepMeta)
	})
}
