package kms_test

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"fmt"
	"testing"

	"phix/kms"
	"phix/suite"
)

func TestHierarchy(t *testing.T) {
	for _, sid := range []suite.ID{suite.Intl, suite.GM} {
		t.Run(string(sid), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			s, _ := suite.Lookup(sid)
			created, err := e.m.InitHospital(ctx, "hospital-a", string(sid))
			if err != nil {
				t.Fatal(err)
			}
			if len(created) != len(kms.Purposes()) {
				t.Fatalf("created %v", created)
			}
			if again, err := e.m.InitHospital(ctx, "hospital-a", string(sid)); err != nil || len(again) != 0 {
				t.Fatalf("second init created %v, %v", again, err)
			}

			// A per-patient data key: random, suite-sized, stored wrapped.
			k1, err := e.m.NewDataKey(ctx, "hospital-a", kms.KindPatient, "p1")
			if err != nil {
				t.Fatal(err)
			}
			if len(k1) != s.AEADKeySize() {
				t.Fatalf("data key of %d bytes", len(k1))
			}
			_, err = e.m.NewDataKey(ctx, "hospital-a", kms.KindPatient, "p1")
			wantCode(t, err, kms.CodeExists)
			got, err := e.m.DataKey(ctx, "hospital-a", kms.KindPatient, "p1")
			if err != nil || !bytes.Equal(got, k1) {
				t.Fatalf("DataKey = %x, %v", got, err)
			}
			dk, _ := e.st.DataKey(ctx, "hospital-a/patient/p1")
			if bytes.Contains(dk.Wrapped, k1) {
				t.Fatal("stored data key is not wrapped")
			}
			b, err := kms.ParseBlob(dk.Wrapped)
			if err != nil || b.Suite != string(sid) || b.KEK != "hospital-a/data" || b.KEKVersion != 1 || b.KeyID != "hospital-a/patient/p1" {
				t.Fatalf("blob %+v, %v", b, err)
			}

			// A per-file key held by the caller.
			fk := make([]byte, s.AEADKeySize())
			blob, err := e.m.WrapKey(ctx, "hospital-a", "file-42", fk)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := e.m.UnwrapKey(ctx, blob, "file-42"); err != nil || !bytes.Equal(got, fk) {
				t.Fatalf("UnwrapKey = %x, %v", got, err)
			}
			_, err = e.m.UnwrapKey(ctx, blob, "file-43")
			wantCode(t, err, kms.CodeUnwrapFailed)
			tampered := bytes.Clone(blob)
			tampered[len(tampered)-1] ^= 1
			_, err = e.m.UnwrapKey(ctx, tampered, "file-42")
			wantCode(t, err, kms.CodeUnwrapFailed)

			// Signing and recipient keys work and their public halves export.
			signer, v, err := e.m.Signer(ctx, "hospital-a", 0)
			if err != nil || v != 1 {
				t.Fatalf("Signer: %v", err)
			}
			sig, _ := signer.Sign([]byte("manifest"))
			pubs, err := e.m.PublicKeys(ctx, "hospital-a")
			if err != nil || len(pubs) != 2 {
				t.Fatalf("PublicKeys = %+v, %v", pubs, err)
			}
			vk, err := s.ParseVerifyKey(pubs[0].Public)
			if err != nil || !vk.Verify([]byte("manifest"), sig) {
				t.Fatal("exported signing key does not verify")
			}
			rpub, err := s.ParseRecipientPublicKey(pubs[1].Public)
			if err != nil {
				t.Fatal(err)
			}
			w, err := s.WrapKey(rpub, fk, []byte("ad"))
			if err != nil {
				t.Fatal(err)
			}
			rk, _, err := e.m.RecipientKey(ctx, "hospital-a", 0)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.UnwrapKey(rk, w, []byte("ad")); err != nil || !bytes.Equal(got, fk) {
				t.Fatal("recipient key does not unwrap")
			}

			// Blind-index keys differ per parameter and are stable.
			b1, err := e.m.DeriveBlindIndexKey(ctx, "hospital-a", 0, "Patient", "name")
			if err != nil {
				t.Fatal(err)
			}
			b2, _ := e.m.DeriveBlindIndexKey(ctx, "hospital-a", 0, "Patient", "birthdate")
			b1again, _ := e.m.DeriveBlindIndexKey(ctx, "hospital-a", 0, "Patient", "name")
			if bytes.Equal(b1.Key, b2.Key) || !bytes.Equal(b1.Key, b1again.Key) || len(b1.Key) != 48 {
				t.Fatal("blind-index keys are not separated or not stable")
			}
		})
	}
}

