package breakglass_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"
	_ "modernc.org/sqlite"

	"phix/access/breakglass"
	"phix/access/policy"
	"phix/access/roles"
	"phix/auth/secretbox"
	"phix/auth/totp"
	"phix/internal/testenv"
	"phix/suite"
)

func TestBreakGlassLifecycle(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "auth.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)") // as devnet opens it
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	testLifecycle(t, db)
}

func TestPostgres(t *testing.T) {
	db, err := sql.Open("pgx", testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testLifecycle(t, db)
}

func testLifecycle(t *testing.T, db *sql.DB) {
	ctx := context.Background()
	if err := totp.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := breakglass.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	box, _ := secretbox.NewKey(suite.Intl, key)
	tm := totp.New(db, box, "phix test")
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tm.Now = func() time.Time { return now }
	enr, _ := tm.Begin(ctx, "dr-lee")
	code := func() string {
		c, _ := ptotp.GenerateCodeCustom(enr.Secret, now, ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		return c
	}
	if err := tm.Confirm(ctx, "dr-lee", code()); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Second)
	pe, _ := policy.Default()
	pe.Location = time.UTC
	svc, err := breakglass.New(db, pe, tm)
	if err != nil {
		t.Fatal(err)
	}
	svc.Now = func() time.Time { return now }
	var alerts []breakglass.Grant
	svc.OnGrant = func(_ context.Context, g breakglass.Grant) error { alerts = append(alerts, g); return nil }
	dr := policy.Principal{ID: "dr-lee", Roles: []roles.Role{roles.Clinician}, Org: "hospital-a"}
	req := breakglass.Request{Principal: dr, Patient: "Patient/p1", Purpose: "ETREAT", Justification: "unconscious patient in ED, no care team yet", TOTPCode: code()}

	refusals := []struct {
		name string
		mod  func(*breakglass.Request)
		want breakglass.Code
	}{
		{"purpose TREAT", func(r *breakglass.Request) { r.Purpose = "TREAT" }, breakglass.CodePurpose},
		{"no justification", func(r *breakglass.Request) { r.Justification = "  urgent  " }, breakglass.CodeJustification},
		{"registrar", func(r *breakglass.Request) { r.Principal.Roles = []roles.Role{roles.Registrar} }, breakglass.CodeNotEligible},
		{"no TOTP", func(r *breakglass.Request) { r.TOTPCode = "" }, breakglass.CodeSecondFactor},
		{"wrong TOTP", func(r *breakglass.Request) { r.TOTPCode = "00000" }, breakglass.CodeSecondFactor},
		{"too long", func(r *breakglass.Request) { r.Duration = 5 * time.Hour }, breakglass.CodeDuration},
		{"no patient", func(r *breakglass.Request) { r.Patient = "" }, breakglass.CodePatient},
	}
	for _, c := range refusals {
		r := req
		c.mod(&r)
		if _, err := svc.Open(ctx, r); breakglass.CodeOf(err) != c.want {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	g, err := svc.Open(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// Guessing codes locks break-glass for the principal.
	nurse := req
	nurse.Principal = policy.Principal{ID: "nurse-ng", Roles: []roles.Role{roles.Nurse}}
	for range 5 {
		nurse.TOTPCode = "12345"
		if _, err := svc.Open(ctx, nurse); breakglass.CodeOf(err) != breakglass.CodeSecondFactor {
			t.Fatalf("guess: %v", err)
		}
	}
	if _, err := svc.Open(ctx, nurse); breakglass.CodeOf(err) != breakglass.CodeLocked {
		t.Fatalf("not locked after 5 wrong codes: %v", err)
	}
	if g.End.Sub(g.Start) != 60*time.Minute || len(alerts) != 1 || alerts[0].ID != g.ID {
		t.Fatalf("grant %+v, %d alerts", g, len(alerts))
	}
	if _, ok, _ := svc.Active(ctx, "dr-lee", "Patient/p1"); !ok {
		t.Fatal("grant not active")
	}
	if _, ok, _ := svc.Active(ctx, "dr-lee", "Patient/p2"); ok {
		t.Fatal("grant covers another patient")
	}
	d := pe.Decide(policy.Input{Principal: dr, Action: "read", Resource: policy.Resource{Type: "Observation"}, Purpose: "ETREAT", BreakGlass: true, Time: now})
	if !d.Allow {
		t.Fatalf("policy refuses an active grant: %v", d.Reasons)
	}
	now = now.Add(61 * time.Minute)
	if _, ok, _ := svc.Active(ctx, "dr-lee", "Patient/p1"); ok {
		t.Fatal("grant outlived its 60 minutes")
	}
	// The review queue persists (a new service on the same database) and
	// only an auditor other than the subject closes it.
	svc2, _ := breakglass.New(db, pe, tm)
	svc2.Now = svc.Now
	q, err := svc2.Pending(ctx)
	if err != nil || len(q) != 1 || q[0].ID != g.ID || q[0].Justification != req.Justification {
		t.Fatalf("queue %v %v", q, err)
	}
	if err := svc2.Close(ctx, g.ID, dr, "appropriate"); breakglass.CodeOf(err) != breakglass.CodeReviewer {
		t.Fatalf("clinician closed a review: %v", err)
	}
	aud := policy.Principal{ID: "aud-1", Roles: []roles.Role{roles.Auditor}}
	if err := svc2.Close(ctx, g.ID, aud, "fine"); breakglass.CodeOf(err) != breakglass.CodeOutcome {
		t.Fatalf("bad outcome: %v", err)
	}
	if err := svc2.Close(ctx, g.ID, aud, "appropriate"); err != nil {
		t.Fatal(err)
	}
	if err := svc2.Close(ctx, g.ID, aud, "appropriate"); breakglass.CodeOf(err) != breakglass.CodeClosed {
		t.Fatalf("closed twice: %v", err)
	}
	if err := svc2.Close(ctx, "nope", aud, "appropriate"); breakglass.CodeOf(err) != breakglass.CodeNotFound {
		t.Fatal(err)
	}
	if q, _ := svc2.Pending(ctx); len(q) != 0 {
		t.Fatal("closed grant still pending")
	}
}
