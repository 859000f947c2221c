package kms_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"

	"phix/internal/testenv"
	"phix/kms"
	"phix/kms/keyring"
	"phix/kms/sqlstore"
)

// countingStore counts re-wraps that reach storage; safe for concurrent use.
type countingStore struct {
	kms.Store
	mu       sync.Mutex
	rewrites map[string]int
}

func (c *countingStore) RewrapDataKey(ctx context.Context, k kms.DataKey, from int) error {
	err := c.Store.RewrapDataKey(ctx, k, from)
	if err == nil {
		c.mu.Lock()
		c.rewrites[k.ID]++
		c.mu.Unlock()
	}
	return err
}

// TestReplicasOnPostgres runs two replicas (own store connections and
// backends, one PostgreSQL database) that rotate the same KEK at once: every
// data key ends up re-wrapped exactly once.
func TestReplicasOnPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	mk := make([]byte, 32)
	_, _ = rand.Read(mk)
	master, _ := keyring.MasterKey(mk)
	replica := func() (*kms.Manager, *countingStore) {
		st, err := sqlstore.OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		be, err := keyring.Open(ctx, st, master, keyring.Options{})
		if err != nil {
			t.Fatal(err)
		}
		cs := &countingStore{Store: st, rewrites: map[string]int{}}
		m, err := kms.Open(ctx, kms.Config{Store: cs, Backend: be})
		if err != nil {
			t.Fatal(err)
		}
		return m, cs
	}
	m1, c1 := replica()
	m2, c2 := replica()
	if _, err := m1.InitHospital(ctx, "h", "intl"); err != nil {
		t.Fatal(err)
	}
	const n = 60
	keys := map[string][]byte{}
	for i := range n {
		name := fmt.Sprintf("p%03d", i)
		k, err := m1.NewDataKey(ctx, "h", kms.KindPatient, name)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = k
	}
	if _, err := m1.Rotate(ctx, "h/data"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, m := range []*kms.Manager{m1, m2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = m.ResumeRotation(ctx, "h/data", kms.RotateOptions{BatchSize: 7})
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("replicas: %v, %v", errs[0], errs[1])
	}
	total := map[string]int{}
	for _, c := range []*countingStore{c1, c2} {
		for id, k := range c.rewrites {
			total[id] += k
		}
	}
	if len(total) != n {
		t.Fatalf("%d keys re-wrapped, want %d", len(total), n)
	}
	for id, k := range total {
		if k != 1 {
			t.Fatalf("%s re-wrapped %d times", id, k)
		}
	}
	for name, want := range keys {
		got, err := m2.DataKey(ctx, "h", kms.KindPatient, name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Erasure through one replica is seen by the other.
	if err := m1.DestroyDataKey(ctx, "h", kms.KindPatient, "p000"); err != nil {
		t.Fatal(err)
	}
	_, err := m2.DataKey(ctx, "h", kms.KindPatient, "p000")
	wantCode(t, err, kms.CodeNotFound)
}
