package seal

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"

	"phix/suite"
)

// fuzzSeeds returns the committed vectors' sealed bytes and their keys.
func fuzzSeeds(f *testing.F) ([][]byte, []Identity) {
	b, err := os.ReadFile(vectorsFile)
	if err != nil {
		f.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		f.Fatal(err)
	}
	var seeds [][]byte
	var ids []Identity
	for _, v := range vs {
		sealed, _ := hex.DecodeString(v.Sealed)
		seeds = append(seeds, sealed)
		s, _ := suite.Lookup(suite.ID(v.Suite))
		pk, _ := hex.DecodeString(v.RecipientPrivate)
		priv, err := s.ParseRecipientKey(pk)
		if err != nil {
			f.Fatal(err)
		}
		ids = append(ids, PrivateKeyIdentity(priv, 0))
	}
	return seeds, ids
}

func FuzzParseHeader(f *testing.F) {
	seeds, _ := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
		f.Add(s[:len(s)/3])
	}
	f.Add([]byte(Magic))
	f.Add([]byte(Magic + "\x01\x01\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		h, err := ParseHeader(r)
		if err != nil {
			if Code(err) == "" {
				t.Fatalf("error without a code: %v", err)
			}
			return
		}
		if h.SegmentSize < MinSegmentSize || h.SegmentSize > MaxSegmentSize || len(h.Stanzas) == 0 || len(h.Stanzas) > MaxRecipients {
			t.Fatal("limits not enforced")
		}
		if consumed := len(b) - r.Len(); consumed != len(h.raw)+len(h.MAC) {
			t.Fatalf("consumed %d bytes, header is %d", consumed, len(h.raw)+len(h.MAC))
		}
	})
}

// FuzzOpen mutates whole sealed files (header and segments) and opens them
// with the right keys: only the unmodified vectors may open.
func FuzzOpen(f *testing.F) {
	seeds, ids := fuzzSeeds(f)
	valid := map[string]bool{}
	for _, s := range seeds {
		valid[string(s)] = true
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b), ids...)
		if err != nil {
			if Code(err) == "" {
				t.Fatalf("error without a code: %v", err)
			}
			return
		}
		_, err = io.Copy(io.Discard, r)
		if err == nil && !valid[string(b)] {
			t.Fatal("a modified file opened")
		}
		if err != nil && Code(err) == "" {
			t.Fatalf("error without a code: %v", err)
		}
	})
}

// FuzzParseKeyFile: key files from disk are untrusted input.
func FuzzParseKeyFile(f *testing.F) {
	for _, id := range suite.IDs() {
		s, _ := suite.Lookup(id)
		k, _ := s.GenerateRecipientKey()
		f.Add(MarshalPublicKeyFile(k.Public(), 1))
		priv, _ := MarshalPrivateKeyFile(k, 2, nil)
		f.Add(priv)
	}
	f.Add([]byte("-----BEGIN PHIX RECIPIENT PRIVATE KEY-----\nSuite: gm\nKey-Id: x\nKey-Version: 1\nEncryption: argon2id\nArgon2-Params: t=99,m=99999999,p=1\n\nAAAA\n-----END PHIX RECIPIENT PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// No passphrase: the fuzzer must not make us run Argon2 on every input.
		kf, err := ParseKeyFile(b, nil)
		if err != nil {
			if Code(err) == "" && !errors.Is(err, suite.ErrUnknownSuite) {
				t.Fatalf("error without a code: %v", err)
			}
			return
		}
		if kf.Public == nil || kf.Public.Suite() != kf.Suite.ID() {
			t.Fatal("inconsistent key file")
		}
	})
}
