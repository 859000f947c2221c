package session_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"phix/auth/session"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }

func TestIdleLogoff(t *testing.T) {
	c := &clock{time.Unix(1_800_000_000, 0)}
	s := &session.Idle{Timeout: 10 * time.Minute, Now: c.now}
	issued := c.t
	if err := s.Touch("alice", issued); err != nil {
		t.Fatal(err)
	}
	c.add(9 * time.Minute)
	if err := s.Touch("alice", issued); err != nil {
		t.Fatalf("active session refused: %v", err)
	}
	c.add(11 * time.Minute)
	if err := s.Touch("alice", issued); session.CodeOf(err) != session.CodeIdle {
		t.Fatalf("idle session not logged off: %v", err)
	}
	// The old credential stays refused, even right away.
	if err := s.Touch("alice", issued); session.CodeOf(err) != session.CodeIdle {
		t.Fatalf("old credential accepted after logoff: %v", err)
	}
	// A credential issued after the logoff starts a new session.
	c.add(time.Second)
	if err := s.Touch("alice", c.t); err != nil {
		t.Fatalf("fresh credential refused: %v", err)
	}
	s.Logoff("alice")
	if err := s.Touch("alice", c.t); session.CodeOf(err) != session.CodeIdle {
		t.Fatal("explicit logoff ignored")
	}
	// A credential obtained after the session went idle starts a new one.
	c.add(time.Second)
	fresh := c.t
	if err := s.Touch("carol", fresh); err != nil {
		t.Fatal(err)
	}
	c.add(30 * time.Minute)
	if err := s.Touch("carol", c.t.Add(-time.Minute)); err != nil {
		t.Fatalf("re-authenticated caller refused: %v", err)
	}
	// Other sessions are independent.
	if err := s.Touch("bob", issued); err != nil {
		t.Fatal(err)
	}
}

func TestLockoutAfterFailures(t *testing.T) {
	ctx := context.Background()
	c := &clock{time.Unix(1_800_000_000, 0)}
	l := session.NewLockout()
	l.Now, l.MaxFailures, l.LockFor = c.now, 3, 15*time.Minute
	for i := range 2 {
		if locked, err := l.Failure(ctx, "alice"); locked || err != nil {
			t.Fatalf("failure %d locked: %v", i, err)
		}
	}
	l.Success("alice") // a success resets the count
	for i := range 2 {
		if locked, _ := l.Failure(ctx, "alice"); locked {
			t.Fatalf("locked after %d failures following a success", i+1)
		}
	}
	if locked, err := l.Failure(ctx, "alice"); !locked || err != nil {
		t.Fatalf("not locked after 3 failures: %v", err)
	}
	if err := l.Check(ctx, "alice"); session.CodeOf(err) != session.CodeLocked {
		t.Fatalf("locked principal passes: %v", err)
	}
	if err := l.Check(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	c.add(16 * time.Minute)
	if err := l.Check(ctx, "alice"); err != nil {
		t.Fatalf("lock did not end: %v", err)
	}
	// Failures spread beyond the window do not lock.
	for range 5 {
		c.add(20 * time.Minute)
		if locked, _ := l.Failure(ctx, "carol"); locked {
			t.Fatal("failures outside the window locked")
		}
	}
}

func TestAllowlist(t *testing.T) {
	a, err := session.ParseAllowlist(`
# dev network
client backend-a 127.0.0.0/8 ::1
org hospital-a 10.1.0.0/16 127.0.0.1
`)
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr
	cases := []struct {
		client, org string
		addr        string
		ok          bool
	}{
		{"backend-a", "hospital-a", "127.0.0.1", true},
		{"backend-a", "hospital-a", "127.0.0.2", false}, // in the client list, not the org's
		{"backend-a", "", "::1", true},
		{"backend-a", "", "::ffff:127.0.0.5", true}, // v4-mapped
		{"other", "hospital-a", "10.1.2.3", true},
		{"other", "hospital-a", "10.2.0.1", false},
		{"other", "hospital-b", "192.0.2.1", true}, // no list: allowed
	}
	for _, c := range cases {
		err := a.Allow(c.client, c.org, ip(c.addr))
		if (err == nil) != c.ok {
			t.Errorf("%s/%s from %s: %v", c.client, c.org, c.addr, err)
		}
		if err != nil && (strings.Contains(err.Error(), c.addr) || strings.Contains(err.Error(), c.client)) {
			t.Error("error names the address or client")
		}
	}
	for _, bad := range []string{"client x", "user x 1.2.3.4", "org y 1.2.3.4/33", "client z not-an-ip"} {
		if _, err := session.ParseAllowlist(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseAllowlist(f *testing.F) {
	f.Add("client a 127.0.0.1/8\norg b ::1 10.0.0.0/8 # x")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := session.ParseAllowlist(s)
		if err != nil {
			return
		}
		for _, m := range []map[string][]netip.Prefix{a.Clients, a.Orgs} {
			for _, ps := range m {
				for _, p := range ps {
					if !p.IsValid() || p != p.Masked() {
						t.Fatal("invalid or unmasked prefix kept")
					}
				}
			}
		}
	})
}
