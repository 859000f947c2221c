package auditsqlite_test

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"phix/audit"
	"phix/audit/auditsqlite"
	"phix/audit/audittest"
)

func open(ctx context.Context, path string) (audit.Backend, error) {
	return auditsqlite.Open(ctx, path)
}

func factory(t *testing.T) audittest.Harness {
	path := filepath.Join(t.TempDir(), "audit.db")
	var first *auditsqlite.Store
	return audittest.Harness{
		Open: func(t *testing.T) audit.Backend {
			s := audittest.OpenBackend(t, path, open)
			if first == nil {
				first = s.(*auditsqlite.Store)
			}
			return s
		},
		Exec: func(t *testing.T, sql string) {
			t.Helper()
			if _, err := first.DB().Exec(sql); err != nil {
				t.Fatalf("exec %q: %v", sql, err)
			}
		},
		Bytes: func(b []byte) string { return "X'" + hex.EncodeToString(b) + "'" },
		Dump: func(t *testing.T) []byte {
			var all []byte
			for _, suffix := range []string{"", "-wal", "-shm"} {
				data, err := os.ReadFile(path + suffix)
				if err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				all = append(all, data...)
			}
			return all
		},
	}
}

func TestContract(t *testing.T) { audittest.Run(t, factory) }

func BenchmarkAudit(b *testing.B) {
	audittest.Bench(b, func(b *testing.B) audit.Backend {
		return audittest.OpenBackend(b, filepath.Join(b.TempDir(), "audit.db"), open)
	})
}
