package session_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"phix/auth/session"
)

// TestStoredAllowlist: entries added and removed in the store are what
// the Allowlist of another replica (its own cache) enforces after its
// refresh interval; bad entries are refused; an unreadable store refuses
// every caller. SQLite and PostgreSQL.
func TestStoredAllowlist(t *testing.T) {
	ctx := context.Background()
	in, out := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.0.2.7")
	for name, db := range sharedDBs(t) {
		t.Run(name, func(t *testing.T) {
			admin := session.NewStoredAllowlist(db)
			clock := time.Now()
			replica := session.NewStoredAllowlist(db)
			replica.Now = func() time.Time { return clock }
			al := replica.Allowlist()
			if err := al.Allow("svc", "hospital-a", out); err != nil {
				t.Fatalf("no list restricts: %v", err)
			}
			for _, c := range []struct{ kind, id string }{{"user", "svc"}, {"client", ""}, {"client", "a b"}, {"org", "x\n"}} {
				if err := admin.Add(ctx, c.kind, c.id, netip.MustParsePrefix("10.0.0.0/8")); err == nil {
					t.Fatalf("entry %q %q accepted", c.kind, c.id)
				}
			}
			if err := admin.Add(ctx, "client", "svc", netip.MustParsePrefix("10.9.9.9/8")); err != nil {
				t.Fatal(err)
			}
			if err := admin.Add(ctx, "client", "svc", netip.MustParsePrefix("10.0.0.0/8")); err != nil { // the same, masked: no duplicate
				t.Fatal(err)
			}
			if es, err := admin.List(ctx); err != nil || len(es) != 1 || es[0].Prefix.String() != "10.0.0.0/8" || es[0].Kind != "client" {
				t.Fatalf("list: %v %v", es, err)
			}
			if err := al.Allow("svc", "hospital-a", out); err != nil {
				t.Fatal("the replica did not serve its cache within RefreshEvery")
			}
			clock = clock.Add(6 * time.Second)
			if session.CodeOf(al.Allow("svc", "hospital-a", out)) != session.CodeIPRefused {
				t.Fatal("the stored list was not enforced after RefreshEvery")
			}
			if err := al.Allow("svc", "hospital-a", in); err != nil {
				t.Fatalf("inside the list: %v", err)
			}
			if err := al.Allow("other", "hospital-a", out); err != nil {
				t.Fatalf("another client: %v", err)
			}
			if n, err := admin.Remove(ctx, "client", "svc", netip.MustParsePrefix("172.16.0.0/12")); err != nil || n != 0 {
				t.Fatalf("removing an absent prefix: %d %v", n, err)
			}
			if n, err := admin.Remove(ctx, "client", "svc", netip.Prefix{}); err != nil || n != 1 {
				t.Fatalf("removing the list: %d %v", n, err)
			}
			clock = clock.Add(6 * time.Second)
			if err := al.Allow("svc", "hospital-a", out); err != nil {
				t.Fatalf("after removal: %v", err)
			}
		})
	}
	// Fail closed.
	dbs := sharedDBs(t)
	db := dbs["sqlite"]
	st := session.NewStoredAllowlist(db)
	db.Close()
	if session.CodeOf(st.Allowlist().Allow("svc", "", in)) != session.CodeIPRefused {
		t.Fatal("an unreadable allowlist admitted a caller")
	}
}
