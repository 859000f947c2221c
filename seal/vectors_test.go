package seal

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/cryptotest"

	"phix/suite"
)

var updateVectors = flag.Bool("update", false, "rewrite seal/testdata/vectors.json")

// vector is one committed test vector. All byte fields are hex.
type vector struct {
	Name             string `json:"name"`
	Suite            string `json:"suite"`
	RecipientPrivate string `json:"recipient_private_key"`
	RecipientPublic  string `json:"recipient_public_key"`
	RecipientKeyID   string `json:"recipient_key_id"`
	KeyVersion       uint32 `json:"key_version"`
	KEKID            string `json:"kek_id,omitempty"`
	KEK              string `json:"kek,omitempty"`
	RandomSeed       uint64 `json:"random_seed"`
	DataKey          string `json:"data_key"`
	Salt             string `json:"salt"`
	NoncePrefix      string `json:"nonce_prefix"`
	SegmentSize      int    `json:"segment_size"`
	Plaintext        string `json:"plaintext"`
	Sealed           string `json:"sealed"`
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// vectorInputs are the fixed inputs; sealed output is computed from them.
func vectorInputs() []vector {
	var vs []vector
	for _, c := range []struct {
		suite suite.ID
		name  string
		n     int
		kek   bool
	}{
		{suite.Intl, "intl-empty", 0, false},
		{suite.Intl, "intl-3-segments", 300, false},
		{suite.Intl, "intl-exact-2-segments-and-kek", 256, true},
		{suite.GM, "gm-empty", 0, false},
		{suite.GM, "gm-3-segments", 300, false},
		{suite.GM, "gm-exact-2-segments-and-kek", 256, true},
	} {
		v := vector{
			Name: c.name, Suite: string(c.suite), KeyVersion: 7, RandomSeed: 0x5eed,
			RecipientPrivate: hex.EncodeToString(pattern(32, 0x11)),
			DataKey:          hex.EncodeToString(pattern(DataKeySize, 0x21)),
			Salt:             hex.EncodeToString(pattern(SaltSize, 0x31)),
			NoncePrefix:      hex.EncodeToString(pattern(NoncePrefixSize, 0x41)),
			SegmentSize:      128,
			Plaintext:        hex.EncodeToString(pattern(c.n, 0x51)),
		}
		if c.kek {
			s, _ := suite.Lookup(c.suite)
			v.KEKID, v.KEK = "hospital-a/kek", hex.EncodeToString(pattern(s.AEADKeySize(), 0x61))
		}
		vs = append(vs, v)
	}
	return vs
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// build seals v's inputs with the global random source fixed.
func (v *vector) build(t *testing.T) ([]byte, suite.RecipientKey, Identity) {
	t.Helper()
	s, err := suite.Lookup(suite.ID(v.Suite))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := s.ParseRecipientKey(unhex(t, v.RecipientPrivate))
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Suite: s, SegmentSize: v.SegmentSize,
		Recipients: []Recipient{PublicKeyRecipient(priv.Public(), v.KeyVersion)},
		dataKey:    unhex(t, v.DataKey), salt: unhex(t, v.Salt), noncePrefix: unhex(t, v.NoncePrefix),
	}
	var kekID Identity
	if v.KEK != "" {
		kek := unhex(t, v.KEK)
		opts.Recipients = append(opts.Recipients, KEKRecipient(v.KEKID, v.KeyVersion, kek))
		kekID = KEKIdentity(func(id string) bool { return id == v.KEKID }, func(string, uint32) ([]byte, error) { return kek, nil })
	}
	cryptotest.SetGlobalRandom(t, v.RandomSeed)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(unhex(t, v.Plaintext))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), priv, kekID
}

const vectorsFile = "testdata/vectors.json"

// TestVectors reproduces the committed vectors byte for byte and opens them.
// Run with -update to rewrite them after a deliberate format change.
func TestVectors(t *testing.T) {
	if *updateVectors {
		vs := vectorInputs()
		for i := range vs {
			sealed, priv, _ := vs[i].build(t)
			vs[i].Sealed = hex.EncodeToString(sealed)
			vs[i].RecipientPublic = hex.EncodeToString(priv.Public().Bytes())
			vs[i].RecipientKeyID = priv.KeyID()
		}
		b, _ := json.MarshalIndent(vs, "", "  ")
		if err := os.WriteFile(filepath.FromSlash(vectorsFile), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.FromSlash(vectorsFile))
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != len(vectorInputs()) {
		t.Fatalf("%d vectors, want %d", len(vs), len(vectorInputs()))
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			sealed, priv, kekID := v.build(t)
			if got := hex.EncodeToString(priv.Public().Bytes()); got != v.RecipientPublic || priv.KeyID() != v.RecipientKeyID {
				t.Fatal("recipient public key or key id differs from the vector")
			}
			want := unhex(t, v.Sealed)
			if !bytes.Equal(sealed, want) {
				t.Fatalf("sealed output differs from the vector (got %d bytes, want %d)", len(sealed), len(want))
			}
			ids := []Identity{PrivateKeyIdentity(priv, v.KeyVersion)}
			if kekID != nil {
				ids = append(ids, kekID)
			}
			for _, id := range ids {
				r, err := NewReader(bytes.NewReader(want), id)
				if err != nil {
					t.Fatal(err)
				}
				pt, err := io.ReadAll(r)
				if err != nil || hex.EncodeToString(pt) != v.Plaintext {
					t.Fatalf("open: %v", err)
				}
			}
		})
	}
}
