package kms_test

import (
	"bytes"
	"testing"

	"phix/kms"
)

func TestBlobRoundTrip(t *testing.T) {
	b := kms.Blob{Suite: "gm", Backend: "pkcs11", KEK: "h/data", KEKVersion: 70000, KeyID: "h/file/x", Payload: []byte{1, 2, 3}}
	raw, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := kms.ParseBlob(raw)
	if err != nil || got.Suite != b.Suite || got.Backend != b.Backend || got.KEK != b.KEK || got.KEKVersion != b.KEKVersion ||
		got.KeyID != b.KeyID || !bytes.Equal(got.Payload, b.Payload) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []kms.Blob{{}, {Suite: "intl", Backend: "local", KEK: "k", KEKVersion: 0, Payload: []byte{1}}} {
		if _, err := bad.Marshal(); kms.CodeOf(err) != kms.CodeBadInput {
			t.Fatalf("Marshal(%+v) = %v", bad, err)
		}
	}
}

func FuzzParseBlob(f *testing.F) {
	seed := kms.Blob{Suite: "intl", Backend: "local", KEK: "hospital-a/data", KEKVersion: 3, KeyID: "hospital-a/patient/p1", Payload: bytes.Repeat([]byte{7}, 60)}
	raw, _ := seed.Marshal()
	f.Add(raw)
	f.Add(raw[:10])
	f.Add([]byte("PXKW\x01"))
	f.Add([]byte("PXKW\x02\x04intl"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := kms.ParseBlob(data)
		if err != nil {
			if kms.CodeOf(err) != kms.CodeMalformedBlob {
				t.Fatalf("error without the malformed code: %v", err)
			}
			return
		}
		out, err := b.Marshal()
		if err != nil {
			t.Fatalf("parsed blob does not re-encode: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatal("parse/marshal is not canonical")
		}
	})
}
