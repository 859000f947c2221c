package secretbox_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"phix/auth/secretbox"
	"phix/suite"
)

func TestSealOpen(t *testing.T) {
	for _, id := range []suite.ID{suite.Intl, suite.GM} {
		s, _ := suite.Lookup(id)
		key := make([]byte, s.AEADKeySize())
		rand.Read(key)
		b, err := secretbox.NewKey(id, key)
		if err != nil {
			t.Fatal(err)
		}
		secret := []byte("JBSWY3DPEHPK3PXP")
		blob, err := b.Seal("totp/alice", secret)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(blob, secret) {
			t.Fatal("plaintext in the sealed blob")
		}
		got, err := b.Open("totp/alice", blob)
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("open: %v", err)
		}
		if _, err := b.Open("totp/bob", blob); !errors.Is(err, secretbox.ErrOpen) {
			t.Fatal("opened under another label")
		}
		blob[len(blob)-1] ^= 1
		if _, err := b.Open("totp/alice", blob); !errors.Is(err, secretbox.ErrOpen) {
			t.Fatal("opened a tampered blob")
		}
		if _, err := b.Open("x", nil); !errors.Is(err, secretbox.ErrOpen) {
			t.Fatal("opened nothing")
		}
	}
}
