package kms_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"phix/kms"
	"phix/kms/keyring"
	"phix/kms/sqlstore"
	"phix/suite"
)

// rawFiles returns the bytes of every file of the keyring directory
// (database, WAL, shared memory, journals).
func rawFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func assertAbsent(t *testing.T, files map[string][]byte, what string, secret []byte) {
	t.Helper()
	for name, b := range files {
		for _, form := range [][]byte{secret, []byte(hex.EncodeToString(secret)), []byte(base64.StdEncoding.EncodeToString(secret))} {
			if bytes.Contains(b, form) {
				t.Fatalf("%s still present in %s", what, name)
			}
		}
	}
}

// assertPresent shows the raw scan can see a live secret, so the absence
// checks mean something.
func assertPresent(t *testing.T, files map[string][]byte, what string, b []byte) {
	t.Helper()
	for _, f := range files {
		if bytes.Contains(f, b) {
			return
		}
	}
	t.Fatalf("%s not found in the raw files: the scan is blind", what)
}

func seal(t *testing.T, s suite.Suite, key, msg []byte) []byte {
	t.Helper()
	a, err := s.NewAEAD(key)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, a.NonceSize())
	_, _ = rand.Read(nonce)
	return a.Seal(nonce, nonce, msg, nil)
}

// TestCryptographicErasure seals data under two patients' keys, destroys
// one patient's key and then a KEK version, and inspects the raw keyring
// files: nothing that was erased can be found or used to decrypt, even by
// someone who holds the master key and the files.
func TestCryptographicErasure(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, _ := suite.Lookup(suite.Intl)
	if _, err := e.m.InitHospital(ctx, "h", "intl"); err != nil {
		t.Fatal(err)
	}
	alice := enroll(t, e.m, "alice", s)
	bob := enroll(t, e.m, "bob", s)

	k1, _ := e.m.NewDataKey(ctx, "h", kms.KindPatient, "p1")
	k2, _ := e.m.NewDataKey(ctx, "h", kms.KindPatient, "p2")
	dk1, _ := e.st.DataKey(ctx, "h/patient/p1")
	sealed1 := seal(t, s, k1, []byte("patient one's record"))
	sealed2 := seal(t, s, k2, []byte("patient two's record"))

	assertPresent(t, rawFiles(t, e.dir), "p1's wrapped key", dk1.Wrapped)

	// 1. Erase one patient's data key.
	if err := e.m.DestroyDataKey(ctx, "h", kms.KindPatient, "p1"); err != nil {
		t.Fatal(err)
	}
	_, err := e.m.DataKey(ctx, "h", kms.KindPatient, "p1")
	wantCode(t, err, kms.CodeNotFound)
	files := rawFiles(t, e.dir)
	assertAbsent(t, files, "p1's wrapped key", dk1.Wrapped)
	assertAbsent(t, files, "p1's key", k1)
	assertAbsent(t, files, "p2's key", k2) // never stored in the clear
	// An attacker with the master key and the files: reopen everything and
	// try every stored data key against p1's ciphertext.
	e.open(t, nil)
	tryAll := func(sealed []byte) bool {
		var ok bool
		for _, id := range []string{"p1", "p2"} {
			k, err := e.m.DataKey(ctx, "h", kms.KindPatient, id)
			if err != nil {
				continue
			}
			a, _ := s.NewAEAD(k)
			if _, err := a.Open(nil, sealed[:12], sealed[12:], nil); err == nil {
				ok = true
			}
		}
		return ok
	}
	if tryAll(sealed1) {
		t.Fatal("p1's data still decrypts")
	}
	if !tryAll(sealed2) {
		t.Fatal("p2's data no longer decrypts")
	}

	// 2. Destroy KEK version 1 after moving the stored keys to version 2;
	// a blob a caller kept under version 1 dies with it.
	fk := bytes.Repeat([]byte{0x5a}, 32)
	kept, _ := e.m.WrapKey(ctx, "h", "file-1", fk)
	fileData := seal(t, s, fk, []byte("a file"))
	v1, _ := e.st.KEKVersion(ctx, "h/data", 1)
	if _, err := e.m.Rotate(ctx, "h/data"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.ResumeRotation(ctx, "h/data", kms.RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	assertPresent(t, rawFiles(t, e.dir), "KEK v1 sealed material", v1.Handle)
	material, err := e.be.ExportKEK(ctx, kms.KEKRef{KEK: "h/data", Version: 1, Suite: "intl"}, v1.Handle)
	if err != nil {
		t.Fatal(err)
	}
	err = e.m.DestroyKEKVersion(ctx, "h/data", 1, []kms.Approval{
		alice.approve(t, kms.OpDestroyKEK, "h/data", 1, "", e.now),
		bob.approve(t, kms.OpDestroyKEK, "h/data", 1, "", e.now),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.m.UnwrapKey(ctx, kept, "file-1")
	wantCode(t, err, kms.CodeDestroyed)
	if got, err := e.m.DataKey(ctx, "h", kms.KindPatient, "p2"); err != nil || !bytes.Equal(got, k2) {
		t.Fatalf("p2 (re-wrapped to version 2) lost: %v", err)
	}
	files = rawFiles(t, e.dir)
	assertAbsent(t, files, "KEK v1 sealed material", v1.Handle)
	assertAbsent(t, files, "KEK v1 material", material)
	assertAbsent(t, files, "file key", fk)

	// A fresh process with the master key cannot get version 1 back.
	st, err := sqlstore.OpenSQLite(ctx, e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	be, err := keyring.Open(ctx, st, e.master, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := kms.Open(ctx, kms.Config{Store: st, Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.UnwrapKey(ctx, kept, "file-1")
	wantCode(t, err, kms.CodeDestroyed)
	b, _ := kms.ParseBlob(kept)
	hdr, _ := b.Header()
	if _, err := be.Unwrap(ctx, kms.KEKRef{KEK: "h/data", Version: 1, Suite: "intl"}, nil, b.Payload, hdr); err == nil {
		t.Fatal("backend unwrapped without material")
	}
	a, _ := s.NewAEAD(fk)
	if _, err := a.Open(nil, fileData[:12], fileData[12:], nil); err != nil {
		t.Fatal("sanity: the file key itself still opens the file")
	}
}
