package keyring_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"phix/kms"
	"phix/kms/keyring"
)

var cheap = &keyring.Argon2Params{Time: 1, MemKiB: 8 * 1024, Threads: 1}

func TestCustodianKeyFile(t *testing.T) {
	for _, s := range []string{"intl", "gm"} {
		pass := []byte("custodian passphrase")
		f, sk, err := keyring.NewCustodianKey("alice", s, pass, cheap)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(f)
		if bytes.Contains(raw, sk.Bytes()) || f.Clear != nil {
			t.Fatal("private key in the clear in a sealed file")
		}
		g, err := keyring.ParseCustodianKeyFile(raw)
		if err != nil {
			t.Fatal(err)
		}
		back, err := g.SigningKey(pass)
		if err != nil || !bytes.Equal(back.Bytes(), sk.Bytes()) {
			t.Fatalf("%s: reopen: %v", s, err)
		}
		_, err = g.SigningKey([]byte("not the passphrase"))
		if kms.CodeOf(err) != kms.CodeWrongMasterKey {
			t.Fatalf("wrong passphrase: %v", err)
		}
		_, err = g.SigningKey(nil)
		if kms.CodeOf(err) != kms.CodeWrongMasterKey {
			t.Fatalf("no passphrase: %v", err)
		}
		pub := g.PublicOnly()
		if _, err := pub.SigningKey(pass); kms.CodeOf(err) != kms.CodeBadInput {
			t.Fatalf("public part opened: %v", err)
		}
		// Swapping in another public key is detected.
		other, _, _ := keyring.NewCustodianKey("alice", s, nil, nil)
		g.Public = other.Public
		if _, err := g.SigningKey(pass); err == nil {
			t.Fatal("mismatched public key accepted")
		}
	}
	if _, _, err := keyring.NewCustodianKey("a", "intl", []byte("short"), cheap); kms.CodeOf(err) != kms.CodeBadInput {
		t.Fatalf("short passphrase: %v", err)
	}
	if _, err := keyring.ParseCustodianKeyFile([]byte("{}")); kms.CodeOf(err) != kms.CodeBadInput {
		t.Fatalf("empty file: %v", err)
	}
}

func FuzzParseCustodianKeyFile(f *testing.F) {
	kf, _, _ := keyring.NewCustodianKey("alice", "intl", []byte("custodian passphrase"), cheap)
	raw, _ := json.Marshal(kf)
	f.Add(raw)
	f.Add([]byte(`{"id":"a","suite":"gm","public":"AAAA","sealed":"AAAA","argon2":{"time":1,"memKiB":8,"threads":1},"salt":"AAAAAAAAAAAAAAAAAAAAAA=="}`))
	f.Add([]byte(`{"id":"a","suite":"intl","public":"AAAA","private":"AAAA"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := keyring.ParseCustodianKeyFile(b)
		if err != nil {
			return
		}
		if k.Argon2 != nil && (k.Argon2.MemKiB > 64*1024 || k.Argon2.Time > 4) {
			return // keep the fuzzer fast; the bound itself is tested by SigningKey's check
		}
		if _, err := k.SigningKey([]byte("custodian passphrase")); err != nil && kms.CodeOf(err) == "" {
			t.Fatalf("error without a code: %v", err)
		}
	})
}

func TestEscrowKeyFile(t *testing.T) {
	for _, s := range []string{"intl", "gm"} {
		pass := []byte("escrow passphrase, long")
		f, err := keyring.NewEscrowKey(s, pass, cheap)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(f)
		g, err := keyring.ParseEscrowKeyFile(raw)
		if err != nil {
			t.Fatal(err)
		}
		rk, err := g.RecipientKey(pass)
		if err != nil || !bytes.Equal(rk.Public().Bytes(), f.Public) {
			t.Fatalf("%s: open: %v", s, err)
		}
		if _, err := g.RecipientKey([]byte("wrong passphrase!!")); kms.CodeOf(err) != kms.CodeWrongMasterKey {
			t.Fatalf("wrong passphrase: %v", err)
		}
	}
	if _, err := keyring.NewEscrowKey("intl", []byte("short"), cheap); kms.CodeOf(err) != kms.CodeBadInput {
		t.Fatalf("short passphrase: %v", err)
	}
	if _, err := keyring.ParseEscrowKeyFile([]byte("[]")); kms.CodeOf(err) != kms.CodeBadInput {
		t.Fatalf("bad file: %v", err)
	}
}

func FuzzParseEscrowKeyFile(f *testing.F) {
	kf, _ := keyring.NewEscrowKey("gm", []byte("escrow passphrase, long"), cheap)
	raw, _ := json.Marshal(kf)
	f.Add(raw)
	f.Add([]byte(`{"suite":"intl","public":"AAAA"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := keyring.ParseEscrowKeyFile(b)
		if err != nil {
			return
		}
		if k.Argon2 != nil && (k.Argon2.MemKiB > 64*1024 || k.Argon2.Time > 4) {
			return
		}
		if _, err := k.RecipientKey([]byte("escrow passphrase, long")); err != nil && kms.CodeOf(err) == "" {
			t.Fatalf("error without a code: %v", err)
		}
	})
}
