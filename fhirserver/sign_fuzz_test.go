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

// FuzzProvenanceSignature feeds arbitrary signature and target arrays to the
// server-Provenance check ($verify on a Provenance): no panic, and nothing
// the server did not sign verifies.
func FuzzProvenanceSignature(f *testing.F) {
	e, _, sg := signEnv(f, "intl")
	id := e.do("POST", "/Patient", patient("Fuzz", "Fi")).want(f, 201).str("id")
	p := provenanceFor(f, e, "Patient/"+id)[0]
	sig, _ := json.Marshal(p["signature"])
	tgt, _ := json.Marshal(p["target"])
	f.Add(sig, tgt)
	f.Add([]byte(`[{"who":{"identifier":{"system":"`+SystemSigningKey+`","value":"x"}},"when":"2025","data":"AA=="}]`), []byte(`[{"reference":"Patient/x/_history/1"}]`))
	f.Add([]byte(`[{"who":{"identifier":{"system":"`+SystemSigningKey+`"}}},{"who":{"identifier":{"system":"`+SystemSigningKey+`"}}}]`), []byte(`[]`))
	f.Add([]byte(`[1,"a",null]`), []byte(`[{"reference":"a/b/_history/zz"},{"reference":"Patient/../_history/1"}]`))
	srv, err := New(Config{Store: e.store, Auth: mustTokens(f), Signing: sg})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sigJSON, targetJSON []byte) {
		var sigs, targets any
		if json.Unmarshal(sigJSON, &sigs) != nil || json.Unmarshal(targetJSON, &targets) != nil {
			return
		}
		prov := &fhir.Resource{Type: "Provenance", ID: "fz", Object: map[string]any{
			"resourceType": "Provenance", "id": "fz", "recorded": "2025-01-01T00:00:00Z",
			"signature": sigs, "target": targets,
		}}
		pv, err := srv.verifyProvenance(context.Background(), prov)
		if err != nil {
			t.Fatal(err)
		}
		if pv != nil && pv.status == sigValid {
			t.Fatal("a Provenance the server never signed verified")
		}
	})
}

func mustTokens(t testing.TB) Authenticator {
	tok, _ := NewToken()
	a, err := NewStaticTokens(tok)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
