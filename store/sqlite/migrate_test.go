package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"phix/store/sqlite"
	"phix/store/storetest"
)

// TestMigrateConcurrentOpen opens one new file from several stores at once,
// as several processes would: each migration must apply exactly once.
func TestMigrateConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := sqlite.Open(path)
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
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, max int
	if err := db.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != max || n < 1 {
		t.Fatalf("schema_migrations has %d rows up to version %d", n, max)
	}
	// A database from a newer binary is refused.
	if _, err := db.Exec(`INSERT INTO schema_migrations (version) VALUES (999)`); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlite.Open(path); err == nil {
		s.Close()
		t.Fatal("opened a database with a newer schema")
	}
}

func TestOpenRejectsBadPath(t *testing.T) {
	for _, p := range []string{"", "a?b", "a#b"} {
		if s, err := sqlite.Open(p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
	s, err := sqlite.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Read(context.Background(), "Patient", "x"); err == nil {
		t.Fatal("read from empty memory store")
	}
}

// TestMigrateJobBackfill: migration 7 on a job table written before it.
func TestMigrateJobBackfill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Back to schema 6, with jobs in it.
	if _, err := db.Exec(`DROP INDEX reindex_jobs_seq; DROP INDEX reindex_jobs_finished;
		ALTER TABLE reindex_jobs DROP COLUMN seq; ALTER TABLE reindex_jobs DROP COLUMN finished_at;
		DROP TABLE reindex_job_seq; DELETE FROM schema_migrations WHERE version = 7`); err != nil {
		t.Fatal(err)
	}
	for id, doc := range storetest.BackfillDocs {
		if _, err := db.Exec(`INSERT INTO reindex_jobs (id, doc) VALUES (?1, ?2)`, id, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	s, err = sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.CheckJobBackfill(t, s)
}
