package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"

	"phix/auth/nodeauth"
	"phix/auth/secretbox"
	"phix/suite"
)

// enrolOperator enrols user's TOTP in a fresh authorization store whose
// secrets the keyring named by args seals (what `phix auth totp enrol` does
// on a node), and returns the "--auth-db PATH --totp CODE" arguments for
// the current time step (the enrolment confirmed the one before).
func enrolOperator(t *testing.T, args []string, hospital, suiteID, user string) func() []string {
	t.Helper()
	ctx := context.Background()
	var kf keyringFlags
	if err := newKeysFlags("test", &kf).Parse(args); err != nil {
		t.Fatal(err)
	}
	m, closeKeys, err := openKeyring(ctx, &kf)
	if err != nil {
		t.Fatal(err)
	}
	defer closeKeys()
	path := filepath.Join(t.TempDir(), "auth.db")
	db, err := nodeauth.OpenDB(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	box, err := secretbox.FromKMS(ctx, m, hospital, suite.ID(suiteID))
	if err != nil {
		t.Fatal(err)
	}
	tm := nodeauth.NewTOTP(db, box, hospital)
	e, err := tm.Begin(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	code := func(at time.Time) string {
		c, err := ptotp.GenerateCodeCustom(e.Secret, at, ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := tm.Confirm(ctx, user, code(time.Now().Add(-30*time.Second))); err != nil {
		t.Fatal(err)
	}
	return func() []string { return []string{"--auth-db", path, "--totp", code(time.Now())} }
}
