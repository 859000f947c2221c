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

// BenchmarkBulk measures each suite's hash and AEAD over 1 MiB buffers:
// the per-byte floor of a transfer, which hashes every byte in three
// places one after the other (sender, coordinator, receiver) and seals
// and opens it once (see BENCHMARKS.md, issue #9).
//
//	go test ./suite -run '^$' -bench Bulk -count 5
func BenchmarkBulk(b *testing.B) {
	buf := make([]byte, 1<<20)
	for _, s := range allSuites(b) {
		b.Run(string(s.ID())+"/hash", func(b *testing.B) {
			h := s.NewHash()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				h.Write(buf)
			}
		})
		aead, err := s.NewAEAD(make([]byte, s.AEADKeySize()))
		if err != nil {
			b.Fatal(err)
		}
		nonce := make([]byte, aead.NonceSize())
		out := make([]byte, 0, len(buf)+aead.Overhead())
		b.Run(string(s.ID())+"/seal", func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				aead.Seal(out[:0], nonce, buf, nil)
			}
		})
		sealed := aead.Seal(nil, nonce, buf, nil)
		b.Run(string(s.ID())+"/open", func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := aead.Open(out[:0], nonce, sealed, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
