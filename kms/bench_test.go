package kms_test

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"testing"
	"time"

	"phix/kms"
	"phix/suite"
)

// BenchmarkWrapUnwrapLocal wraps and unwraps a data key through the Manager
// (store lookups included) and reports the ratio to a bare suite AEAD
// seal+open of the same key measured in the same run.
func BenchmarkWrapUnwrapLocal(b *testing.B) {
	for _, sid := range []suite.ID{suite.Intl, suite.GM} {
		b.Run(string(sid), func(b *testing.B) {
			ctx := context.Background()
			e := newEnv(b)
			if _, err := e.m.InitHospital(ctx, "h", string(sid)); err != nil {
				b.Fatal(err)
			}
			s, _ := suite.Lookup(sid)
			key := make([]byte, s.AEADKeySize())
			_, _ = rand.Read(key)
			raw := rawAEADNanos(b, s, key)
			b.ResetTimer()
			for b.Loop() {
				blob, err := e.m.WrapKey(ctx, "h", "k", key)
				if err != nil {
					b.Fatal(err)
				}
				got, err := e.m.UnwrapKey(ctx, blob, "k")
				if err != nil || !bytes.Equal(got, key) {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/raw, "x-raw-aead")
		})
	}
}

// rawAEADNanos measures a bare AEAD seal+open of key under a fixed key.
func rawAEADNanos(b *testing.B, s suite.Suite, key []byte) float64 {
	kek := make([]byte, s.AEADKeySize())
	return rawNanos(func() {
		a, _ := s.NewAEAD(kek)
		nonce := make([]byte, a.NonceSize())
		_, _ = rand.Read(nonce)
		ct := a.Seal(nil, nonce, key, []byte("header"))
		if _, err := a.Open(nil, nonce, ct, []byte("header")); err != nil {
			b.Fatal(err)
		}
	})
}

// rawNanos times f over a fixed count: the peer figure of a ratio, measured
// in the same run as the benchmark it is compared with.
func rawNanos(f func()) float64 {
	const n = 20000
	start := time.Now()
	for range n {
		f()
	}
	return float64(time.Since(start).Nanoseconds()) / n
}

// BenchmarkDeriveHMACKey derives seed 002's per-resource HMAC key through
// the Manager and reports the ratio to the two bare HKDF-Expand calls.
func BenchmarkDeriveHMACKey(b *testing.B) {
	for _, sid := range []suite.ID{suite.Intl, suite.GM} {
		b.Run(string(sid), func(b *testing.B) {
			ctx := context.Background()
			e := newEnv(b)
			if _, err := e.m.InitHospital(ctx, "h", string(sid)); err != nil {
				b.Fatal(err)
			}
			s, _ := suite.Lookup(sid)
			master := make([]byte, 48)
			raw := rawNanos(func() {
				p, _ := hkdf.Expand(s.NewHash, master, "FHIR-HMAC"+"pat-1"+"v1", 48)
				if _, err := kms.DeriveResourceHMACKey(s, p, "Observation", "obs-1"); err != nil {
					b.Fatal(err)
				}
			})
			b.ResetTimer()
			for b.Loop() {
				if _, err := e.m.DeriveHMACKey(ctx, "h", "pat-1", "Observation", "obs-1"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/raw, "x-raw-hkdf")
			b.ReportMetric(raw, "raw-ns/op")
		})
	}
}
