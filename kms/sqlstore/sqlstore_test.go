package sqlstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"phix/internal/testenv"
	"phix/kms"
	"phix/kms/kmstest"
	"phix/kms/sqlstore"
)

func TestSQLiteContract(t *testing.T) {
	kmstest.Run(t, func(t *testing.T) kms.Store {
		st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "keyring.db"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

func TestPostgresContract(t *testing.T) {
	kmstest.Run(t, func(t *testing.T) kms.Store {
		st, err := sqlstore.OpenPostgres(context.Background(), testenv.Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}
