package fhirserver

import (
	"context"
	"testing"

	"phix/internal/testenv"
	"phix/store"
	"phix/store/postgres"
)

func openPostgres(t testing.TB) store.Store {
	t.Helper()
	dsn := testenv.Postgres(t)
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func init() {
	backends["postgres"] = func(t testing.TB) store.Store { return openPostgres(t) }
}
