package kms_test

import (
	"bytes"
	"context"
	"testing"

	"phix/kms"
	"phix/suite"
)

// TestEscrowRoundTrip exports every KEK of a hospital under dual control,
// imports them into a fresh keyring with another master key, and checks
// that keys, derivations and signatures carry over.
func TestEscrowRoundTrip(t *testing.T) {
	for _, sid := range []suite.ID{suite.Intl, suite.GM} {
		t.Run(string(sid), func(t *testing.T) {
			ctx := context.Background()
			a := newEnv(t)
			s, _ := suite.Lookup(sid)
			if _, err := a.m.InitHospital(ctx, "h", string(sid)); err != nil {
				t.Fatal(err)
			}
			alice, bob := enroll(t, a.m, "alice", s), enroll(t, a.m, "bob", s)
			escrow, _ := s.GenerateRecipientKey()
			rid := escrow.Public().KeyID()

			fk := bytes.Repeat([]byte{9}, s.AEADKeySize())
			blob, _ := a.m.WrapKey(ctx, "h", "file-1", fk)
			hk, _ := a.m.DeriveHMACKey(ctx, "h", "p1", "Patient", "p1")
			signer, _, _ := a.m.Signer(ctx, "h", 0)

			var exports []kms.ExportedKEK
			for _, p := range kms.Purposes() {
				id := kms.KEKID("h", p)
				x, err := a.m.ExportKEK(ctx, id, 1, escrow.Public().Bytes(), []kms.Approval{
					alice.approve(t, kms.OpExportKEK, id, 1, rid, a.now), bob.approve(t, kms.OpExportKEK, id, 1, rid, a.now)})
				if err != nil {
					t.Fatal(err)
				}
				exports = append(exports, x)
			}

			b := newEnv(t) // another keyring, another master key
			other, _ := s.GenerateRecipientKey()
			wantCode(t, b.m.ImportKEK(ctx, exports[0], other), kms.CodeUnwrapFailed)
			mixed := exports[2] // hmac
			mixed.Secret = exports[1].Secret
			wantCode(t, b.m.ImportKEK(ctx, mixed, escrow), kms.CodeUnwrapFailed)
			for _, x := range exports {
				if err := b.m.ImportKEK(ctx, x, escrow); err != nil {
					t.Fatalf("import %s: %v", x.KEK, err)
				}
			}
			wantCode(t, b.m.ImportKEK(ctx, exports[0], escrow), kms.CodeExists)

			if got, err := b.m.UnwrapKey(ctx, blob, "file-1"); err != nil || !bytes.Equal(got, fk) {
				t.Fatalf("escrowed data KEK does not unwrap: %v", err)
			}
			if got, err := b.m.DeriveHMACKey(ctx, "h", "p1", "Patient", "p1"); err != nil || !bytes.Equal(got.Key, hk.Key) {
				t.Fatalf("escrowed HMAC KEK derives differently: %v", err)
			}
			if sk, _, err := b.m.Signer(ctx, "h", 0); err != nil || !bytes.Equal(sk.Public().Bytes(), signer.Public().Bytes()) {
				t.Fatalf("escrowed signing key differs: %v", err)
			}
			if pubs, err := b.m.PublicKeys(ctx, "h"); err != nil || len(pubs) != 2 {
				t.Fatalf("public keys after import: %v", err)
			}
			// A backend that cannot take key material in refuses.
			c := newEnv(t)
			m, err := kms.Open(ctx, kms.Config{Store: c.st, Backend: noImport{c.be}})
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, m.ImportKEK(ctx, exports[0], escrow), kms.CodeUnsupported)
		})
	}
}

type noImport struct{ kms.Backend }
