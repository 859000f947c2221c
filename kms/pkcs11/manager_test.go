//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"phix/kms"
	"phix/kms/sqlstore"
	"phix/suite"
)

func newManager(t *testing.T, cfg Config) (*kms.Manager, *sqlstore.Store, *Backend) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "keyring.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b := openHSM(t, cfg)
	m, err := kms.Open(ctx, kms.Config{Store: st, Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	return m, st, b
}

func countObjects(t *testing.T, tokens string) int {
	t.Helper()
	n := 0
	_ = filepath.Walk(tokens, func(p string, fi os.FileInfo, err error) error {
		if err == nil && filepath.Ext(p) == ".object" {
			n++
		}
		return nil
	})
	return n
}

// TestManagerOnHSM runs the hierarchy on the HSM: init, data keys,
// rotation, then a dual-control destroy that removes the token object.
func TestManagerOnHSM(t *testing.T) {
	ctx := context.Background()
	cfg, tokens := softHSM(t)
	m, st, b := newManager(t, cfg)
	s, _ := suite.Lookup(suite.Intl)
	if _, err := m.InitHospital(ctx, "h", "intl"); err != nil {
		t.Fatal(err)
	}
	keys := map[string][]byte{}
	for _, p := range []string{"p1", "p2", "p3"} {
		k, err := m.NewDataKey(ctx, "h", kms.KindPatient, p)
		if err != nil {
			t.Fatal(err)
		}
		keys[p] = k
	}
	if _, err := m.DeriveHMACKey(ctx, "h", "p1", "Patient", "p1"); err != nil {
		t.Fatal(err)
	}
	fk := make([]byte, 32)
	_, _ = rand.Read(fk)
	kept, err := m.WrapKey(ctx, "h", "file-1", fk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Rotate(ctx, "h/data"); err != nil {
		t.Fatal(err)
	}
	if r, err := m.ResumeRotation(ctx, "h/data", kms.RotateOptions{BatchSize: 2}); err != nil || !r.Finished || r.Done != 3 {
		t.Fatalf("rotation %+v, %v", r, err)
	}
	for p, want := range keys {
		if got, err := m.DataKey(ctx, "h", kms.KindPatient, p); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after rotation: %v", p, err)
		}
	}
	_, err = m.ExportKEK(ctx, "h/data", 1, mustRecipient(t, s), nil)
	wantCode(t, err, kms.CodeNotExportable)

	alice, bob := custodian(t, m, "alice", s), custodian(t, m, "bob", s)
	v1, _ := st.KEKVersion(ctx, "h/data", 1)
	before := countObjects(t, tokens)
	now := time.Now()
	if err := m.DestroyKEKVersion(ctx, "h/data", 1, []kms.Approval{
		approve(t, alice, "alice", kms.OpDestroyKEK, "h/data", 1, now),
		approve(t, bob, "bob", kms.OpDestroyKEK, "h/data", 1, now),
	}); err != nil {
		t.Fatal(err)
	}
	if after := countObjects(t, tokens); after != before-1 {
		t.Fatalf("token objects %d -> %d, want one fewer", before, after)
	}
	if ok, err := b.Exists(ctx, v1.Handle); err != nil || ok {
		t.Fatalf("KEK object survives (%v)", err)
	}
	_, err = m.UnwrapKey(ctx, kept, "file-1")
	wantCode(t, err, kms.CodeDestroyed)
	// Even the raw handle and payload, straight to the token, are useless.
	blob, _ := kms.ParseBlob(kept)
	hdr, _ := blob.Header()
	if _, err := b.Unwrap(ctx, kms.KEKRef{KEK: "h/data", Version: 1, Suite: "intl"}, v1.Handle, blob.Payload, hdr); err == nil {
		t.Fatal("the token still unwraps under the destroyed KEK")
	}
	if got, err := m.DataKey(ctx, "h", kms.KindPatient, "p2"); err != nil || !bytes.Equal(got, keys["p2"]) {
		t.Fatalf("p2 lost: %v", err)
	}
}

// TestGMOnHSM: the gm suite is refused unless the AES-wrap opt-in is set;
// with it, data keys are SM4 keys and seal with SM4-GCM.
func TestGMOnHSM(t *testing.T) {
	ctx := context.Background()
	cfg, _ := softHSM(t)
	m, _, _ := newManager(t, cfg)
	_, err := m.InitHospital(ctx, "h", "gm")
	wantCode(t, err, kms.CodeUnsupported)

	cfg.AllowAESWrapForGM = true
	m2, _, _ := newManager(t, cfg)
	if _, err := m2.InitHospital(ctx, "h", "gm"); err != nil {
		t.Fatal(err)
	}
	k, err := m2.NewDataKey(ctx, "h", kms.KindFile, "f1")
	if err != nil {
		t.Fatal(err)
	}
	g, _ := suite.Lookup(suite.GM)
	if len(k) != g.AEADKeySize() {
		t.Fatalf("gm data key of %d bytes", len(k))
	}
	a, err := g.NewAEAD(k)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, a.NonceSize())
	ct := a.Seal(nil, nonce, []byte("record"), nil)
	k2, err := m2.DataKey(ctx, "h", kms.KindFile, "f1")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := g.NewAEAD(k2)
	if pt, err := a2.Open(nil, nonce, ct, nil); err != nil || string(pt) != "record" {
		t.Fatal("SM4 data does not round-trip through the HSM-wrapped key")
	}
	if _, _, err := m2.Signer(ctx, "h", 0); err != nil {
		t.Fatalf("SM2 signer: %v", err)
	}
}

func mustRecipient(t *testing.T, s suite.Suite) []byte {
	t.Helper()
	r, err := s.GenerateRecipientKey()
	if err != nil {
		t.Fatal(err)
	}
	return r.Public().Bytes()
}

func custodian(t *testing.T, m *kms.Manager, id string, s suite.Suite) suite.SigningKey {
	t.Helper()
	sk, err := s.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.EnrollCustodian(context.Background(), id, string(s.ID()), sk.Public().Bytes(), nil); err != nil {
		t.Fatal(err)
	}
	return sk
}

func approve(t *testing.T, sk suite.SigningKey, id, op, key string, v int, now time.Time) kms.Approval {
	t.Helper()
	a, err := kms.SignApproval(sk, id, op, key, v, "", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
