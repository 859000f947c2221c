package suite

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func allSuites(t testing.TB) []Suite {
	t.Helper()
	var out []Suite
	for _, id := range IDs() {
		s, err := Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		id   ID
		wire byte
	}{{Intl, WireIntl}, {GM, WireGM}} {
		s, err := Lookup(tc.id)
		if err != nil || s.ID() != tc.id || s.Wire() != tc.wire {
			t.Fatalf("Lookup(%q) = %v, %v", tc.id, s, err)
		}
		w, err := FromWire(tc.wire)
		if err != nil || w.ID() != tc.id {
			t.Fatalf("FromWire(%d) = %v, %v", tc.wire, w, err)
		}
	}
	for _, bad := range []ID{"", "INTL", "sm", "aes"} {
		if _, err := Lookup(bad); !errors.Is(err, ErrUnknownSuite) {
			t.Errorf("Lookup(%q) err = %v", bad, err)
		}
	}
	for _, bad := range []byte{0, 3, 0xff} {
		if _, err := FromWire(bad); !errors.Is(err, ErrUnknownSuite) {
			t.Errorf("FromWire(%d) err = %v", bad, err)
		}
	}
}

// Known answers from the standards, so a wrong algorithm behind the right
// name cannot pass.
func TestKnownAnswers(t *testing.T) {
	intl, _ := Lookup(Intl)
	gm, _ := Lookup(GM)
	sum := func(s Suite, msg string) []byte { h := s.NewHash(); h.Write([]byte(msg)); return h.Sum(nil) }
	// FIPS 180-2 and GB/T 32905 appendix A example 1.
	if got, want := sum(intl, "abc"), mustHex(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"); !bytes.Equal(got, want) {
		t.Errorf("SHA-256(abc) = %x", got)
	}
	if got, want := sum(gm, "abc"), mustHex(t, "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"); !bytes.Equal(got, want) {
		t.Errorf("SM3(abc) = %x", got)
	}
	// RFC 5869 test case 1 (HKDF-SHA256).
	okm, err := intl.KDF(mustHex(t, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"), mustHex(t, "000102030405060708090a0b0c"), mustHex(t, "f0f1f2f3f4f5f6f7f8f9"), 42)
	if err != nil || !bytes.Equal(okm, mustHex(t, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")) {
		t.Errorf("HKDF-SHA256 = %x, %v", okm, err)
	}
	// HMAC-SHA3-384: RFC 4231-style key/data pair, value from the NIST HMAC
	// example set (HMAC_SHA3-384.pdf, sample #1 truncated to 48 bytes).
	key := make([]byte, 48)
	for i := range key {
		key[i] = byte(i)
	}
	m := intl.NewMAC(key)
	m.Write([]byte("Sample message for keylen<blocklen"))
	if got, want := m.Sum(nil), mustHex(t, "d588a3c51f3f2d906e8298c1199aa8ff6296218127f6b38a90b6afe2c5617725bc99987f79b22a557b6520db710b7f42"); !bytes.Equal(got, want) {
		t.Errorf("HMAC-SHA3-384 = %x", got)
	}
	if intl.MACSize() != 48 || gm.MACSize() != 32 || intl.HashSize() != 32 || gm.HashSize() != 32 {
		t.Error("sizes")
	}
	// AEAD sizes and bounds (known answers in TestAEADKnownAnswers).
	for _, s := range []Suite{intl, gm} {
		a, err := s.NewAEAD(make([]byte, s.AEADKeySize()))
		if err != nil || a.NonceSize() != 12 || a.Overhead() != 16 {
			t.Fatalf("%s AEAD: %v", s.ID(), err)
		}
		if _, err := s.NewAEAD(make([]byte, s.AEADKeySize()+1)); !errors.Is(err, ErrKeySize) {
			t.Errorf("%s AEAD wrong key size: %v", s.ID(), err)
		}
		if _, err := s.KDF([]byte("x"), nil, nil, 0); !errors.Is(err, ErrKDF) {
			t.Errorf("%s KDF(0): %v", s.ID(), err)
		}
		if _, err := s.KDF([]byte("x"), nil, nil, 255*32+1); !errors.Is(err, ErrKDF) {
			t.Errorf("%s KDF(too long): %v", s.ID(), err)
		}
	}
}

func TestSignatures(t *testing.T) {
	ed, err := GenerateEd25519()
	if err != nil {
		t.Fatal(err)
	}
	type kit struct {
		name      string
		gen       func() (SigningKey, error)
		parseSK   func([]byte) (SigningKey, error)
		parseVK   func([]byte) (VerifyKey, error)
		algorithm string
	}
	var kits []kit
	for _, s := range allSuites(t) {
		kits = append(kits, kit{string(s.ID()), s.GenerateSigningKey, s.ParseSigningKey, s.ParseVerifyKey, s.SignatureAlgorithm()})
	}
	kits = append(kits, kit{"ed25519", func() (SigningKey, error) { return ed, nil }, ParseEd25519SigningKey, ParseEd25519VerifyKey, Ed25519Algorithm})
	msg := []byte("manifest: sha256=...")
	for _, k := range kits {
		t.Run(k.name, func(t *testing.T) {
			sk, err := k.gen()
			if err != nil {
				t.Fatal(err)
			}
			if sk.Algorithm() != k.algorithm || len(sk.KeyID()) != 2*KeyIDSize || sk.KeyID() != sk.Public().KeyID() {
				t.Fatalf("key metadata: %s %s", sk.Algorithm(), sk.KeyID())
			}
			sig, err := sk.Sign(msg)
			if err != nil {
				t.Fatal(err)
			}
			// Through the encodings.
			sk2, err := k.parseSK(sk.Bytes())
			if err != nil || sk2.KeyID() != sk.KeyID() {
				t.Fatalf("parse private: %v", err)
			}
			vk, err := k.parseVK(sk.Public().Bytes())
			if err != nil || vk.KeyID() != sk.KeyID() {
				t.Fatalf("parse public: %v", err)
			}
			if !vk.Verify(msg, sig) {
				t.Fatal("valid signature refused")
			}
			sig2, _ := sk2.Sign(msg)
			if !vk.Verify(msg, sig2) {
				t.Fatal("signature from parsed key refused")
			}
			bad := append([]byte(nil), sig...)
			bad[len(bad)/2] ^= 1
			if vk.Verify(msg, bad) || vk.Verify(append(msg, 'x'), sig) || vk.Verify(msg, nil) || vk.Verify(msg, sig[:len(sig)-1]) {
				t.Fatal("bad signature accepted")
			}
			other, _ := k.gen()
			if k.name != "ed25519" && other.Public().Verify(msg, sig) {
				t.Fatal("signature verified under another key")
			}
			for _, b := range [][]byte{nil, {1, 2, 3}, make([]byte, 4000)} {
				if _, err := k.parseVK(b); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("parse public %d bytes: %v", len(b), err)
				}
				if _, err := k.parseSK(b); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("parse private %d bytes: %v", len(b), err)
				}
			}
		})
	}
}

// An SM2 signature binds the signer's user id (ZA): a verifier with a
// different id refuses it.
func TestSM2UserID(t *testing.T) {
	def, _ := Lookup(GM)
	custom, err := NewGM([]byte("hospital-a@phix"))
	if err != nil {
		t.Fatal(err)
	}
	sk, _ := custom.GenerateSigningKey()
	msg := []byte("consent")
	sig, _ := sk.Sign(msg)
	vkCustom, _ := custom.ParseVerifyKey(sk.Public().Bytes())
	vkDefault, _ := def.ParseVerifyKey(sk.Public().Bytes())
	if !vkCustom.Verify(msg, sig) {
		t.Fatal("same uid refused")
	}
	if vkDefault.Verify(msg, sig) {
		t.Fatal("different uid accepted")
	}
	if _, err := NewGM([]byte{}); err == nil {
		t.Fatal("empty uid accepted")
	}
	if _, err := NewGM(make([]byte, maxSM2UserID+1)); err == nil {
		t.Fatal("overlong uid accepted")
	}
}

func TestKeyWrap(t *testing.T) {
	suites := allSuites(t)
	for i, s := range suites {
		other := suites[(i+1)%len(suites)]
		t.Run(string(s.ID()), func(t *testing.T) {
			rk, err := s.GenerateRecipientKey()
			if err != nil {
				t.Fatal(err)
			}
			rk2, err := s.ParseRecipientKey(rk.Bytes())
			if err != nil || rk2.KeyID() != rk.KeyID() {
				t.Fatalf("parse private: %v", err)
			}
			pub, err := s.ParseRecipientPublicKey(rk.Public().Bytes())
			if err != nil || pub.KeyID() != rk.KeyID() {
				t.Fatalf("parse public: %v", err)
			}
			dk := bytes.Repeat([]byte{7}, s.AEADKeySize())
			aad := []byte("header")
			w, err := s.WrapKey(pub, dk, aad)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.UnwrapKey(rk2, w, aad)
			if err != nil || !bytes.Equal(got, dk) {
				t.Fatalf("unwrap: %v", err)
			}
			w2, _ := s.WrapKey(pub, dk, aad)
			if bytes.Equal(w, w2) {
				t.Fatal("wrap is deterministic")
			}
			wrong, _ := s.GenerateRecipientKey()
			otherKey, _ := other.GenerateRecipientKey()
			flipped := append([]byte(nil), w...)
			flipped[len(flipped)-1] ^= 1
			flippedEarly := append([]byte(nil), w...)
			flippedEarly[10] ^= 1
			for name, tc := range map[string]struct {
				k   RecipientKey
				w   []byte
				aad []byte
			}{
				"wrong recipient": {wrong, w, aad},
				"wrong aad":       {rk, w, []byte("other")},
				"tampered tag":    {rk, flipped, aad},
				"tampered enc":    {rk, flippedEarly, aad},
				"truncated":       {rk, w[:len(w)-1], aad},
				"empty":           {rk, nil, aad},
			} {
				if _, err := s.UnwrapKey(tc.k, tc.w, tc.aad); !errors.Is(err, ErrUnwrap) {
					t.Errorf("%s: err = %v", name, err)
				}
			}
			if _, err := s.UnwrapKey(otherKey, w, aad); !errors.Is(err, ErrWrongSuite) {
				t.Errorf("other suite key: %v", err)
			}
			if _, err := s.WrapKey(otherKey.Public(), dk, aad); !errors.Is(err, ErrWrongSuite) {
				t.Errorf("wrap for other suite key: %v", err)
			}
			for _, b := range [][]byte{nil, {4}, make([]byte, 65)} {
				if _, err := s.ParseRecipientPublicKey(b); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("parse public %d bytes: %v", len(b), err)
				}
			}
		})
	}
}

