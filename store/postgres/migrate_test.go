package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"phix/internal/testenv"
	"phix/store/postgres"
	"phix/store/storetest"
)

// TestMigrateConcurrentOpen opens one new database from several stores at
// once, as several replicas would: each migration must apply exactly once.
func TestMigrateConcurrentOpen(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(ctx, dsn)
			if err != nil {
				errs <- err
				return
			}
			errs <- s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n, max int
	if err := conn.QueryRow(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != max || n < 1 {
		t.Fatalf("schema_migrations has %d rows up to version %d", n, max)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES (999)`); err != nil {
		t.Fatal(err)
	}
	if s, err := postgres.Open(ctx, dsn); err == nil {
		s.Close()
		t.Fatal("opened a database with a newer schema")
	}
}

func TestOpenBadDSN(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://user:s3cret@127.0.0.1:5432/db?sslmode=bogus")
	if err == nil {
		t.Fatal("bad DSN accepted")
	}
	if msg := err.Error(); strings.Contains(msg, "s3cret") {
		t.Fatalf("error quotes the password: %s", msg)
	}
}

// TestMigrateJobBackfill: migration 7 on a job table written before it.
func TestMigrateJobBackfill(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Back to schema 6, with jobs in it.
	if _, err := conn.Exec(ctx, `DROP INDEX reindex_jobs_seq; DROP INDEX reindex_jobs_finished;
		ALTER TABLE reindex_jobs DROP COLUMN seq; ALTER TABLE reindex_jobs DROP COLUMN finished_at;
		DROP TABLE reindex_job_seq; DELETE FROM schema_migrations WHERE version = 7`); err != nil {
		t.Fatal(err)
	}
	for id, doc := range storetest.BackfillDocs {
		if _, err := conn.Exec(ctx, `INSERT INTO reindex_jobs (id, doc) VALUES ($1, $2)`, id, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	s, err = postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.CheckJobBackfill(t, s)
}
