package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"phix/suite"
)

func FuzzParseIdentityBinding(f *testing.F) {
	n := newNetwork(f)
	for _, id := range []suite.ID{suite.Intl, suite.GM} {
		s, _ := suite.Lookup(id)
		sk, _ := s.GenerateSigningKey()
		raw, _, err := n.ca.BindIdentity(context.Background(), Hospital("hospital-a"), sk.Public(), time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"type":"phix-identity-binding","v":1,"payload":"e30=","sig_alg":"Ed25519","sig":"AA=="}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(``))
	ca := n.ca.Certificate()
	f.Fuzz(func(t *testing.T, b []byte) {
		pb, err := ParseIdentityBinding(b)
		if err != nil {
			if Code(err) != CodeBadBinding {
				t.Fatalf("parse error without its code: %v", err)
			}
			return
		}
		if _, err := ParsePrincipal(pb.Binding.Principal); err != nil {
			t.Fatal("parsed binding with a bad principal")
		}
		// Verification must never panic, whatever passed parsing.
		_, _ = VerifyIdentityBinding(b, ca, time.Now())
	})
}

func FuzzParsePin(f *testing.F) {
	for _, s := range []string{"sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "SHA256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "sha256/", "", "sha1/abc", " sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, sum, err := ParsePin(s)
		if err != nil {
			if Code(err) != CodeBadPin {
				t.Fatalf("error without its code: %v", err)
			}
			return
		}
		// The canonical form is stable and re-parses to the same digest.
		c2, sum2, err := ParsePin(c)
		if err != nil || c2 != c || sum2 != sum || !strings.HasPrefix(c, pinPrefix) {
			t.Fatalf("canonical form %q does not round-trip", c)
		}
	})
}

func FuzzParsePrincipal(f *testing.F) {
	for _, s := range []string{"urn:phix:hospital:hospital-a", "urn:phix:coordinator:region-1", "urn:phix:hospital:", "urn:phix:x:y", "urn:phix:hospital:a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrincipal(s)
		if err != nil {
			return
		}
		if p.URI() != s {
			t.Fatalf("%q parsed to %q", s, p.URI())
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	plain, _ := MarshalPrivateKey(key, nil)
	sealed, _ := MarshalPrivateKey(key, []byte("pw"))
	f.Add(plain)
	f.Add(sealed)
	f.Add([]byte("-----BEGIN PHIX ENCRYPTED PRIVATE KEY-----\nKDF: argon2id,t=99,m=1,p=1\n\nAAAA\n-----END PHIX ENCRYPTED PRIVATE KEY-----\n"))
	f.Add([]byte("junk"))
	pw := func() ([]byte, error) { return []byte("pw"), nil }
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParsePrivateKey(b, pw)
		if err != nil {
			if Code(err) != CodeKeyFile {
				t.Fatalf("error without its code: %v", err)
			}
			return
		}
		if k.Public() == nil {
			t.Fatal("key without a public half")
		}
	})
}
