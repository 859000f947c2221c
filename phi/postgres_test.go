package phi_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"phix/internal/testenv"
	"phix/store/postgres"
	"phix/suite"
)

// TestPostgresRawScan stores sealed patients in PostgreSQL, checks blind
// search there against plaintext search, then dumps every table of the
// database as text and scans it for PHI.
func TestPostgresRawScan(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	prot, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, suite.Intl)
	pats := testPatients(t)
	plain, _, _ := twoStores(t, e, pats, prot)
	checkEquivalence(t, e, pats, plain, prot)

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	if rows.Err() != nil || len(tables) == 0 {
		t.Fatalf("no tables: %v", rows.Err())
	}
	var raw []byte
	for _, tbl := range tables {
		var dump *string
		// Rows as text, bytea included (hex), plus bytea decoded as UTF-8
		// where it is text (resource bodies).
		if err := conn.QueryRow(ctx, "SELECT string_agg(t::text, E'\\n') FROM "+tbl+" t").Scan(&dump); err != nil {
			t.Fatalf("%s: %v", tbl, err)
		}
		if dump != nil {
			raw = append(raw, *dump...)
		}
	}
	rows, err = conn.Query(ctx, `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name), quote_ident(column_name) FROM information_schema.columns
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND data_type = 'bytea'`)
	if err != nil {
		t.Fatal(err)
	}
	var cols [][2]string
	for rows.Next() {
		var tb, c string
		if err := rows.Scan(&tb, &c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, [2]string{tb, c})
	}
	for _, c := range cols {
		r, err := conn.Query(ctx, "SELECT "+c[1]+" FROM "+c[0]+" WHERE "+c[1]+" IS NOT NULL")
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var b []byte
			if err := r.Scan(&b); err != nil {
				t.Fatal(err)
			}
			raw = append(raw, b...)
		}
	}
	scanRaw(t, raw, pats)
}
