package totp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"
	_ "modernc.org/sqlite"

	"phix/auth/secretbox"
	"phix/auth/totp"
	"phix/internal/testenv"
	"phix/suite"
)

func open(t *testing.T) (*totp.Manager, *sql.DB, *time.Time) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "auth.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)") // as devnet opens it
	if err != nil {
		t.Fatal(err)
	}
	return openDB(t, db)
}

func openDB(t *testing.T, db *sql.DB) (*totp.Manager, *sql.DB, *time.Time) {
	t.Helper()
	t.Cleanup(func() { db.Close() })
	if err := totp.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	box, _ := secretbox.NewKey(suite.Intl, key)
	m := totp.New(db, box, "phix test")
	now := time.Unix(1_800_000_000, 0)
	m.Now = func() time.Time { return now }
	return m, db, &now
}

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := ptotp.GenerateCodeCustom(secret, at, ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnrolVerifyReplay(t *testing.T) {
	m, db, now := open(t)
	testEnrolVerifyReplay(t, m, db, now)
}

func TestPostgres(t *testing.T) {
	db, err := sql.Open("pgx", testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	m, db, now := openDB(t, db)
	testEnrolVerifyReplay(t, m, db, now)
	testConcurrentReplay(t, m, now)
}

func testEnrolVerifyReplay(t *testing.T, m *totp.Manager, db *sql.DB, now *time.Time) {
	ctx := context.Background()
	if err := m.Verify(ctx, "alice", "123456"); totp.CodeOf(err) != totp.CodeNotEnrolled {
		t.Fatalf("verify before enrolment: %v", err)
	}
	e, err := m.Begin(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	k, err := otp.NewKeyFromURL(e.URI)
	if err != nil || k.Secret() != e.Secret || k.Issuer() != "phix test" || k.AccountName() != "alice" {
		t.Fatalf("otpauth URI does not carry the enrolment: %v", err)
	}
	// Not confirmed yet: verification refuses.
	if err := m.Verify(ctx, "alice", code(t, e.Secret, *now)); totp.CodeOf(err) != totp.CodeNotEnrolled {
		t.Fatalf("unconfirmed secret used: %v", err)
	}
	if err := m.Confirm(ctx, "alice", "000000"); totp.CodeOf(err) != totp.CodeInvalid && code(t, e.Secret, *now) != "000000" {
		t.Fatalf("wrong confirmation code: %v", err)
	}
	if err := m.Confirm(ctx, "alice", code(t, e.Secret, *now)); err != nil {
		t.Fatal(err)
	}
	// The confirmation code's step is consumed.
	if err := m.Verify(ctx, "alice", code(t, e.Secret, *now)); totp.CodeOf(err) != totp.CodeReplayed {
		t.Fatalf("confirmation code reused: %v", err)
	}
	*now = now.Add(30 * time.Second)
	c := code(t, e.Secret, *now)
	if err := m.Verify(ctx, "alice", c); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(ctx, "alice", c); totp.CodeOf(err) != totp.CodeReplayed {
		t.Fatalf("same code accepted twice: %v", err)
	}
	// Skew: the previous step's code is within ±1 but already older than
	// the last used step.
	*now = now.Add(30 * time.Second)
	if err := m.Verify(ctx, "alice", code(t, e.Secret, now.Add(30*time.Second))); err != nil {
		t.Fatalf("next-step code (clock skew) refused: %v", err)
	}
	*now = now.Add(5 * time.Minute)
	if err := m.Verify(ctx, "alice", code(t, e.Secret, now.Add(-5*time.Minute))); totp.CodeOf(err) != totp.CodeInvalid {
		t.Fatalf("stale code accepted: %v", err)
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if err := m.Verify(ctx, "alice", bad); totp.CodeOf(err) != totp.CodeInvalid {
			t.Fatalf("%q: %v", bad, err)
		}
	}
	if _, err := m.Begin(ctx, "alice"); totp.CodeOf(err) != totp.CodeAlreadyDone {
		t.Fatalf("re-enrolment without reset: %v", err)
	}
	// No plaintext secret on disk.
	var sealed []byte
	if err := db.QueryRow(`SELECT sealed FROM totp_secrets WHERE username = 'alice'`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(e.Secret)) {
		t.Fatal("TOTP secret stored in plaintext")
	}
	if err := m.Reset(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.Enrolled(ctx, "alice"); ok {
		t.Fatal("still enrolled after reset")
	}
}

// Concurrent use of one code: exactly one wins.
func TestConcurrentReplay(t *testing.T) {
	m, _, now := open(t)
	testConcurrentReplay(t, m, now)
}

func testConcurrentReplay(t *testing.T, m *totp.Manager, now *time.Time) {
	ctx := context.Background()
	e, _ := m.Begin(ctx, "bob")
	if err := m.Confirm(ctx, "bob", code(t, e.Secret, *now)); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(time.Minute)
	c := code(t, e.Secret, *now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m.Verify(ctx, "bob", c) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d concurrent uses of one code succeeded, want 1", ok)
	}
}
