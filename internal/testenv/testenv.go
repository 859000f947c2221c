// Package testenv gives tests the real services and shared material they need,
// and decides what happens when one is missing: skip on a developer machine,
// fail under CI=true.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// CI reports whether the tests run under CI (CI=true), where a missing
// service or missing shared material is a failure rather than a skip.
func CI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test, or fails it under CI, saying what is missing.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("required under CI=true: %s", msg)
	}
	t.Skipf("skipping: %s", msg)
}

// SharedDir returns the path of ../shared (the read-only development material)
// or skips/fails when it is absent. PHIX_SHARED overrides the location.
func SharedDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("PHIX_SHARED"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	// internal/testenv/testenv.go -> repo root -> ../shared
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	d := filepath.Join(filepath.Dir(root), "shared")
	if _, err := os.Stat(filepath.Join(d, "DESIGN.md")); err != nil {
		Missing(t, "shared material not found at %s (set PHIX_SHARED)", d)
	}
	return d
}

// Shared returns a path inside the shared directory, e.g. Shared(t, "testdata", "synthea").
func Shared(t testing.TB, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{SharedDir(t)}, elem...)...)
}

// PostgresURL is the server the tests use: PHIX_TEST_POSTGRES, or the local
// server on 127.0.0.1:5432 that the development and CI machines run.
func PostgresURL() string {
	if u := os.Getenv("PHIX_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Postgres creates a fresh, empty database for the test on the test server and
// returns its DSN; the database is dropped when the test ends. It skips (or
// fails under CI) when the server is unreachable.
func Postgres(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := PostgresURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		Missing(t, "PostgreSQL at %s: %v", redact(admin), err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "phix_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse PostgreSQL URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// NATSURL is the NATS server (with JetStream) the tests use: PHIX_TEST_NATS, or
// nats://127.0.0.1:4222. It skips (or fails under CI) when nothing listens there.
func NATSURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("PHIX_TEST_NATS")
	if u == "" {
		u = "nats://127.0.0.1:4222"
	}
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("parse NATS URL: %v", err)
	}
	c, err := net.DialTimeout("tcp", pu.Host, 2*time.Second)
	if err != nil {
		Missing(t, "NATS at %s: %v", pu.Host, err)
	}
	_ = c.Close()
	return u
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable DSN)"
	}
	return u.Redacted()
}
