package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"

	"phix/seal"
	"phix/suite"
)

// TestInnerManifestVersions: version 2 (no plaintext hashes) is written and
// read; version 1 (with them) is still read and its hashes checked; a
// manifest mixing the two is refused.
func TestInnerManifestVersions(t *testing.T) {
	h := "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	cases := []struct {
		m  innerManifest
		ok bool
	}{
		{innerManifest{V: 2, Files: []innerFile{{Sealed: "f001.seal", Name: "a.pdf", Size: 1}}}, true},
		{innerManifest{V: 1, Files: []innerFile{{Sealed: "f001.seal", Name: "a.pdf", Size: 1, HashAlg: "sha256", Hash: h}}}, true},
		{innerManifest{V: 2, Files: []innerFile{{Sealed: "f001.seal", Name: "a.pdf", Size: 1, HashAlg: "sha256", Hash: h}}}, false},
		{innerManifest{V: 1, Files: []innerFile{{Sealed: "f001.seal", Name: "a.pdf", Size: 1}}}, false},
		{innerManifest{V: 3}, false},
	}
	for i, c := range cases {
		b, _ := json.Marshal(c.m)
		if _, err := parseInnerManifest(b); (err == nil) != c.ok {
			t.Errorf("case %d: %v, want ok=%v", i, err, c.ok)
		}
	}
	if innerManifestVersion != 2 {
		t.Fatalf("writes version %d", innerManifestVersion)
	}
}

// TestUnsealChecksVersion1Hash: a version 1 file's plaintext hash is still
// checked; a version 2 file is checked for its size (the AEAD
// authenticates the bytes).
func TestUnsealChecksVersion1Hash(t *testing.T) {
	s, _ := suite.Lookup(suite.Intl)
	key, err := s.GenerateRecipientKey()
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{cfg: Config{Keys: Keys{Suite: s, Recipient: key, RecipientVersion: 1}}}
	plain := bytes.Repeat([]byte("phix"), 100000)
	var sealed bytes.Buffer
	w, err := seal.NewWriter(&sealed, seal.Options{Suite: s, Recipients: []seal.Recipient{seal.PublicKeyRecipient(key.Public(), 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil || w.Close() != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(plain)
	good, bad := hex.EncodeToString(sum[:]), hex.EncodeToString(make([]byte, 32))
	for _, c := range []struct {
		f  innerFile
		ok bool
	}{
		{innerFile{Size: int64(len(plain)), HashAlg: "sha256", Hash: good}, true},
		{innerFile{Size: int64(len(plain)), HashAlg: "sha256", Hash: bad}, false},
		{innerFile{Size: int64(len(plain))}, true},
		{innerFile{Size: int64(len(plain)) - 1}, false},
	} {
		var out bytes.Buffer
		err := g.unseal(bytes.NewReader(sealed.Bytes()), &out, c.f)
		if (err == nil) != c.ok {
			t.Errorf("%+v: %v, want ok=%v", c.f, err, c.ok)
		}
		if c.ok && !bytes.Equal(out.Bytes(), plain) {
			t.Errorf("%+v: plaintext differs", c.f)
		}
	}
}

// TestImportRefusesSeveralPatients: a received record with two Patients is
// refused before anything reaches the FHIR server (the transfer's consent,
// and its import grant, cover one patient).
func TestImportRefusesSeveralPatients(t *testing.T) {
	g := &Gateway{cfg: Config{FHIR: &FHIRClient{Base: "http://127.0.0.1:1/unused"}}}
	bundle := []byte(`{"resourceType":"Bundle","type":"collection","entry":[
		{"resource":{"resourceType":"Patient","id":"a"}},{"resource":{"resourceType":"Patient","id":"b"}}]}`)
	_, err := g.importBundle(context.Background(), &Inbound{ID: "t1", Sender: "hospital-a", ConsentID: "c1", Purpose: "TREAT"}, bundle)
	var he *httpError
	if !errors.As(err, &he) || he.Status != 403 || he.Code != CodeVerify {
		t.Fatalf("two patients: %v", err)
	}
}
