package sqlstore

import (
	"context"
	"strconv"
	"strings"
)

// Dialect covers the differences between the SQL engines.
type Dialect interface {
	// Placeholder returns the marker for the n-th bound argument (1-based).
	Placeholder(n int) string
	// True and False are the boolean literals of the deleted column.
	True() string
	False() string
	// Rebind turns a statement written with $1, $2... placeholders into the
	// dialect's form.
	Rebind(sql string) string
	// Contains returns a condition that holds when the text column col
	// contains the bound text ph as a substring (no pattern syntax).
	Contains(col, ph string) string
}

// SQLite is the dialect of modernc.org/sqlite.
type SQLite struct{}

// Placeholder implements Dialect: SQLite's numbered "?NNN" form.
func (SQLite) Placeholder(n int) string { return "?" + strconv.Itoa(n) }

// Rebind implements Dialect.
func (SQLite) Rebind(sql string) string { return strings.ReplaceAll(sql, "$", "?") }

// True implements Dialect.
func (SQLite) True() string { return "1" }

// False implements Dialect.
func (SQLite) False() string { return "0" }

// Contains implements Dialect.
func (SQLite) Contains(col, ph string) string { return "instr(" + col + ", " + ph + ") > 0" }

// Postgres is the dialect of PostgreSQL through pgx.
type Postgres struct{}

// Placeholder implements Dialect.
func (Postgres) Placeholder(n int) string { return "$" + strconv.Itoa(n) }

// Rebind implements Dialect.
func (Postgres) Rebind(sql string) string { return sql }

// True implements Dialect.
func (Postgres) True() string { return "TRUE" }

// False implements Dialect.
func (Postgres) False() string { return "FALSE" }

// Contains implements Dialect.
func (Postgres) Contains(col, ph string) string { return "strpos(" + col + ", " + ph + ") > 0" }

// Rows is the subset of a driver's result set the read paths use.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Querier runs a query; each backend adapts its driver (a pool, a
// connection or a transaction) to it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
}
