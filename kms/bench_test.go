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

// interleaved runs op and its peer alternately, timing each, so load changes
// on a shared machine hit both alike; it reports the op's time, the peer's
// and their ratio.
func interleaved(b *testing.B, unit string, op, peer func()) {
	var opNs, peerNs time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		op()
		t1 := time.Now()
		peer()
		opNs += t1.Sub(t0)
		peerNs += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(opNs)/n, "op-ns")
	b.ReportMetric(float64(peerNs)/n, "peer-ns")
	b.ReportMetric(float64(opNs)/float64(peerNs), unit)
}

// BenchmarkWrapUnwrapLocal wraps and unwraps a data key through the Manager
// (the store lookup included); the peer is a bare suite AEAD seal+open of
// the same key.
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
			kek := make([]byte, s.AEADKeySize())
			interleaved(b, "x-bare-aead", func() {
				blob, err := e.m.WrapKey(ctx, "h", "k", key)
				if err != nil {
					b.Fatal(err)
				}
				got, err := e.m.UnwrapKey(ctx, blob, "k")
				if err != nil || !bytes.Equal(got, key) {
					b.Fatal(err)
				}
			}, func() {
				a, _ := s.NewAEAD(kek)
				nonce := make([]byte, a.NonceSize())
				_, _ = rand.Read(nonce)
				ct := a.Seal(nil, nonce, key, []byte("header"))
				if _, err := a.Open(nil, nonce, ct, []byte("header")); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkDeriveHMACKey derives seed 002's per-resource HMAC key through the
// Manager (KEK lookup included); the peer is the two bare HKDF-Expand calls.
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
			interleaved(b, "x-bare-hkdf", func() {
				if _, err := e.m.DeriveHMACKey(ctx, "h", "pat-1", "Observation", "obs-1"); err != nil {
					b.Fatal(err)
				}
			}, func() {
				p, _ := hkdf.Expand(s.NewHash, master, "FHIR-HMAC"+"pat-1"+"v1", 48)
				if _, err := kms.DeriveResourceHMACKey(s, p, "Observation", "obs-1"); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
