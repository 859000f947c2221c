//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"phix/kms"
)

func wantCode(t testing.TB, err error, c kms.Code) {
	t.Helper()
	if kms.CodeOf(err) != c {
		t.Fatalf("error %v, want code %s", err, c)
	}
}

func TestWrapUnwrap(t *testing.T) {
	ctx := context.Background()
	cfg, _ := softHSM(t)
	b := openHSM(t, cfg)
	ref := kms.KEKRef{KEK: "h/data", Version: 1, Suite: "intl"}
	h, err := b.NewKEK(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{0x42}, 32)
	w, err := b.Wrap(ctx, ref, h, key, []byte("header"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(w, key) {
		t.Fatal("payload holds the key")
	}
	got, err := b.Unwrap(ctx, ref, h, w, []byte("header"))
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("Unwrap = %x, %v", got, err)
	}
	_, err = b.Unwrap(ctx, ref, h, w, []byte("other header"))
	wantCode(t, err, kms.CodeUnwrapFailed)
	bad := bytes.Clone(w)
	bad[len(bad)-1] ^= 1
	_, err = b.Unwrap(ctx, ref, h, bad, []byte("header"))
	wantCode(t, err, kms.CodeUnwrapFailed)
	_, err = b.Unwrap(ctx, ref, h, w[:20], []byte("header"))
	wantCode(t, err, kms.CodeUnwrapFailed)
	// The session recovers after failed operations.
	if got, err := b.Unwrap(ctx, ref, h, w, []byte("header")); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("after failures: %v", err)
	}

	// A second KEK cannot open the first one's payloads.
	ref2 := kms.KEKRef{KEK: "h/data", Version: 2, Suite: "intl"}
	h2, _ := b.NewKEK(ctx, ref2)
	_, err = b.Unwrap(ctx, ref2, h2, w, []byte("header"))
	wantCode(t, err, kms.CodeUnwrapFailed)

	// A new session pool (another process) finds the key by its handle.
	b2 := openHSM(t, cfg)
	if got, err := b2.Unwrap(ctx, ref, h, w, []byte("header")); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("second backend: %v", err)
	}

	// Destroy: the object is gone from the token.
	if err := b.DestroyKEK(ctx, ref, h); err != nil {
		t.Fatal(err)
	}
	if ok, err := b2.Exists(ctx, h); err != nil || ok {
		t.Fatalf("object still exists (%v)", err)
	}
	_, err = b.Unwrap(ctx, ref, h, w, []byte("header"))
	wantCode(t, err, kms.CodeDestroyed)
	if err := b.DestroyKEK(ctx, ref, h); err != nil {
		t.Fatalf("destroying twice: %v", err)
	}
}

// TestKEKNeverLeaves checks the object's attributes and that the token
// refuses to reveal its value.
func TestKEKNeverLeaves(t *testing.T) {
	ctx := context.Background()
	cfg, _ := softHSM(t)
	b := openHSM(t, cfg)
	ref := kms.KEKRef{KEK: "h/data", Version: 1, Suite: "intl"}
	h, err := b.NewKEK(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.ExportKEK(ctx, ref, h)
	wantCode(t, err, kms.CodeNotExportable)

	sh, _ := b.session(ctx)
	defer b.done(sh)
	obj, err := b.object(sh, ref, h)
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := b.ctx.GetAttributeValue(sh, obj, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_SENSITIVE, nil),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
		p11.NewAttribute(p11.CKA_NEVER_EXTRACTABLE, nil),
		p11.NewAttribute(p11.CKA_TOKEN, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 0, 1, 1}
	for i, a := range attrs {
		if len(a.Value) != 1 || a.Value[0] != want[i] {
			t.Fatalf("attribute %#x = %v, want %d", a.Type, a.Value, want[i])
		}
	}
	if _, err := b.ctx.GetAttributeValue(sh, obj, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)}); err == nil {
		t.Fatal("the token revealed CKA_VALUE")
	}
}

func TestGMNeedsOptIn(t *testing.T) {
	ctx := context.Background()
	cfg, _ := softHSM(t)
	b := openHSM(t, cfg)
	gm := kms.KEKRef{KEK: "h/data", Version: 1, Suite: "gm"}
	_, err := b.NewKEK(ctx, gm)
	wantCode(t, err, kms.CodeUnsupported)
	_, err = b.NewKEK(ctx, kms.KEKRef{KEK: "h/data", Version: 1, Suite: "rot13"})
	wantCode(t, err, kms.CodeUnknownSuite)

	cfg.AllowAESWrapForGM = true
	b2 := openHSM(t, cfg)
	h, err := b2.NewKEK(ctx, gm)
	if err != nil {
		t.Fatal(err)
	}
	sm4 := bytes.Repeat([]byte{3}, 16)
	w, err := b2.Wrap(ctx, gm, h, sm4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b2.Unwrap(ctx, gm, h, w, nil); err != nil || !bytes.Equal(got, sm4) {
		t.Fatalf("gm unwrap: %v", err)
	}
	// Without the opt-in, the same keyring's gm keys are refused, not used.
	_, err = b.Unwrap(ctx, gm, h, w, nil)
	wantCode(t, err, kms.CodeUnsupported)
}

func TestBadConfig(t *testing.T) {
	cfg, _ := softHSM(t)
	bad := cfg
	bad.PIN = "00000000"
	_, err := Open(bad)
	wantCode(t, err, kms.CodeWrongMasterKey)
	bad = cfg
	bad.TokenLabel = "no-such-token"
	_, err = Open(bad)
	wantCode(t, err, kms.CodeNotFound)
	bad = cfg
	bad.PIN = ""
	_, err = Open(bad)
	wantCode(t, err, kms.CodeBadInput)
	bad = cfg
	bad.Module = "/nonexistent/libp11.so"
	_, err = Open(bad)
	wantCode(t, err, kms.CodeBackend)
}

// TestConcurrentSessions shares one backend (a pool of 2 sessions) among 8
// goroutines.
func TestConcurrentSessions(t *testing.T) {
	ctx := context.Background()
	cfg, _ := softHSM(t)
	cfg.Sessions = 2
	b := openHSM(t, cfg)
	ref := kms.KEKRef{KEK: "h/data", Version: 1, Suite: "intl"}
	h, err := b.NewKEK(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			key := bytes.Repeat([]byte{byte(g)}, 32)
			for range 40 {
				w, err := b.Wrap(ctx, ref, h, key, []byte{byte(g)})
				if err != nil {
					errs <- err
					return
				}
				got, err := b.Unwrap(ctx, ref, h, w, []byte{byte(g)})
				if err != nil || !bytes.Equal(got, key) {
					errs <- fmt.Errorf("goroutine %d: %v", g, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
