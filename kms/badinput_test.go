package kms_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix/kms"
	"phix/kms/keyring"
	"phix/kms/sqlstore"
)

func TestWrongMasterKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.m.InitHospital(ctx, "h", "intl"); err != nil {
		t.Fatal(err)
	}
	other := bytes.Clone(e.raw)
	other[0] ^= 1
	wrong, _ := keyring.MasterKey(other)
	_, err := keyring.Open(ctx, e.st, wrong, keyring.Options{})
	wantCode(t, err, kms.CodeWrongMasterKey)
	if err != nil && strings.Contains(err.Error(), hex.EncodeToString(other)) {
		t.Fatal("error carries the key")
	}
	pass, _ := keyring.Passphrase("correct horse battery staple")
	_, err = keyring.Open(ctx, e.st, pass, keyring.Options{})
	wantCode(t, err, kms.CodeWrongMasterKey)

	// A passphrase keyring refuses a wrong passphrase.
	dir := t.TempDir()
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cheap := &keyring.Argon2Params{Time: 1, MemKiB: 8 * 1024, Threads: 1}
	if _, err := keyring.Open(ctx, st, pass, keyring.Options{Argon2: cheap}); err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.Open(ctx, st, pass, keyring.Options{}); err != nil {
		t.Fatalf("reopen with the right passphrase: %v", err)
	}
	bad, _ := keyring.Passphrase("correct horse battery stapler")
	_, err = keyring.Open(ctx, st, bad, keyring.Options{})
	wantCode(t, err, kms.CodeWrongMasterKey)
	_, err = keyring.Passphrase("short")
	wantCode(t, err, kms.CodeBadInput)

	// Master key sources.
	_, err = keyring.MasterKeyBase64("not base64!!")
	wantCode(t, err, kms.CodeBadInput)
	_, err = keyring.MasterKeyBase64(base64.StdEncoding.EncodeToString(make([]byte, 16)))
	wantCode(t, err, kms.CodeBadInput)
	f := filepath.Join(dir, "master.key")
	if err := os.WriteFile(f, []byte(base64.StdEncoding.EncodeToString(e.raw)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = keyring.MasterKeyFromFile(f)
	wantCode(t, err, kms.CodeBadInput) // world-readable
	_ = os.Chmod(f, 0o600)
	if _, err := keyring.MasterKeyFromFile(f); err != nil {
		t.Fatal(err)
	}
	t.Setenv(keyring.EnvMasterKey, base64.StdEncoding.EncodeToString(e.raw))
	if _, err := keyring.MasterKeyFromEnv(); err != nil {
		t.Fatal(err)
	}

	// A keyring made for one backend refuses another.
	_, err = kms.Open(ctx, kms.Config{Store: e.st, Backend: renamed{e.be}})
	wantCode(t, err, kms.CodeBackendMismatched)
}

type renamed struct{ kms.Backend }

func (renamed) Name() string { return "pkcs11" }

func TestBadBlobs(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.m.InitHospital(ctx, "h", "intl"); err != nil {
		t.Fatal(err)
	}
	good, err := e.m.WrapKey(ctx, "h", "k", bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(good) {
		_, err := e.m.UnwrapKey(ctx, good[:i], "k")
		wantCode(t, err, kms.CodeMalformedBlob)
	}
	_, err = e.m.UnwrapKey(ctx, append(bytes.Clone(good), 0), "k")
	wantCode(t, err, kms.CodeMalformedBlob)

	b, _ := kms.ParseBlob(good)
	edit := func(f func(*kms.Blob)) []byte {
		c := *b
		f(&c)
		out, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	cases := []struct {
		name string
		blob []byte
		want kms.Code
	}{
		{"missing version", edit(func(b *kms.Blob) { b.KEKVersion = 9 }), kms.CodeNotFound},
		{"unknown suite", edit(func(b *kms.Blob) { b.Suite = "rot13" }), kms.CodeUnknownSuite},
		{"other suite", edit(func(b *kms.Blob) { b.Suite = "gm" }), kms.CodeUnwrapFailed},
		{"unknown KEK", edit(func(b *kms.Blob) { b.KEK = "x/data" }), kms.CodeNotFound},
		{"other backend", edit(func(b *kms.Blob) { b.Backend = "pkcs11" }), kms.CodeBackendMismatched},
		{"payload swapped", edit(func(b *kms.Blob) { b.Payload = bytes.Repeat([]byte{9}, 60) }), kms.CodeUnwrapFailed},
		{"short payload", edit(func(b *kms.Blob) { b.Payload = []byte{1} }), kms.CodeUnwrapFailed},
		{"not a data KEK", edit(func(b *kms.Blob) { b.KEK = "h/hmac"; b.KEKVersion = 1 }), kms.CodeUnwrapFailed},
		{"garbage", []byte("hello, world"), kms.CodeMalformedBlob},
		{"empty", nil, kms.CodeMalformedBlob},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.m.UnwrapKey(ctx, tc.blob, "k")
			wantCode(t, err, tc.want)
		})
	}
}

// TestNoKeyMaterialInErrorsOrLog provokes many errors and reads the whole
// operation log, looking for any key in raw, hex or base64 form.
func TestNoKeyMaterialInErrorsOrLog(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if _, err := e.m.InitHospital(ctx, "h", "intl"); err != nil {
		t.Fatal(err)
	}
	var secrets [][]byte
	secrets = append(secrets, e.raw)
	for _, p := range kms.Purposes() {
		v, _ := e.st.KEKVersion(ctx, kms.KEKID("h", p), 1)
		m, err := e.be.ExportKEK(ctx, kms.KEKRef{KEK: kms.KEKID("h", p), Version: 1, Suite: "intl"}, v.Handle)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, m)
	}
	dk, _ := e.m.NewDataKey(ctx, "h", kms.KindPatient, "p1")
	secrets = append(secrets, dk)
	hk, _ := e.m.DeriveHMACKey(ctx, "h", "p1", "Patient", "p1")
	secrets = append(secrets, hk.Key)
	signer, _, _ := e.m.Signer(ctx, "h", 0)
	secrets = append(secrets, signer.Bytes())
	blob, _ := e.m.WrapKey(ctx, "h", "k", dk)

	var errs []error
	collect := func(_ any, err error) { errs = append(errs, err) }
	collect(e.m.UnwrapKey(ctx, blob, "other"))
	collect(e.m.UnwrapKey(ctx, blob[:len(blob)-3], "k"))
	tampered := bytes.Clone(blob)
	tampered[len(tampered)-5] ^= 0xff
	collect(e.m.UnwrapKey(ctx, tampered, "k"))
	collect(e.m.NewDataKey(ctx, "h", kms.KindPatient, "p1"))
	collect(e.m.WrapKey(ctx, "h", "", dk))
	collect(e.m.WrapKey(ctx, "nowhere", "k", dk))
	collect(nil, e.m.DestroyKEKVersion(ctx, "h/data", 1, nil))
	collect(nil, e.m.EnrollCustodian(ctx, "x", "intl", dk, nil))
	collect(e.m.DeriveHMACKey(ctx, "h", string(dk), "Patient", "x"))
	collect(keyring.MasterKeyBase64(hex.EncodeToString(e.raw)))
	collect(keyring.MasterKey(e.raw[:31]))
	other := bytes.Clone(e.raw)
	other[3] ^= 1
	wrong, _ := keyring.MasterKey(other)
	collect(keyring.Open(ctx, e.st, wrong, keyring.Options{}))
	secrets = append(secrets, other)

	ops, err := e.st.Ops(ctx, 0, 10000)
	if err != nil || len(ops) == 0 {
		t.Fatalf("ops: %d, %v", len(ops), err)
	}
	logJSON, _ := json.Marshal(ops)
	var text strings.Builder
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
			text.WriteString(err.Error() + "\n")
		}
	}
	if n != len(errs) {
		t.Fatalf("only %d of %d bad calls failed", n, len(errs))
	}
	for i, s := range secrets {
		for _, form := range []string{string(s), hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s), base64.RawStdEncoding.EncodeToString(s)} {
			if strings.Contains(text.String(), form) || bytes.Contains(logJSON, []byte(form)) {
				t.Fatalf("secret %d appears in an error or the operation log", i)
			}
		}
	}
}

// FuzzUnwrapKey feeds arbitrary blobs through the whole unwrap path (parser,
// store lookups, backend): errors always carry a code, and nothing but the
// genuine blob ever unwraps.
func FuzzUnwrapKey(f *testing.F) {
	ctx := context.Background()
	e := newEnv(f)
	if _, err := e.m.InitHospital(ctx, "h", "intl"); err != nil {
		f.Fatal(err)
	}
	key := bytes.Repeat([]byte{0x33}, 32)
	good, err := e.m.WrapKey(ctx, "h", "k", key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	b, _ := kms.ParseBlob(good)
	b.KEKVersion = 2
	v2, _ := b.Marshal()
	f.Add(v2)
	b.Suite = "gm"
	gm, _ := b.Marshal()
	f.Add(gm)
	f.Fuzz(func(t *testing.T, blob []byte) {
		got, err := e.m.UnwrapKey(ctx, blob, "k")
		if err != nil {
			if kms.CodeOf(err) == "" {
				t.Fatalf("error without a code: %v", err)
			}
			return
		}
		if !bytes.Equal(blob, good) || !bytes.Equal(got, key) {
			t.Fatal("a forged blob unwrapped")
		}
	})
}
