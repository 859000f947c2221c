package fhirserver

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"phix/fhir"
)

// FuzzSignatureExtension feeds arbitrary JSON to the signature-extension
// parser and to $verify's loop over a resource's extensions: no panic, a
// parsed extension re-encodes to one that parses to the same values, and
// nothing unsigned ever verifies as valid.
func FuzzSignatureExtension(f *testing.F) {
	_, sg := withSigning(f, "intl")
	r, _ := fhir.Parse([]byte(`{"resourceType":"Basic","id":"b1","code":{"text":"x"}}`), fhir.ParseOptions{})
	si, err := sg.signOne(context.Background(), r, &Principal{Subject: "dr-fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(si.extension())
	f.Add(good)
	for _, s := range []string{
		`{}`, `[]`, `{"url":"` + ExtMLDSASignature + `"}`, `{"url":"` + ExtSM2Signature + `","extension":[]}`,
		`{"url":"` + ExtMLDSASignature + `","extension":[{"url":"algorithm","valueString":"ML-DSA-87"},{"url":"algorithm","valueString":"SM2"}]}`,
		`{"url":"` + ExtMLDSASignature + `","extension":[{"url":"signature","valueBase64Binary":"!!"}]}`,
		`{"url":"` + ExtMLDSASignature + `","extension":[{"url":"timestamp","valueInstant":"2025-13-40T99:00:00Z"}]}`,
		`{"url":"` + ExtMLDSASignature + `","extension":[{"url":"key-id","valueString":"a\nb"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return
		}
		parsed, err := parseSignatureExt(v)
		if err == nil {
			enc, _ := json.Marshal(parsed.extension())
			var back any
			if err := json.Unmarshal(enc, &back); err != nil {
				t.Fatal(err)
			}
			again, err := parseSignatureExt(back)
			if err != nil || !reflect.DeepEqual(again, parsed) {
				t.Fatalf("round trip differs: %v", err)
			}
		}
		res := &fhir.Resource{Type: "Basic", ID: "b2", Object: map[string]any{
			"resourceType": "Basic", "id": "b2", "code": map[string]any{"text": "y"}, "extension": []any{v},
		}}
		results, err := sg.verifyAll(context.Background(), res)
		if err != nil {
			t.Fatal(err)
		}
		for _, sr := range results {
			// b2's content was never signed: only a forgery could verify.
			if sr.Status == sigValid {
				t.Fatal("an unsigned resource verified")
			}
		}
	})
}
