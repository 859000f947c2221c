package consent

import (
	"encoding/base64"
	"testing"

	"phix/fhir"
	"phix/suite"
)

func TestSignatures(t *testing.T) {
	intl, gm, other := testKeys(t)
	base := func() *fhir.Resource { return parse(t, consentJSON("c1", `{"type":"permit"}`)) }
	setField := func(r *fhir.Resource, field, value string) *fhir.Resource {
		out := withoutSignature(r)
		for _, e := range slice(r.Object["extension"]) {
			m := mapOf(e)
			var subs []any
			for _, s := range slice(m["extension"]) {
				sm := mapOf(s)
				if str(sm["url"]) == field {
					if value == "" {
						continue
					}
					sm = map[string]any{"url": field, "valueString": value}
				}
				subs = append(subs, sm)
			}
			out.Object["extension"] = []any{map[string]any{"url": SignatureURL, "extension": subs}}
		}
		return out
	}
	b64 := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name   string
		r      func() *fhir.Resource
		reason string
	}{
		{"intl ML-DSA-87", func() *fhir.Resource { return signed(t, base(), intl) }, ""},
		{"gm SM2", func() *fhir.Resource { return signed(t, base(), gm) }, ""},
		{"key id only", func() *fhir.Resource { return setField(signed(t, base(), intl), "signer-public-key", "") }, ""},
		{"resigned replaces", func() *fhir.Resource { return signed(t, signed(t, base(), gm), intl) }, ""},
		{"missing", base, SigMissing},
		{"tampered", func() *fhir.Resource {
			r := signed(t, base(), intl)
			r.Object["provision"] = map[string]any{"type": "deny"}
			return r
		}, SigInvalid},
		{"untrusted key", func() *fhir.Resource { return signed(t, base(), other) }, SigUntrusted},
		{"embedded key swapped", func() *fhir.Resource {
			return setField(setField(signed(t, base(), other), "key-id", ""), "signer-public-key", b64(other.Public().Bytes()))
		}, SigUntrusted},
		{"key id and key disagree", func() *fhir.Resource {
			return setField(signed(t, base(), intl), "key-id", gm.KeyID())
		}, SigKeyMismatch},
		{"algorithm swapped", func() *fhir.Resource { return setField(signed(t, base(), intl), "algorithm", "SM2") }, SigKeyMismatch},
		{"algorithm unknown", func() *fhir.Resource { return setField(signed(t, base(), intl), "algorithm", "RS256") }, SigAlgorithm},
		{"signature not base64", func() *fhir.Resource { return setField(signed(t, base(), intl), "signature", "%%%") }, SigMalformed},
		{"signature of other consent", func() *fhir.Resource {
			s := signed(t, parse(t, consentJSON("c2", `{"type":"permit"}`)), intl)
			var sig string
			for _, e := range slice(mapOf(slice(s.Object["extension"])[0])["extension"]) {
				if str(mapOf(e)["url"]) == "signature" {
					sig = str(mapOf(e)["valueString"])
				}
			}
			return setField(signed(t, base(), intl), "signature", sig)
		}, SigInvalid},
	}
	keys := trusted(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(tc.r(), keys)
			if err != nil {
				t.Fatal(err)
			}
			if c.SigReason != tc.reason || c.Verified != (tc.reason == "") {
				t.Fatalf("reason %q verified %v, want %q", c.SigReason, c.Verified, tc.reason)
			}
			d := Evaluate([]*Consent{c}, baseReq())
			if tc.reason == "" {
				if d.Effect != Permit {
					t.Fatalf("verified consent did not permit: %+v", d)
				}
				return
			}
			if d.Effect != NotApplicable || d.Code != CodeBadSignature || len(d.Ignored) != 1 || d.SignatureVerified {
				t.Fatalf("bad signature not reported as PHI-6004: %+v", d)
			}
		})
	}
}

func TestBadSignatureNotOnlyBasis(t *testing.T) {
	_, _, other := testKeys(t)
	bad, _ := Compile(signed(t, parse(t, consentJSON("bad", `{"type":"deny"}`)), other), trusted(t))
	good := compileSigned(t, "good", `{"type":"permit"}`)
	d := Evaluate([]*Consent{bad, good}, baseReq())
	if d.Effect != Permit || d.ConsentID != "good" || len(d.Ignored) != 1 || d.Ignored[0].ConsentID != "bad" {
		t.Fatalf("got %+v", d)
	}
}

func TestSignRefuses(t *testing.T) {
	ed, err := suite.GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(parse(t, consentJSON("c", `{"type":"permit"}`)), ed, when); err == nil {
		t.Error("Ed25519 accepted for consents")
	}
	intl, _, _ := testKeys(t)
	if _, err := Sign(parse(t, `{"resourceType":"Patient","id":"p"}`), intl, when); err == nil {
		t.Error("signed a Patient")
	}
}

func TestSignKeepsOtherExtensions(t *testing.T) {
	intl, _, _ := testKeys(t)
	r := parse(t, consentJSON("c", `{"type":"permit"}`))
	r.Object["extension"] = []any{map[string]any{"url": "http://example.org/x", "valueString": "y"}}
	s := signed(t, r, intl)
	if n := len(slice(s.Object["extension"])); n != 2 {
		t.Fatalf("%d extensions", n)
	}
	if len(slice(r.Object["extension"])) != 1 {
		t.Fatal("Sign modified its input")
	}
	c, _ := Compile(s, trusted(t))
	if !c.Verified {
		t.Fatal(c.SigReason)
	}
}
