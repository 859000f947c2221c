package keyring_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"

	"phix/kms"
	"phix/kms/keyring"
	"phix/kms/sqlstore"
)

func TestRekey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyring.db")
	st, err := sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mk := make([]byte, 32)
	_, _ = rand.Read(mk)
	oldM, _ := keyring.MasterKey(mk)
	be, err := keyring.Open(ctx, st, oldM, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := kms.Open(ctx, kms.Config{Store: st, Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []struct{ id, suite string }{{"a", "intl"}, {"b", "gm"}} {
		if _, err := m.InitHospital(ctx, h.id, h.suite); err != nil {
			t.Fatal(err)
		}
	}
	ka, _ := m.NewDataKey(ctx, "a", kms.KindPatient, "p")
	kb, _ := m.NewDataKey(ctx, "b", kms.KindFile, "f")
	if _, err := m.Rotate(ctx, "a/data"); err != nil {
		t.Fatal(err)
	}
	hk, _ := m.DeriveHMACKey(ctx, "a", "p", "Patient", "p")

	cheap := &keyring.Argon2Params{Time: 1, MemKiB: 8 * 1024, Threads: 1}
	next, _ := keyring.Passphrase("a long enough new passphrase")
	// A wrong current master key changes nothing.
	wrong := bytes.Clone(mk)
	wrong[0] ^= 1
	wm, _ := keyring.MasterKey(wrong)
	_, err = keyring.Rekey(ctx, st, wm, next, keyring.Options{Argon2: cheap})
	if kms.CodeOf(err) != kms.CodeWrongMasterKey {
		t.Fatalf("rekey with a wrong master: %v", err)
	}
	n, err := keyring.Rekey(ctx, st, oldM, next, keyring.Options{Argon2: cheap})
	if err != nil || n != 11 {
		t.Fatalf("Rekey = %d, %v; want 11 versions", n, err)
	}

	// The old master no longer opens it; the new one opens everything.
	_, err = keyring.Open(ctx, st, oldM, keyring.Options{})
	if kms.CodeOf(err) != kms.CodeWrongMasterKey {
		t.Fatalf("old master after rekey: %v", err)
	}
	be2, err := keyring.Open(ctx, st, next, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := kms.Open(ctx, kms.Config{Store: st, Backend: be2})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m2.DataKey(ctx, "a", kms.KindPatient, "p"); err != nil || !bytes.Equal(got, ka) {
		t.Fatalf("intl data key after rekey: %v", err)
	}
	if got, err := m2.DataKey(ctx, "b", kms.KindFile, "f"); err != nil || !bytes.Equal(got, kb) {
		t.Fatalf("gm data key after rekey: %v", err)
	}
	if got, err := m2.DeriveHMACKey(ctx, "a", "p", "Patient", "p"); err != nil || !bytes.Equal(got.Key, hk.Key) {
		t.Fatalf("derived key after rekey: %v", err)
	}
}
