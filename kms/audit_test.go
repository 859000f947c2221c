package kms_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"phix/kms"
)

// memAuditor collects operations; failing makes Record fail.
type memAuditor struct {
	mu      sync.Mutex
	ops     []kms.Op
	failing bool
}

func (a *memAuditor) Record(_ context.Context, op kms.Op) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failing {
		return errors.New("audit log unavailable")
	}
	a.ops = append(a.ops, op)
	return nil
}

func TestAuditor(t *testing.T) {
	ctx := kms.WithActor(context.Background(), "svc-fhir")
	e := newEnv(t)
	aud := &memAuditor{}
	m, err := kms.Open(ctx, kms.Config{Store: e.st, Backend: e.be, Auditor: aud})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.InitHospital(ctx, "h", "intl"); err != nil {
		t.Fatal(err)
	}
	k1, err := m.EnsureDataKey(ctx, "h", kms.KindPatient, "p1")
	if err != nil {
		t.Fatal(err)
	}
	k1again, err := m.EnsureDataKey(ctx, "h", kms.KindPatient, "p1")
	if err != nil || string(k1) != string(k1again) {
		t.Fatalf("EnsureDataKey is not stable: %v", err)
	}
	if len(aud.ops) != len(kms.Purposes())+1 || aud.ops[len(aud.ops)-1].Action != "create-data-key" || aud.ops[0].Actor != "svc-fhir" {
		t.Fatalf("auditor saw %+v", aud.ops)
	}
	// The default store log was not used: the auditor replaces it.
	if ops, _ := e.st.Ops(ctx, 0, 100); len(ops) != 0 {
		t.Fatalf("store log has %d entries", len(ops))
	}

	// An auditor that fails fails the operation, and leaves no unrecorded key.
	aud.failing = true
	_, err = m.NewDataKey(ctx, "h", kms.KindPatient, "p2")
	wantCode(t, err, kms.CodeBackend)
	if _, err := e.st.DataKey(ctx, "h/patient/p2"); kms.CodeOf(err) != kms.CodeNotFound {
		t.Fatalf("unrecorded data key left behind: %v", err)
	}
}
