package errcode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTableComplete(t *testing.T) {
	all := All()
	if len(all) != 18 {
		t.Fatalf("%d codes, want 18", len(all))
	}
	for i, d := range all {
		want := Code(fmt.Sprintf("PHI-%d", 6001+i))
		if d.Code != want || d.Name == "" || d.Description == "" || d.Status < 400 || d.IssueCode == "" {
			t.Errorf("row %d = %+v", i, d)
		}
	}
	for c, lock := range map[Code]time.Duration{ConsentSignatureInvalid: 900 * time.Second, HMACVerificationFailed: 900 * time.Second, PHIEncryptionRequired: 0} {
		if d, _ := Lookup(c); d.Lockout != lock {
			t.Errorf("%s lockout %v", c, d.Lockout)
		}
	}
	if d, _ := Lookup(AuditLogRequired); !d.Immediate {
		t.Error("PHI-6012 not immediate")
	}
	for _, c := range []Code{FHIRValidationFailed, DeidentificationFailed} {
		if d, _ := Lookup(c); d.Retries != 1 {
			t.Errorf("%s retries %d", c, d.Retries)
		}
	}
}

func TestOperationOutcomeAndProblem(t *testing.T) {
	err := fmt.Errorf("read: %w", New(HMACVerificationFailed, "Patient/1 version 2"))
	if CodeOf(err) != HMACVerificationFailed || Status(err) != 500 {
		t.Fatalf("CodeOf/Status = %s/%d", CodeOf(err), Status(err))
	}
	if !errors.Is(err, &Error{Code: HMACVerificationFailed}) {
		t.Fatal("errors.Is by code")
	}
	oo := OperationOutcome(err)
	b, _ := json.Marshal(oo)
	for _, want := range []string{`"system":"urn:phix:error"`, `"code":"PHI-6005"`, `"resourceType":"OperationOutcome"`, "FHIR resource HMAC invalid"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("outcome %s lacks %s", b, want)
		}
	}
	p := Problem(err)
	if p["type"] != "urn:phix:error:PHI-6005" || p["status"] != 500 || p["title"] != "HMAC_VERIFICATION_FAILED" {
		t.Errorf("problem %v", p)
	}
	// A foreign error is never echoed.
	secret := errors.New("Zhang San 13800138000")
	b, _ = json.Marshal(OperationOutcome(secret))
	pb, _ := json.Marshal(Problem(secret))
	if strings.Contains(string(b)+string(pb), "Zhang") {
		t.Error("foreign error text leaked")
	}
}

func TestLockout(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	l := NewLockout()
	l.Now = func() time.Time { return now }
	tests := []struct {
		err    error
		locked bool
	}{
		{New(PHIEncryptionRequired, ""), false},
		{New(ConsentSignatureInvalid, ""), true},
		{New(HMACVerificationFailed, ""), true},
		{errors.New("other"), false},
	}
	for i, tc := range tests {
		p := fmt.Sprint("user", i)
		set, err := l.Record(ctx, p, tc.err)
		if err != nil || set != tc.locked {
			t.Fatalf("%d: Record = %v, %v", i, set, err)
		}
		if got := l.Check(ctx, p) != nil; got != tc.locked {
			t.Fatalf("%d: locked = %v", i, got)
		}
	}
	now = now.Add(899 * time.Second)
	if err := l.Check(ctx, "user1"); CodeOf(err) != ConsentSignatureInvalid {
		t.Fatalf("at 899s: %v", err)
	}
	now = now.Add(time.Second)
	if err := l.Check(ctx, "user1"); err != nil {
		t.Fatalf("at 900s: %v", err)
	}
	if _, err := l.Record(ctx, "op", New(AuditLogRequired, "")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(24 * time.Hour)
	if err := l.Check(ctx, "op"); CodeOf(err) != AuditLogRequired {
		t.Fatalf("immediate lock expired: %v", err)
	}
	_ = l.Store.Clear(ctx, "op")
	if err := l.Check(ctx, "op"); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryLockoutsBounded(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryLockouts(3)
	now := time.Now()
	for i := 0; i < 10; i++ {
		_ = m.Lock(ctx, fmt.Sprint(i), now.Add(time.Duration(i+1)*time.Minute), HMACVerificationFailed)
	}
	if len(m.locks) > 3 {
		t.Fatalf("%d locks kept", len(m.locks))
	}
	if _, _, ok, _ := m.Locked(ctx, "9", now); !ok {
		t.Fatal("newest lock evicted")
	}
}
