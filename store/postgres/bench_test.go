package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"phix/internal/testenv"
	"phix/store/storetest"
)

// Benchmarks report the store figure and the same work done with raw SQL on
// the same server in the same run, as a ratio (machines are noisy).
//
//	go test -run '^$' -bench . -benchtime 20000x ./store/postgres/

const benchRows = 20000

func openBench(b *testing.B) *Store {
	s, err := Open(context.Background(), testenv.Postgres(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func BenchmarkPut(b *testing.B) {
	s := openBench(b)
	storetest.BenchPut(b, s)
	storeTime := b.Elapsed()
	// Raw baseline: the bodies alone into a keyed table, COPY of 1,000 per
	// transaction.
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, `CREATE TABLE raw (id TEXT PRIMARY KEY, body BYTEA NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	var raw time.Duration
	for i := 0; i < b.N; i += 1000 {
		var rows [][]any
		for j := i; j < min(i+1000, b.N); j++ {
			w := storetest.Synthetic(j)
			rows = append(rows, []any{w.ID, w.Body})
		}
		start := time.Now()
		if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"raw"}, []string{"id", "body"}, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		raw += time.Since(start)
	}
	b.ReportMetric(float64(storeTime)/float64(raw), "x-raw-copy")
}

func loaded(b *testing.B) *Store {
	s := openBench(b)
	storetest.Load(b, s, benchRows)
	if _, err := s.pool.Exec(context.Background(), "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	return s
}

func rawRead(b *testing.B, s *Store, n int) time.Duration {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(9, 9))
	var body []byte
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := s.pool.QueryRow(ctx, `SELECT v.body FROM resources r JOIN resource_versions v ON v.res_pk = r.pk AND v.version = r.version WHERE r.type = $1 AND r.id = $2`,
			"Observation", fmt.Sprintf("obs-%08d", r.IntN(benchRows))).Scan(&body); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

func BenchmarkRead(b *testing.B) {
	s := loaded(b)
	storetest.BenchRead(b, s, benchRows)
	el := b.Elapsed()
	b.StopTimer()
	b.ReportMetric(float64(el)/float64(rawRead(b, s, b.N)), "x-raw-select")
}

func BenchmarkReadParallel16(b *testing.B) {
	s := loaded(b)
	storetest.BenchReadParallel(b, s, benchRows)
}

func BenchmarkSearch(b *testing.B) {
	s := loaded(b)
	storetest.BenchSearch(b, s, benchRows)
}

func graphLoaded(b *testing.B) *Store {
	s := loaded(b)
	storetest.LoadGraph(b, s)
	if _, err := s.pool.Exec(context.Background(), "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkSearchPatientCode(b *testing.B) { storetest.BenchPatientCode(b, graphLoaded(b)) }
func BenchmarkSearchChain1(b *testing.B)      { storetest.BenchChain1(b, graphLoaded(b)) }
func BenchmarkSearchChain2(b *testing.B)      { storetest.BenchChain2(b, graphLoaded(b)) }
func BenchmarkSearchInclude20(b *testing.B)   { storetest.BenchInclude(b, graphLoaded(b), benchRows, 20) }
func BenchmarkSearchInclude100(b *testing.B) {
	storetest.BenchInclude(b, graphLoaded(b), benchRows, 100)
}
