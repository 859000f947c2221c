package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"phix/fhir/search"
	"phix/internal/testenv"
	"phix/store/internal/sqlstore"
	"phix/store/storetest"
)

// BenchmarkSynthea is the large search benchmark (docs/search.md): the
// Synthea bundles replayed with fresh ids to 100k and to 1M resources, kept
// in the databases phix_bench_synthea_100k and phix_bench_synthea_1m of the
// test server between runs. It runs only with PHIX_BENCH_1M=1:
//
//	PHIX_BENCH_1M=1 go test ./store/postgres/ -run '^$' -bench Synthea -benchtime 200x -count 5 -timeout 3h
//
// PHIX_BENCH_EXPLAIN=1 logs the plan of one query of each kind.
func BenchmarkSynthea(b *testing.B) {
	if os.Getenv(storetest.Bench1MEnv) == "" {
		b.Skip("set " + storetest.Bench1MEnv + "=1 to load and search 1M resources")
	}
	c := storetest.LoadCorpus(b)
	for _, size := range []struct {
		name string
		n    int
	}{{"100k", 100_000}, {"1M", 1_000_000}} {
		b.Run(size.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, benchDatabase(b, "phix_bench_synthea_"+strings.ToLower(size.name)))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			c.BenchSynthea(b, s, c.ReplaysFor(size.n), func() error {
				_, err := s.pool.Exec(ctx, "ANALYZE")
				return err
			}, explainer(func(q storetest.Query) string { return explain(b, s, q.Query) }))
		})
	}
}

// benchDatabase returns the DSN of a persistent database on the test
// server, creating it when missing.
func benchDatabase(tb testing.TB, name string) string {
	ctx := context.Background()
	admin := testenv.PostgresURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		testenv.Missing(tb, "PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42P04" { // duplicate_database
			tb.Fatal(err)
		}
	}
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// capture records the statements a search runs.
type capture struct {
	q     sqlstore.Querier
	stmts []captured
}

type captured struct {
	sql  string
	args []any
}

func (c *capture) Query(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error) {
	c.stmts = append(c.stmts, captured{sql, args})
	return c.q.Query(ctx, sql, args...)
}

// explain runs q and returns EXPLAIN ANALYZE (costs off) of each statement
// it ran.
func explain(tb testing.TB, s *Store, q *search.Query) string {
	ctx := context.Background()
	c := &capture{q: querier{s.pool}}
	if _, err := sqlstore.Search(ctx, c, dialect, q); err != nil {
		tb.Fatal(err)
	}
	var out strings.Builder
	for _, st := range c.stmts {
		fmt.Fprintf(&out, "-- %s... (%d args)\n", strings.Fields(st.sql)[1], len(st.args))
		rows, err := s.pool.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "+st.sql, st.args...)
		if err != nil {
			tb.Fatal(err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				tb.Fatal(err)
			}
			out.WriteString(line + "\n")
		}
		rows.Close()
	}
	return out.String()
}

// explainer returns fn when PHIX_BENCH_EXPLAIN is set.
func explainer(fn func(storetest.Query) string) func(storetest.Query) string {
	if os.Getenv("PHIX_BENCH_EXPLAIN") == "" {
		return nil
	}
	return fn
}

// BenchmarkReindex times the reindex job of a new custom parameter over the
// Observations of 3 Synthea replays in a fresh database:
//
//	go test ./store/postgres/ -run '^$' -bench Reindex -benchtime 3x
func BenchmarkReindex(b *testing.B) {
	s, err := Open(context.Background(), testenv.Postgres(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchReindex(b, s, 3)
}
