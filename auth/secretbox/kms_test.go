package secretbox_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"

	"phix/auth/secretbox"
	"phix/kms"
	"phix/kms/keyring"
	"phix/kms/sqlstore"
	"phix/suite"
)

// TestFromKMS: the box is keyed by the hospital's data key, so a second
// box from the same key manager opens what the first sealed, and another
// hospital's box does not.
func TestFromKMS(t *testing.T) {
	ctx := context.Background()
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "keyring.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mk := make([]byte, keyring.MasterKeySize)
	rand.Read(mk)
	master, err := keyring.MasterKey(mk)
	if err != nil {
		t.Fatal(err)
	}
	be, err := keyring.Open(ctx, st, master, keyring.Options{Suite: string(suite.Intl)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := kms.Open(ctx, kms.Config{Store: st, Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"hospital-a", "hospital-b"} {
		if _, err := m.InitHospital(ctx, h, string(suite.Intl)); err != nil {
			t.Fatal(err)
		}
	}
	a1, err := secretbox.FromKMS(ctx, m, "hospital-a", suite.Intl)
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := a1.Seal("x", []byte("secret"))
	a2, err := secretbox.FromKMS(ctx, m, "hospital-a", suite.Intl)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := a2.Open("x", blob); err != nil || !bytes.Equal(got, []byte("secret")) {
		t.Fatalf("same hospital: %v", err)
	}
	b, err := secretbox.FromKMS(ctx, m, "hospital-b", suite.Intl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open("x", blob); !errors.Is(err, secretbox.ErrOpen) {
		t.Fatal("another hospital's key opened the secret")
	}
}
