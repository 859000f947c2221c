package kms_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"phix/kms"
	"phix/suite"
)

func TestDualControl(t *testing.T) {
	ctx := kms.WithActor(context.Background(), "operator-1")
	e := newEnv(t)
	s, _ := suite.Lookup(suite.Intl)
	g, _ := suite.Lookup(suite.GM)
	if _, err := e.m.InitHospital(ctx, "h", "intl"); err != nil {
		t.Fatal(err)
	}
	alice := enroll(t, e.m, "alice", s)
	bob := enroll(t, e.m, "bob", g) // custodians may use either suite
	for _, r := range []string{"h/data", "h/hmac"} {
		if _, err := e.m.Rotate(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	// A third custodian needs the first two.
	mallorySK, _ := s.GenerateSigningKey()
	wantCode(t, e.m.EnrollCustodian(ctx, "mallory", "intl", mallorySK.Public().Bytes(), nil), kms.CodeApprovalRequired)
	carolSK, _ := s.GenerateSigningKey()
	carolID := carolSK.Public().KeyID()
	err := e.m.EnrollCustodian(ctx, "carol", "intl", carolSK.Public().Bytes(), []kms.Approval{
		alice.approve(t, kms.OpEnrollCustodian, "carol", 0, carolID, e.now),
		bob.approve(t, kms.OpEnrollCustodian, "carol", 0, carolID, e.now)})
	if err != nil {
		t.Fatal(err)
	}
	// Approvals name the enrolled key: they cannot enrol another key.
	err = e.m.EnrollCustodian(ctx, "dave", "intl", mallorySK.Public().Bytes(), []kms.Approval{
		alice.approve(t, kms.OpEnrollCustodian, "dave", 0, carolID, e.now),
		bob.approve(t, kms.OpEnrollCustodian, "dave", 0, carolID, e.now)})
	wantCode(t, err, kms.CodeApprovalInvalid)
	expired := alice.approve(t, kms.OpDestroyKEK, "h/data", 1, "", e.now.Add(-2*time.Hour))
	tampered := bob.approve(t, kms.OpDestroyKEK, "h/data", 1, "", e.now)
	tampered.Version = 2
	wrongOp := bob.approve(t, kms.OpExportKEK, "h/data", 1, "", e.now)
	longLived, _ := kms.SignApproval(bob.sk, "bob", kms.OpDestroyKEK, "h/data", 1, "", e.now, 30*24*time.Hour)
	unknown, _ := kms.SignApproval(mallorySK, "mallory", kms.OpDestroyKEK, "h/data", 1, "", e.now, time.Hour)
	forged := alice.approve(t, kms.OpDestroyKEK, "h/data", 1, "", e.now)
	forged.Custodian = "bob"
	badSig := alice.approve(t, kms.OpDestroyKEK, "h/data", 1, "", e.now)
	badSig.Signature = bytes.Clone(badSig.Signature)
	badSig.Signature[10] ^= 1
	a1 := alice.approve(t, kms.OpDestroyKEK, "h/data", 1, "", e.now)
	a1again := alice.approve(t, kms.OpDestroyKEK, "h/data", 1, "", e.now)
	b1 := bob.approve(t, kms.OpDestroyKEK, "h/data", 1, "", e.now)

	cases := []struct {
		name      string
		approvals []kms.Approval
		want      kms.Code
	}{
		{"none", nil, kms.CodeApprovalRequired},
		{"one", []kms.Approval{a1}, kms.CodeApprovalRequired},
		{"same custodian twice", []kms.Approval{a1, a1again}, kms.CodeApprovalInvalid},
		{"expired", []kms.Approval{expired, b1}, kms.CodeApprovalInvalid},
		{"statement altered", []kms.Approval{a1, tampered}, kms.CodeApprovalInvalid},
		{"other operation", []kms.Approval{a1, wrongOp}, kms.CodeApprovalInvalid},
		{"too long lived", []kms.Approval{a1, longLived}, kms.CodeApprovalInvalid},
		{"unknown custodian", []kms.Approval{a1, unknown}, kms.CodeApprovalInvalid},
		{"signed by someone else", []kms.Approval{a1, forged}, kms.CodeApprovalInvalid},
		{"bad signature", []kms.Approval{badSig, b1}, kms.CodeApprovalInvalid},
		{"two good and one forged", []kms.Approval{a1, b1, forged}, kms.CodeApprovalInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, e.m.DestroyKEKVersion(ctx, "h/data", 1, tc.approvals), tc.want)
			if v, _ := e.st.KEKVersion(ctx, "h/data", 1); !v.Destroyed.IsZero() {
				t.Fatal("destroyed without valid approvals")
			}
		})
	}
	// The failed attempts spent no nonce: a1 and b1 still work together.
	if err := e.m.DestroyKEKVersion(ctx, "h/data", 1, []kms.Approval{a1, b1}); err != nil {
		t.Fatal(err)
	}
	// Replayed against another version: refused (and version 1 is gone).
	wantCode(t, e.m.DestroyKEKVersion(ctx, "h/hmac", 1, []kms.Approval{a1, b1}), kms.CodeApprovalInvalid)
	wantCode(t, e.m.DestroyKEKVersion(ctx, "h/data", 1, []kms.Approval{a1, b1}), kms.CodeDestroyed)
	wantCode(t, e.m.DestroyKEKVersion(ctx, "h/data", 7, []kms.Approval{a1, b1}), kms.CodeNotFound)

	// Export: dual control, bound to the recipient, single use.
	escrow, _ := s.GenerateRecipientKey()
	rid := escrow.Public().KeyID()
	e1 := alice.approve(t, kms.OpExportKEK, "h/hmac", 2, rid, e.now)
	e2 := bob.approve(t, kms.OpExportKEK, "h/hmac", 2, rid, e.now)
	other, _ := s.GenerateRecipientKey()
	_, err = e.m.ExportKEK(ctx, "h/hmac", 2, other.Public().Bytes(), []kms.Approval{e1, e2})
	wantCode(t, err, kms.CodeApprovalInvalid)
	out, err := e.m.ExportKEK(ctx, "h/hmac", 2, escrow.Public().Bytes(), []kms.Approval{e1, e2})
	if err != nil {
		t.Fatal(err)
	}
	material, err := s.UnwrapKey(escrow, out.Wrapped, []byte("phix-kms-export-v1\x00h/hmac\x002"))
	if err != nil || len(material) != s.AEADKeySize() {
		t.Fatalf("escrowed material: %v", err)
	}
	_, err = e.m.ExportKEK(ctx, "h/hmac", 2, escrow.Public().Bytes(), []kms.Approval{e1, e2})
	wantCode(t, err, kms.CodeApprovalInvalid) // replayed
	// A fresh approval next to a replayed one: refused, and the fresh one
	// is not spent by the failure.
	e3 := alice.approve(t, kms.OpExportKEK, "h/hmac", 2, rid, e.now)
	_, err = e.m.ExportKEK(ctx, "h/hmac", 2, escrow.Public().Bytes(), []kms.Approval{e3, e2})
	wantCode(t, err, kms.CodeApprovalInvalid)
	e4 := bob.approve(t, kms.OpExportKEK, "h/hmac", 2, rid, e.now)
	if _, err := e.m.ExportKEK(ctx, "h/hmac", 2, escrow.Public().Bytes(), []kms.Approval{e3, e4}); err != nil {
		t.Fatalf("fresh approvals after a refused replay: %v", err)
	}

	// The log names every operation and who approved it.
	ops, err := e.st.Ops(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var destroyed, exported, approvals int
	for _, op := range ops {
		switch {
		case op.Action == "destroy" && op.Outcome == "ok":
			destroyed++
			if op.Key != "h/data" || op.Version != 1 || len(op.Approvers) != 2 || op.Approvers[0] != "alice" || op.Approvers[1] != "bob" || op.Actor != "operator-1" {
				t.Fatalf("destroy entry %+v", op)
			}
		case op.Action == "export" && op.Outcome == "ok":
			exported++
		case op.Action == "approve" && op.Outcome == "ok":
			approvals++
		}
	}
	if destroyed != 1 || exported != 2 || approvals != 8 {
		t.Fatalf("log: %d destroys, %d exports, %d approvals; want 1, 2, 8", destroyed, exported, approvals)
	}
}