// TestDeriveHMACKeyMatchesSeed recomputes seed 002's derivation from the
// stored HMAC master secret with the standard library alone.
func TestDeriveHMACKeyMatchesSeed(t *testing.T) {
	for _, sid := range []suite.ID{suite.Intl, suite.GM} {
		t.Run(string(sid), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			s, _ := suite.Lookup(sid)
			if _, err := e.m.InitHospital(ctx, "h1", string(sid)); err != nil {
				t.Fatal(err)
			}
			// The master HMAC key, unwrapped straight from storage.
			v, err := e.st.KEKVersion(ctx, "h1/hmac", 1)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := kms.ParseBlob(v.Secret)
			hdr, _ := b.Header()
			master, err := e.be.Unwrap(ctx, kms.KEKRef{KEK: "h1/hmac", Version: 1, Suite: string(sid)}, v.Handle, b.Payload, hdr)
			if err != nil || len(master) != 48 {
				t.Fatalf("master: %d bytes, %v", len(master), err)
			}
			patient, err := hkdf.Expand(s.NewHash, master, "FHIR-HMAC"+"pat-1"+"v1", 48)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := hkdf.Expand(s.NewHash, patient, "Observation"+"obs-9", 48)

			pk, err := e.m.PatientHMACKey(ctx, "h1", "pat-1")
			if err != nil || !bytes.Equal(pk.Key, patient) {
				t.Fatalf("patient key mismatch (%v)", err)
			}
			got, err := e.m.DeriveHMACKey(ctx, "h1", "pat-1", "Observation", "obs-9")
			if err != nil || !bytes.Equal(got.Key, want) || got.Version != 1 || got.KEK != "h1/hmac" {
				t.Fatalf("resource key mismatch (%v)", err)
			}
			other, _ := e.m.DeriveHMACKey(ctx, "h1", "pat-2", "Observation", "obs-9")
			if bytes.Equal(other.Key, want) {
				t.Fatal("two patients share a resource key")
			}

			// After a rotation, new keys differ and old ones stay derivable.
			if _, err := e.m.Rotate(ctx, "h1/hmac"); err != nil {
				t.Fatal(err)
			}
			now, _ := e.m.DeriveHMACKey(ctx, "h1", "pat-1", "Observation", "obs-9")
			old, err := e.m.DeriveHMACKeyAt(ctx, "h1", 1, "pat-1", "Observation", "obs-9")
			if now.Version != 2 || bytes.Equal(now.Key, want) || err != nil || !bytes.Equal(old.Key, want) {
				t.Fatalf("after rotation: version %d, old %v", now.Version, err)
			}

			for _, bad := range [][3]string{{"", "Observation", "x"}, {"p", "observation", "x"}, {"p", "Observation", "a/b"}, {"p", "Observation", ""}} {
				_, err := e.m.DeriveHMACKey(ctx, "h1", bad[0], bad[1], bad[2])
				wantCode(t, err, kms.CodeBadInput)
			}
		})
	}
}

func TestNoHospital(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	_, err := e.m.NewDataKey(ctx, "nowhere", kms.KindPatient, "p")
	wantCode(t, err, kms.CodeNotFound)
	_, err = e.m.NewDataKey(ctx, "Bad Hospital", kms.KindPatient, "p")
	wantCode(t, err, kms.CodeBadInput)
	_, err = e.m.InitHospital(ctx, "h", "rot13")
	wantCode(t, err, kms.CodeUnknownSuite)
	_, err = e.m.DeriveHMACKey(ctx, "nowhere", "p", "Patient", "p")
	wantCode(t, err, kms.CodeNotFound)
	_, err = e.m.NewDataKey(ctx, "h", kms.DataKind("x"), "p")
	wantCode(t, err, kms.CodeBadInput)
	_, err = e.m.DataKey(ctx, "h", kms.KindFile, fmt.Sprintf("%0200d", 1))
	wantCode(t, err, kms.CodeBadInput)
}
