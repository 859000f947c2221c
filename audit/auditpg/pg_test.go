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

func open(ctx context.Context, dsn string) (audit.Backend, error) { return auditpg.Open(ctx, dsn) }

func factory(t *testing.T) audittest.Harness {
	dsn := testenv.Postgres(t)
	var first *auditpg.Store
	return audittest.Harness{
		Open: func(t *testing.T) audit.Backend {
			s := audittest.OpenBackend(t, dsn, open)
			if first == nil {
				first = s.(*auditpg.Store)
			}
			return s
		},
		Exec: func(t *testing.T, sql string) {
			t.Helper()
			if _, err := first.Pool().Exec(context.Background(), sql); err != nil {
				t.Fatalf("exec %q: %v", sql, err)
			}
		},
		Bytes: func(b []byte) string { return "'\\x" + hex.EncodeToString(b) + "'::bytea" },
		Dump: func(t *testing.T) []byte {
			// Every column of every audit table, bytea rendered with its
			// printable bytes as they are (escape format), so text inside shows.
			queries := []string{
				`SELECT concat_ws('|', idx, ts, encode(body, 'escape'), action, outcome, alert, patient, agent, entity) FROM audit_events`,
				`SELECT concat_ws('|', id, encode(hash, 'escape')) FROM audit_hashes`,
				`SELECT concat_ws('|', size, encode(note, 'escape'), at) FROM audit_checkpoints`,
				`SELECT concat_ws('|', kid, vkey) FROM audit_keys`,
				`SELECT concat_ws('|', sink, idx) FROM audit_cursors`,
			}
			var all []byte
			for _, q := range queries {
				rows, err := first.Pool().Query(context.Background(), q)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var s string
					if err := rows.Scan(&s); err != nil {
						t.Fatal(err)
					}
					all = append(all, s...)
					all = append(all, '\n')
				}
				rows.Close()
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
			}
			return all
		},
	}
}

func TestContract(t *testing.T) { audittest.Run(t, factory) }

func BenchmarkAudit(b *testing.B) {
	audittest.Bench(b, func(b *testing.B) audit.Backend {
		return audittest.OpenBackend(b, testenv.Postgres(b), open)
	})
}
