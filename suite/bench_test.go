package suite

import (
	"crypto/sha3"
	"testing"
)

// canonical2K stands in for a 2 KiB canonical FHIR resource.
var canonical2K = make([]byte, 2048)

func BenchmarkMAC2KiB(b *testing.B) {
	for _, s := range allSuites(b) {
		b.Run(string(s.ID()), func(b *testing.B) {
			key := make([]byte, 48)
			b.SetBytes(int64(len(canonical2K)))
			for b.Loop() {
				m := s.NewMAC(key)
				m.Write(canonical2K)
				m.Sum(nil)
			}
		})
	}
	// The raw hash over the same bytes, for the ratio.
	b.Run("raw-sha3-384", func(b *testing.B) {
		b.SetBytes(int64(len(canonical2K)))
		for b.Loop() {
			sha3.Sum384(canonical2K)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	msg := make([]byte, 256)
	ed, _ := GenerateEd25519()
	kits := map[string]SigningKey{"ed25519": ed}
	for _, s := range allSuites(b) {
		k, _ := s.GenerateSigningKey()
		kits[s.SignatureAlgorithm()] = k
	}
	for name, k := range kits {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := k.Sign(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	msg := make([]byte, 256)
	ed, _ := GenerateEd25519()
	kits := map[string]SigningKey{"ed25519": ed}
	for _, s := range allSuites(b) {
		k, _ := s.GenerateSigningKey()
		kits[s.SignatureAlgorithm()] = k
	}
	for name, k := range kits {
		sig, _ := k.Sign(msg)
		vk := k.Public()
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if !vk.Verify(msg, sig) {
					b.Fatal("verify failed")
				}
			}
		})
	}
}

func BenchmarkWrapUnwrap(b *testing.B) {
	for _, s := range allSuites(b) {
		rk, _ := s.GenerateRecipientKey()
		dk := make([]byte, s.AEADKeySize())
		b.Run(string(s.ID())+"/wrap", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.WrapKey(rk.Public(), dk, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		w, _ := s.WrapKey(rk.Public(), dk, nil)
		b.Run(string(s.ID())+"/unwrap", func(b *testing.B) {
			for b.Loop() {
				if _, err := s.UnwrapKey(rk, w, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
