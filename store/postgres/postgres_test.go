package postgres_test

import (
	"context"
	"sync"
	"testing"

	"phix/internal/testenv"
	"phix/store"
	"phix/store/postgres"
	"phix/store/storetest"
)

// dbOpener gives every test its own fresh database, reopened on later calls.
func dbOpener() storetest.Opener {
	var mu sync.Mutex
	dsns := map[*testing.T]string{}
	return func(t *testing.T) store.Store {
		mu.Lock()
		dsn, ok := dsns[t]
		mu.Unlock()
		if !ok {
			dsn = testenv.Postgres(t)
			mu.Lock()
			dsns[t] = dsn
			mu.Unlock()
		}
		s, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func TestContract(t *testing.T) {
	storetest.Run(t, dbOpener())
}
