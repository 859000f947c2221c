package pki

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"phix/suite"
)

func TestIdentityBinding(t *testing.T) {
	n := newNetwork(t)
	ctx := context.Background()
	for _, id := range []suite.ID{suite.Intl, suite.GM} {
		t.Run(string(id), func(t *testing.T) {
			s, _ := suite.Lookup(id)
			sk, err := s.GenerateSigningKey()
			if err != nil {
				t.Fatal(err)
			}
			raw, b, err := n.ca.BindIdentity(ctx, Hospital("hospital-a"), sk.Public(), 90*24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			v, err := VerifyIdentityBinding(raw, n.ca.Certificate(), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if v.Subject != Hospital("hospital-a") || v.Suite != id || v.KeyID != sk.KeyID() || v.Serial != b.Serial {
				t.Fatalf("binding %+v", v.IdentityBinding)
			}
			// The bound key verifies the hospital's signatures.
			msg := []byte("manifest")
			sig, _ := sk.Sign(msg)
			if !v.Key.Verify(msg, sig) {
				t.Fatal("bound key does not verify")
			}
			if rec, ok, _ := n.ca.Store().Issued(ctx, b.Serial); !ok || rec.Kind != "identity" || rec.KeyID != sk.KeyID() {
				t.Fatal("binding not logged")
			}
			other, _ := newOtherCA(t)
			for _, tc := range []struct {
				name string
				b    []byte
				ca   *CA
				at   time.Time
				code string
			}{
				{"another hospital", swapPayload(t, raw, func(b *IdentityBinding) { b.Principal = "urn:phix:hospital:hospital-b" }), n.ca, time.Now(), CodeBindingSig},
				{"another key", swapPayload(t, raw, func(b *IdentityBinding) { b.PublicKey[3] ^= 1 }), n.ca, time.Now(), CodeBindingSig},
				{"longer validity", swapPayload(t, raw, func(b *IdentityBinding) { b.NotAfter = b.NotAfter.Add(time.Hour) }), n.ca, time.Now(), CodeBindingSig},
				{"signature bit", flipSig(t, raw), n.ca, time.Now(), CodeBindingSig},
				{"other CA", raw, other, time.Now(), CodeBindingSig},
				{"expired", raw, n.ca, time.Now().Add(91 * 24 * time.Hour), CodeBindingTime},
				{"not JSON", []byte("{"), n.ca, time.Now(), CodeBadBinding},
			} {
				if _, err := VerifyIdentityBinding(tc.b, tc.ca.Certificate(), tc.at); Code(err) != tc.code {
					t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
				}
			}
		})
	}
}

// TestBindingKeyChecks: a CA-signed binding whose key id or algorithm does
// not match its key is still refused (defence against a buggy issuer).
func TestBindingKeyChecks(t *testing.T) {
	n := newNetwork(t)
	sk, _ := suite.GenerateEd25519()
	if _, _, err := n.ca.BindIdentity(context.Background(), Hospital("h"), sk.Public(), time.Hour); Code(err) != CodeBadRequest {
		t.Fatalf("Ed25519 is not a suite key: %v", err)
	}
	s, _ := suite.Lookup(suite.GM)
	gk, _ := s.GenerateSigningKey()
	for name, mod := range map[string]func(*IdentityBinding){
		"key id":    func(b *IdentityBinding) { b.KeyID = "00" + b.KeyID[2:] },
		"algorithm": func(b *IdentityBinding) { b.Algorithm = "ML-DSA-87" },
		"suite":     func(b *IdentityBinding) { b.Suite = suite.Intl },
	} {
		b := IdentityBinding{Principal: "urn:phix:hospital:h", Suite: suite.GM, Algorithm: "SM2", KeyID: gk.KeyID(),
			PublicKey: gk.Public().Bytes(), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
			Serial: "1", Issuer: SPKIHash(n.ca.Certificate())}
		mod(&b)
		if _, err := VerifyIdentityBinding(signRaw(t, n, b), n.ca.Certificate(), time.Now()); Code(err) != CodeBadBinding {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func signRaw(t *testing.T, n *network, b IdentityBinding) []byte {
	payload, _ := json.Marshal(b)
	alg, sig, err := signBinding(n.caKey, payload)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(signedBinding{Type: BindingType, Version: 1, Payload: base64.StdEncoding.EncodeToString(payload), Algorithm: alg, Signature: base64.StdEncoding.EncodeToString(sig)})
	return out
}

func swapPayload(t *testing.T, raw []byte, mod func(*IdentityBinding)) []byte {
	var sb signedBinding
	if err := json.Unmarshal(raw, &sb); err != nil {
		t.Fatal(err)
	}
	p, _ := base64.StdEncoding.DecodeString(sb.Payload)
	var b IdentityBinding
	json.Unmarshal(p, &b)
	mod(&b)
	p, _ = json.Marshal(b)
	sb.Payload = base64.StdEncoding.EncodeToString(p)
	out, _ := json.Marshal(sb)
	return out
}

func flipSig(t *testing.T, raw []byte) []byte {
	var sb signedBinding
	json.Unmarshal(raw, &sb)
	s, _ := base64.StdEncoding.DecodeString(sb.Signature)
	s[len(s)/2] ^= 1
	sb.Signature = base64.StdEncoding.EncodeToString(s)
	out, _ := json.Marshal(sb)
	return bytes.TrimSpace(out)
}
