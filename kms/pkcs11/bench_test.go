//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"phix/kms"
	"phix/kms/keyring"
	"phix/kms/sqlstore"
)

// BenchmarkWrapUnwrapHSM wraps and unwraps a 32-byte data key in SoftHSM2
// (backend only), interleaved with the same round trip on the local keyring
// backend, and reports both and their ratio.
func BenchmarkWrapUnwrapHSM(b *testing.B) {
	ctx := context.Background()
	cfg, _ := softHSM(b)
	hsm := openHSM(b, cfg)
	ref := kms.KEKRef{KEK: "h/data", Version: 1, Suite: "intl"}
	h, err := hsm.NewKEK(ctx, ref)
	if err != nil {
		b.Fatal(err)
	}
	local := localBackend(b)
	lh, err := local.NewKEK(ctx, ref)
	if err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	roundTrip := func(be kms.Backend, handle []byte) {
		w, err := be.Wrap(ctx, ref, handle, key, []byte("header"))
		if err != nil {
			b.Fatal(err)
		}
		got, err := be.Unwrap(ctx, ref, handle, w, []byte("header"))
		if err != nil || !bytes.Equal(got, key) {
			b.Fatal(err)
		}
	}
	var hsmNs, localNs time.Duration
	for b.Loop() {
		t0 := time.Now()
		roundTrip(hsm, h)
		t1 := time.Now()
		roundTrip(local, lh)
		hsmNs += t1.Sub(t0)
		localNs += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(hsmNs)/n, "hsm-ns")
	b.ReportMetric(float64(localNs)/n, "local-ns")
	b.ReportMetric(float64(hsmNs)/float64(localNs), "x-local")
}

func localBackend(b *testing.B) *keyring.Backend {
	ctx := context.Background()
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(b.TempDir(), "k.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	mk := make([]byte, 32)
	_, _ = rand.Read(mk)
	m, _ := keyring.MasterKey(mk)
	be, err := keyring.Open(ctx, st, m, keyring.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return be
}
