package kms_test

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"phix/kms"
	"phix/kms/keyring"
	"phix/kms/sqlstore"
	"phix/suite"
)

// env is one keyring on disk: a SQLite store and the local backend.
type env struct {
	dir    string
	path   string
	master keyring.Master
	raw    []byte // the raw master key
	st     *sqlstore.Store
	be     *keyring.Backend
	m      *kms.Manager
	now    time.Time
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), raw: make([]byte, 32), now: time.Now()}
	_, _ = rand.Read(e.raw)
	var err error
	if e.master, err = keyring.MasterKey(e.raw); err != nil {
		t.Fatal(err)
	}
	e.path = filepath.Join(e.dir, "keyring.db")
	e.open(t, nil)
	return e
}

// open (re)opens store, backend and manager, as a restarted process would.
func (e *env) open(t testing.TB, wrap func(kms.Backend) kms.Backend) {
	t.Helper()
	ctx := context.Background()
	if e.st != nil {
		_ = e.st.Close()
	}
	var err error
	if e.st, err = sqlstore.OpenSQLite(ctx, e.path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.st.Close() })
	if e.be, err = keyring.Open(ctx, e.st, e.master, keyring.Options{}); err != nil {
		t.Fatal(err)
	}
	var be kms.Backend = e.be
	if wrap != nil {
		be = wrap(be)
	}
	if e.m, err = kms.Open(ctx, kms.Config{Store: e.st, Backend: be, Now: func() time.Time { return e.now }}); err != nil {
		t.Fatal(err)
	}
}

// custodian is a key custodian's signing key.
type custodian struct {
	id string
	sk suite.SigningKey
}

func enroll(t testing.TB, m *kms.Manager, id string, s suite.Suite, approvals ...kms.Approval) custodian {
	t.Helper()
	sk, err := s.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.EnrollCustodian(context.Background(), id, string(s.ID()), sk.Public().Bytes(), approvals); err != nil {
		t.Fatal(err)
	}
	return custodian{id: id, sk: sk}
}

func (c custodian) approve(t testing.TB, op, key string, version int, target string, now time.Time) kms.Approval {
	t.Helper()
	a, err := kms.SignApproval(c.sk, c.id, op, key, version, target, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// countingBackend counts wraps per associated data (one header per key and
// version), to prove each data key is re-wrapped exactly once.
type countingBackend struct {
	kms.Backend
	mu     sync.Mutex
	wraps  map[string]int
	onWrap func(n int)
	total  int
}

func (c *countingBackend) Wrap(ctx context.Context, ref kms.KEKRef, handle, key, aad []byte) ([]byte, error) {
	c.mu.Lock()
	c.wraps[string(aad)]++
	c.total++
	n, f := c.total, c.onWrap
	c.mu.Unlock()
	if f != nil {
		f(n)
	}
	return c.Backend.Wrap(ctx, ref, handle, key, aad)
}

func wantCode(t testing.TB, err error, c kms.Code) {
	t.Helper()
	if kms.CodeOf(err) != c {
		t.Fatalf("error %v, want code %s", err, c)
	}
}