func TestEqual(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{{"", "", true}, {"abc", "abc", true}, {"abc", "abd", false}, {"abc", "ab", false}} {
		if Equal([]byte(tc.a), []byte(tc.b)) != tc.want || EqualString(tc.a, tc.b) != tc.want {
			t.Errorf("Equal(%q,%q)", tc.a, tc.b)
		}
	}
	b := []byte{1, 2}
	Wipe(b)
	if b[0] != 0 || b[1] != 0 {
		t.Error("Wipe")
	}
}

func TestKeyID(t *testing.T) {
	a := KeyID(Intl, "X", []byte{1})
	if a != KeyID(Intl, "X", []byte{1}) || a == KeyID(GM, "X", []byte{1}) || a == KeyID(Intl, "Y", []byte{1}) || a == KeyID(Intl, "X", []byte{2}) {
		t.Fatal("KeyID does not separate inputs")
	}
}

func TestNilKeys(t *testing.T) {
	for _, s := range allSuites(t) {
		if _, err := s.WrapKey(nil, make([]byte, 32), nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s WrapKey(nil): %v", s.ID(), err)
		}
		if _, err := s.UnwrapKey(nil, make([]byte, 32), nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s UnwrapKey(nil): %v", s.ID(), err)
		}
	}
}

// AEAD known answers: AES-256-GCM (McGrew & Viega test case 16) and SM4-GCM
// (RFC 8998 A.1).
func TestAEADKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		id                   ID
		key, iv, pt, aad, ct string
	}{
		{Intl, "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
			"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
			"feedfacedeadbeeffeedfacedeadbeefabaddad2",
			"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662" + "76fc6ece0f4e1768cddf8853bb2d551b"},
		{GM, "0123456789abcdeffedcba9876543210", "00001234567800000000abcd",
			"aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccddddddddddddddddeeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa",
			"feedfacedeadbeeffeedfacedeadbeefabaddad2",
			"17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d83de3541e4c2b58177e065a9bf7b62ec"},
	} {
		s, _ := Lookup(tc.id)
		a, err := s.NewAEAD(mustHex(t, tc.key))
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Seal(nil, mustHex(t, tc.iv), mustHex(t, tc.pt), mustHex(t, tc.aad)); !bytes.Equal(got, mustHex(t, tc.ct)) {
			t.Errorf("%s AEAD = %x", tc.id, got)
		}
	}
}

// foreignPub is a recipient public key implemented outside this package.
type foreignPub struct{ RecipientPublicKey }

func TestWrapForForeignPublicKey(t *testing.T) {
	for _, s := range allSuites(t) {
		rk, _ := s.GenerateRecipientKey()
		w, err := s.WrapKey(foreignPub{rk.Public()}, []byte("0123456789abcdef0123456789abcdef"), []byte("aad"))
		if err != nil {
			t.Fatalf("%s: %v", s.ID(), err)
		}
		if dk, err := s.UnwrapKey(rk, w, []byte("aad")); err != nil || string(dk) != "0123456789abcdef0123456789abcdef" {
			t.Fatalf("%s unwrap: %v", s.ID(), err)
		}
	}
	var typedNil *hpkePublic
	if _, err := intlSuite.WrapKey(typedNil, make([]byte, 32), nil); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("typed nil: %v", err)
	}
}
