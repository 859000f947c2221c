package session_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"phix/auth/session"
	"phix/errcode"
	"phix/internal/testenv"
)

// sharedDBs opens the shared state's database on SQLite and PostgreSQL.
func sharedDBs(t *testing.T) map[string]*sql.DB {
	t.Helper()
	lite, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "auth.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	pg, err := sql.Open("pgx", testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*sql.DB{"sqlite": lite, "postgres": pg}
	for _, db := range out {
		t.Cleanup(func() { db.Close() })
		if err := session.MigrateShared(context.Background(), db); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestSharedAcrossReplicas: two replicas (two Lockouts and two Idles, each
// with its own SQLState over one database) share failures, locks and
// session activity.
func TestSharedAcrossReplicas(t *testing.T) {
	for name, db := range sharedDBs(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c := &clock{time.Unix(1_800_000_000, 0)}
			replica := func() (*session.Lockout, *session.Idle) {
				st := session.NewSQLState(db)
				st.LockCacheTTL = time.Second
				return &session.Lockout{MaxFailures: 4, Store: st, Failures: st, Now: c.now},
					&session.Idle{Timeout: 10 * time.Minute, Shared: st, SyncEvery: time.Minute, Now: c.now}
			}
			l1, i1 := replica()
			l2, i2 := replica()
			who := "sub:https://issuer\x00dr-" + name

			// Failures add up across the replicas: 2 + 2 locks.
			for i, l := range []*session.Lockout{l1, l2, l1} {
				if locked, err := l.Failure(ctx, who); err != nil || locked {
					t.Fatalf("failure %d: locked %v, %v", i, locked, err)
				}
			}
			if err := l2.Check(ctx, who); err != nil {
				t.Fatalf("checked before the lock: %v", err)
			}
			if locked, err := l2.Failure(ctx, who); err != nil || !locked {
				t.Fatalf("4th failure on the other replica: locked %v, %v", locked, err)
			}
			// The locking replica knows at once; the other within the cache TTL.
			if session.CodeOf(l2.Check(ctx, who)) != session.CodeLocked {
				t.Fatal("the locking replica does not refuse")
			}
			c.add(1100 * time.Millisecond)
			if session.CodeOf(l1.Check(ctx, who)) != session.CodeLocked {
				t.Fatal("the other replica does not refuse after the cache TTL")
			}
			c.add(16 * time.Minute)
			if err := l1.Check(ctx, who); err != nil {
				t.Fatalf("lock did not end: %v", err)
			}
			// A longer lock is never shortened by a shorter one.
			st := session.NewSQLState(db)
			until := c.t.Add(time.Hour)
			if err := st.Lock(ctx, who, until, errcode.ProviderNotAuthorized); err != nil {
				t.Fatal(err)
			}
			if err := st.Lock(ctx, who, c.t.Add(time.Minute), errcode.ProviderNotAuthorized); err != nil {
				t.Fatal(err)
			}
			if got, _, locked, err := session.NewSQLState(db).Locked(ctx, who, c.t.Add(30*time.Minute)); err != nil || !locked || !got.Equal(until) {
				t.Fatalf("lock shortened: %v %v %v", got, locked, err)
			}
			if err := st.Clear(ctx, who); err != nil {
				t.Fatal(err)
			}

			// A session active on replica 2 is not logged off by replica 1,
			// which saw it 12 minutes ago.
			key := "https://issuer\x00dr-" + name + "\x00app"
			issued := c.t
			if err := i1.Touch(key, issued); err != nil {
				t.Fatal(err)
			}
			for range 6 { // 12 minutes of activity on replica 2
				c.add(2 * time.Minute)
				if err := i2.Touch(key, issued); err != nil {
					t.Fatalf("replica 2: %v", err)
				}
			}
			if err := i1.Touch(key, issued); err != nil {
				t.Fatalf("replica 1 logged off a session active on replica 2: %v", err)
			}
			// Idle on both: logged off, and replica 2 refuses the same
			// credential too.
			c.add(11 * time.Minute)
			if session.CodeOf(i1.Touch(key, issued)) != session.CodeIdle {
				t.Fatal("an idle session was not logged off")
			}
			if session.CodeOf(i2.Touch(key, issued)) != session.CodeIdle {
				t.Fatal("the other replica accepted a credential of a logged-off session")
			}
			// A new credential starts a new session on either.
			c.add(time.Second)
			if err := i2.Touch(key, c.t); err != nil {
				t.Fatalf("new credential: %v", err)
			}
			// An explicit logoff holds on the other replica within SyncEvery.
			i1.Logoff(key)
			old := c.t.Add(-time.Second)
			c.add(61 * time.Second)
			if session.CodeOf(i2.Touch(key, old)) != session.CodeIdle {
				t.Fatal("a logoff on one replica did not hold on the other")
			}
		})
	}
}
