package seal

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
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
