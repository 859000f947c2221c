package kms_test

import (
	"context"
	"testing"

	"phix/kms"
	"phix/suite"
)

func TestDestroyDataKeyApproved(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, _ := suite.Lookup(suite.Intl)
	if _, err := e.m.InitHospital(ctx, "h", "intl"); err != nil {
		t.Fatal(err)
	}
	alice := enroll(t, e.m, "alice", s)
	bob := enroll(t, e.m, "bob", s)
	if _, err := e.m.NewDataKey(ctx, "h", kms.KindPatient, "p1"); err != nil {
		t.Fatal(err)
	}
	id, _ := kms.DataKeyID("h", kms.KindPatient, "p1")
	// One approval, or two for another key, are refused and keep the key.
	wantCode(t, e.m.DestroyDataKeyApproved(ctx, "h", kms.KindPatient, "p1",
		[]kms.Approval{alice.approve(t, kms.OpDestroyDataKey, id, 0, "", e.now)}), kms.CodeApprovalRequired)
	other, _ := kms.DataKeyID("h", kms.KindPatient, "p2")
	wantCode(t, e.m.DestroyDataKeyApproved(ctx, "h", kms.KindPatient, "p1", []kms.Approval{
		alice.approve(t, kms.OpDestroyDataKey, other, 0, "", e.now),
		bob.approve(t, kms.OpDestroyDataKey, other, 0, "", e.now)}), kms.CodeApprovalInvalid)
	if _, err := e.m.DataKey(ctx, "h", kms.KindPatient, "p1"); err != nil {
		t.Fatalf("refused erasure destroyed the key: %v", err)
	}
	ok := []kms.Approval{alice.approve(t, kms.OpDestroyDataKey, id, 0, "", e.now), bob.approve(t, kms.OpDestroyDataKey, id, 0, "", e.now)}
	if err := e.m.DestroyDataKeyApproved(ctx, "h", kms.KindPatient, "p1", ok); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.DataKey(ctx, "h", kms.KindPatient, "p1"); kms.CodeOf(err) != kms.CodeNotFound {
		t.Fatalf("key still readable after erasure: %v", err)
	}
	// The approvals are spent.
	if _, err := e.m.NewDataKey(ctx, "h", kms.KindPatient, "p1"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.m.DestroyDataKeyApproved(ctx, "h", kms.KindPatient, "p1", ok), kms.CodeApprovalInvalid)
}
