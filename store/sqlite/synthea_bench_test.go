package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix/fhir/search"
	"phix/store/internal/sqlstore"
	"phix/store/storetest"
)

// BenchmarkSynthea is the large search benchmark (docs/search.md): the
// Synthea bundles replayed with fresh ids to 100k and to 1M resources, kept
// in PHIX_BENCH_DIR between runs. It runs only with PHIX_BENCH_1M=1:
//
//	PHIX_BENCH_1M=1 go test ./store/sqlite/ -run '^$' -bench Synthea -benchtime 200x -count 5 -timeout 3h
//
// PHIX_BENCH_EXPLAIN=1 logs the plan of one query of each kind.
func BenchmarkSynthea(b *testing.B) {
	if os.Getenv(storetest.Bench1MEnv) == "" {
		b.Skip("set " + storetest.Bench1MEnv + "=1 to load and search 1M resources")
	}
	c := storetest.LoadCorpus(b)
	dir := storetest.Bench1MDir(b)
	for _, size := range []struct {
		name string
		n    int
	}{{"100k", 100_000}, {"1M", 1_000_000}} {
		b.Run(size.name, func(b *testing.B) {
			s, err := Open(filepath.Join(dir, "synthea-"+size.name+".db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			c.BenchSynthea(b, s, c.ReplaysFor(size.n), func() error {
				_, err := s.w.Exec("ANALYZE")
				return err
			}, explainer(func(q storetest.Query) string { return explain(b, s, q.Query) }))
		})
	}
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

// explain runs q and returns EXPLAIN QUERY PLAN of each statement it ran.
func explain(tb testing.TB, s *Store, q *search.Query) string {
	ctx := context.Background()
	c := &capture{q: s.reader()}
	if _, err := sqlstore.Search(ctx, c, dialect, q); err != nil {
		tb.Fatal(err)
	}
	var out strings.Builder
	for _, st := range c.stmts {
		kind := strings.Fields(st.sql)[1]
		fmt.Fprintf(&out, "-- %s... (%d args)\n", kind, len(st.args))
		rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+st.sql, st.args...)
		if err != nil {
			tb.Fatal(err)
		}
		depth := map[int]int{}
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				tb.Fatal(err)
			}
			depth[id] = depth[parent] + 1
			fmt.Fprintf(&out, "%s%s\n", strings.Repeat("  ", depth[id]-1), detail)
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
// Observations of 3 Synthea replays (22,281 resources, 10,374 Observations)
// in a fresh database:
//
//	go test ./store/sqlite/ -run '^$' -bench Reindex -benchtime 3x
func BenchmarkReindex(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "reindex.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchReindex(b, s, 3)
}
