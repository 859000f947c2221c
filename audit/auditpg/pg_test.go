package auditpg_test

import (
	"context"
	"encoding/hex"
	"testing"

	"phix/audit"
	"phix/audit/auditpg"
	"phix/audit/audittest"
	"phix/internal/testenv"
)

func factory(t *testing.T) audittest.Harness {
	dsn := testenv.Postgres(t)
	var first *auditpg.Store
	return audittest.Harness{
		Open: func(t *testing.T) audit.Backend {
			s, err := auditpg.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = s
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		Exec: func(t *testing.T, sql string) {
			t.Helper()
			if _, err := first.Pool().Exec(context.Background(), sql); err != nil {
				t.Fatalf("exec %q: %v", sql, err)
			}
		},
		Bytes: func(b []byte) string { return "'\\x" + hex.EncodeToString(b) + "'::bytea" },
	}
}

func TestContract(t *testing.T) { audittest.Run(t, factory) }
