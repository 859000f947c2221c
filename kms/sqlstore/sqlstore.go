// Package sqlstore keeps the kms state in SQL: SQLite (modernc.org/sqlite,
// the embedded default) or PostgreSQL (pgx) for scale-out. One
// implementation serves both dialects; both pass kms/kmstest.
//
// Erasure: SQLite runs with secure_delete=ON and a rollback journal, so
// deleted rows are overwritten with zeros in the database file. PostgreSQL
// keeps dead row versions until VACUUM and in its WAL and backups; see
// docs/kms.md for what an operator must do.
package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"phix/kms"
)

type dialect int

const (
	sqlite dialect = iota
	postgres
)

// Store is a kms.Store over database/sql.
type Store struct {
	db *sql.DB
	d  dialect
}

var _ kms.Store = (*Store)(nil)

// OpenSQLite opens (creating if needed, mode 0600) the keyring database at path.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, kms.Wrapf(kms.CodeBackend, err, "create keyring directory")
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, kms.Wrapf(kms.CodeBackend, err, "open keyring database")
	}
	_ = f.Close()
	// secure_delete zeroes deleted content in the database file. The WAL
	// holds older page images until a checkpoint, so every erasure ends with
	// a TRUNCATE checkpoint (see erased).
	dsn := "file:" + path + "?_txlock=immediate" +
		"&_pragma=busy_timeout(10000)&_pragma=secure_delete(ON)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)&_pragma=foreign_keys(ON)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, kms.Wrapf(kms.CodeBackend, err, "open keyring database")
	}
	return open(ctx, db, sqlite)
}

// OpenPostgres connects to the PostgreSQL database at dsn and creates the
// kms tables if needed.
func OpenPostgres(ctx context.Context, dsn string) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, kms.Wrapf(kms.CodeBackend, errors.New("bad DSN"), "open PostgreSQL")
	}
	return open(ctx, db, postgres)
}

func open(ctx context.Context, db *sql.DB, d dialect) (*Store, error) {
	s := &Store{db: db, d: d}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	blob, serial := "BLOB", "INTEGER PRIMARY KEY AUTOINCREMENT"
	if s.d == postgres {
		blob, serial = "BYTEA", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
	}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS kms_meta (name TEXT PRIMARY KEY, value ` + blob + ` NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS kms_keks (id TEXT PRIMARY KEY, hospital TEXT NOT NULL, purpose TEXT NOT NULL,
			suite TEXT NOT NULL, backend TEXT NOT NULL, current_version INTEGER NOT NULL,
			min_decryption INTEGER NOT NULL, created BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS kms_kek_versions (kek TEXT NOT NULL REFERENCES kms_keks(id), version INTEGER NOT NULL,
			handle ` + blob + `, secret ` + blob + `, public ` + blob + `, created BIGINT NOT NULL, destroyed BIGINT,
			PRIMARY KEY (kek, version))`,
		`CREATE TABLE IF NOT EXISTS kms_data_keys (id TEXT PRIMARY KEY, kek TEXT NOT NULL REFERENCES kms_keks(id),
			kek_version INTEGER NOT NULL, wrapped ` + blob + ` NOT NULL, created BIGINT NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS kms_data_keys_kek ON kms_data_keys (kek, id)`,
		`CREATE TABLE IF NOT EXISTS kms_rotations (kek TEXT PRIMARY KEY, to_version INTEGER NOT NULL,
			total INTEGER NOT NULL, done INTEGER NOT NULL, cursor_id TEXT NOT NULL, finished INTEGER NOT NULL,
			started BIGINT NOT NULL, updated BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS kms_custodians (id TEXT PRIMARY KEY, suite TEXT NOT NULL, public ` + blob + ` NOT NULL,
			created BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS kms_nonces (nonce TEXT PRIMARY KEY, expires BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS kms_ops (seq ` + serial + `, at BIGINT NOT NULL, actor TEXT NOT NULL,
			action TEXT NOT NULL, key_id TEXT NOT NULL, version INTEGER NOT NULL, approvers TEXT NOT NULL,
			outcome TEXT NOT NULL, detail TEXT NOT NULL)`,
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return kms.Wrapf(kms.CodeBackend, err, "create kms tables")
		}
	}
	return nil
}

// erased runs after a deletion: on SQLite it checkpoints the WAL into the
// database file (where secure_delete has zeroed the deleted cells) and
// truncates it, so no page image with the erased bytes stays in the WAL.
func (s *Store) erased(ctx context.Context) error {
	if s.d != sqlite {
		return nil
	}
	var busy, logFrames, done int
	if err := s.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
		return storeErr(err)
	}
	if busy != 0 {
		return kms.Errorf(kms.CodeConflict, "erasure committed but the WAL could not be truncated (readers busy): retry")
	}
	return nil
}

// Close implements kms.Store.
func (s *Store) Close() error { return s.db.Close() }

// q rewrites ? placeholders to $n for PostgreSQL.
func (s *Store) q(query string) string {
	if s.d != postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return 0, storeErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, storeErr(err)
	}
	return n, nil
}

// storeErr wraps a driver error. Driver errors name tables and constraints,
// never values, so they are safe to carry.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return kms.Wrapf(kms.CodeBackend, err, "kms store")
}

func notFound(what string) error { return kms.Errorf(kms.CodeNotFound, "%s not found", what) }

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Meta implements kms.Store.
func (s *Store) Meta(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := s.db.QueryRowContext(ctx, s.q(`SELECT value FROM kms_meta WHERE name = ?`), name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("setting " + name)
	}
	return v, storeErr(err)
}

// PutMeta implements kms.Store.
func (s *Store) PutMeta(ctx context.Context, name string, value []byte) error {
	n, err := s.exec(ctx, `INSERT INTO kms_meta (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING`, name, value)
	if err == nil && n == 0 {
		return kms.Errorf(kms.CodeExists, "setting %s already set", name)
	}
	return err
}

// Reseal implements kms.Store.
func (s *Store) Reseal(ctx context.Context, name string, oldValue, newValue []byte, handles []kms.HandleChange) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var cur []byte
		err := tx.QueryRowContext(ctx, s.q(`SELECT value FROM kms_meta WHERE name = ?`), name).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("setting " + name)
		}
		if err != nil {
			return storeErr(err)
		}
		if !bytes.Equal(cur, oldValue) {
			return kms.Errorf(kms.CodeConflict, "setting %s changed meanwhile", name)
		}
		var live int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM kms_kek_versions WHERE handle IS NOT NULL`).Scan(&live); err != nil {
			return storeErr(err)
		}
		if live != len(handles) {
			return kms.Errorf(kms.CodeConflict, "%d KEK versions have handles, %d were resealed: a version was added or destroyed meanwhile", live, len(handles))
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE kms_meta SET value = ? WHERE name = ?`), newValue, name); err != nil {
			return storeErr(err)
		}
		for _, h := range handles {
			var old []byte
			err := tx.QueryRowContext(ctx, s.q(`SELECT handle FROM kms_kek_versions WHERE kek = ? AND version = ?`), h.KEK, h.Version).Scan(&old)
			if errors.Is(err, sql.ErrNoRows) {
				return notFound("KEK version")
			}
			if err != nil {
				return storeErr(err)
			}
			if !bytes.Equal(old, h.Old) {
				return kms.Errorf(kms.CodeConflict, "KEK %s version %d changed meanwhile", h.KEK, h.Version)
			}
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE kms_kek_versions SET handle = ? WHERE kek = ? AND version = ?`), h.New, h.KEK, h.Version); err != nil {
				return storeErr(err)
			}
		}
		return nil
	})
}

func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return storeErr(err)
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return storeErr(tx.Commit())
}

func insertVersion(ctx context.Context, s *Store, tx *sql.Tx, v kms.KEKVersion) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO kms_kek_versions (kek, version, handle, secret, public, created, destroyed)
		VALUES (?, ?, ?, ?, ?, ?, NULL)`), v.KEK, v.Version, v.Handle, v.Secret, v.Public, nanos(v.Created))
	return storeErr(err)
}

// CreateKEK implements kms.Store.
func (s *Store) CreateKEK(ctx context.Context, k kms.KEK, v kms.KEKVersion) error {
	if v.KEK != k.ID || v.Version != k.Current {
		return kms.Errorf(kms.CodeBadInput, "first version does not match KEK")
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO kms_keks (id, hospital, purpose, suite, backend, current_version, min_decryption, created)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
			k.ID, k.Hospital, string(k.Purpose), k.Suite, k.Backend, k.Current, k.MinDecryption, nanos(k.Created))
		if err != nil {
			return storeErr(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kms.Errorf(kms.CodeExists, "KEK %s exists", k.ID)
		}
		return insertVersion(ctx, s, tx, v)
	})
}

// AddKEKVersion implements kms.Store.
func (s *Store) AddKEKVersion(ctx context.Context, v kms.KEKVersion) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE kms_keks SET current_version = ? WHERE id = ? AND current_version = ?`),
			v.Version, v.KEK, v.Version-1)
		if err != nil {
			return storeErr(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kms.Errorf(kms.CodeConflict, "KEK %s is not at version %d", v.KEK, v.Version-1)
		}
		return insertVersion(ctx, s, tx, v)
	})
}

// ImportKEKVersion implements kms.Store.
func (s *Store) ImportKEKVersion(ctx context.Context, k kms.KEK, v kms.KEKVersion) error {
	if v.KEK != k.ID || v.Version < 1 {
		return kms.Errorf(kms.CodeBadInput, "imported version does not match KEK")
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO kms_keks (id, hospital, purpose, suite, backend, current_version, min_decryption, created)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
			k.ID, k.Hospital, string(k.Purpose), k.Suite, k.Backend, v.Version, 1, nanos(k.Created)); err != nil {
			return storeErr(err)
		}
		cur, err := scanKEK(tx.QueryRowContext(ctx, s.q(`SELECT `+kekCols+` FROM kms_keks WHERE id = ?`), k.ID))
		if err != nil {
			return storeErr(err)
		}
		if cur.Purpose != k.Purpose || cur.Suite != k.Suite || cur.Backend != k.Backend {
			return kms.Errorf(kms.CodeConflict, "KEK %s exists with another purpose, suite or backend", k.ID)
		}
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO kms_kek_versions (kek, version, handle, secret, public, created, destroyed)
			VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING`), v.KEK, v.Version, v.Handle, v.Secret, v.Public, nanos(v.Created))
		if err != nil {
			return storeErr(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kms.Errorf(kms.CodeExists, "KEK %s version %d exists", k.ID, v.Version)
		}
		if v.Version > cur.Current {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE kms_keks SET current_version = ? WHERE id = ?`), v.Version, k.ID); err != nil {
				return storeErr(err)
			}
		}
		return nil
	})
}

const kekCols = `id, hospital, purpose, suite, backend, current_version, min_decryption, created`

func scanKEK(sc interface{ Scan(...any) error }) (kms.KEK, error) {
	var k kms.KEK
	var p string
	var created int64
	err := sc.Scan(&k.ID, &k.Hospital, &p, &k.Suite, &k.Backend, &k.Current, &k.MinDecryption, &created)
	k.Purpose, k.Created = kms.Purpose(p), fromNanos(created)
	return k, err
}

// KEK implements kms.Store.
func (s *Store) KEK(ctx context.Context, id string) (kms.KEK, error) {
	k, err := scanKEK(s.db.QueryRowContext(ctx, s.q(`SELECT `+kekCols+` FROM kms_keks WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return kms.KEK{}, notFound("KEK")
	}
	return k, storeErr(err)
}

// KEKAndVersion implements kms.Store.
func (s *Store) KEKAndVersion(ctx context.Context, id string, version int) (kms.KEK, kms.KEKVersion, error) {
	var k kms.KEK
	var p string
	var created int64
	var vkek sql.NullString
	var vver sql.NullInt64
	var v kms.KEKVersion
	var vcreated, destroyed sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT k.id, k.hospital, k.purpose, k.suite, k.backend, k.current_version,
			k.min_decryption, k.created, v.kek, v.version, v.handle, v.secret, v.public, v.created, v.destroyed
		FROM kms_keks k LEFT JOIN kms_kek_versions v
			ON v.kek = k.id AND v.version = CASE WHEN ? = 0 THEN k.current_version ELSE ? END
		WHERE k.id = ?`), version, version, id).Scan(&k.ID, &k.Hospital, &p, &k.Suite, &k.Backend, &k.Current,
		&k.MinDecryption, &created, &vkek, &vver, &v.Handle, &v.Secret, &v.Public, &vcreated, &destroyed)
	if errors.Is(err, sql.ErrNoRows) {
		return kms.KEK{}, kms.KEKVersion{}, notFound("KEK")
	}
	if err != nil {
		return kms.KEK{}, kms.KEKVersion{}, storeErr(err)
	}
	k.Purpose, k.Created = kms.Purpose(p), fromNanos(created)
	if !vkek.Valid {
		return k, kms.KEKVersion{}, notFound("KEK version")
	}
	v.KEK, v.Version = vkek.String, int(vver.Int64)
	v.Created, v.Destroyed = fromNanos(vcreated.Int64), fromNanos(destroyed.Int64)
	return k, v, nil
}

// KEKs implements kms.Store.
func (s *Store) KEKs(ctx context.Context) ([]kms.KEK, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+kekCols+` FROM kms_keks ORDER BY id`)
	if err != nil {
		return nil, storeErr(err)
	}
	defer rows.Close()
	var out []kms.KEK
	for rows.Next() {
		k, err := scanKEK(rows)
		if err != nil {
			return nil, storeErr(err)
		}
		out = append(out, k)
	}
	return out, storeErr(rows.Err())
}

const versionCols = `kek, version, handle, secret, public, created, destroyed`

func scanVersion(sc interface{ Scan(...any) error }) (kms.KEKVersion, error) {
	var v kms.KEKVersion
	var created int64
	var destroyed sql.NullInt64
	err := sc.Scan(&v.KEK, &v.Version, &v.Handle, &v.Secret, &v.Public, &created, &destroyed)
	v.Created, v.Destroyed = fromNanos(created), fromNanos(destroyed.Int64)
	return v, err
}

// KEKVersion implements kms.Store.
func (s *Store) KEKVersion(ctx context.Context, id string, version int) (kms.KEKVersion, error) {
	v, err := scanVersion(s.db.QueryRowContext(ctx, s.q(`SELECT `+versionCols+` FROM kms_kek_versions WHERE kek = ? AND version = ?`), id, version))
	if errors.Is(err, sql.ErrNoRows) {
		return kms.KEKVersion{}, notFound("KEK version")
	}
	return v, storeErr(err)
}

// KEKVersions implements kms.Store.
func (s *Store) KEKVersions(ctx context.Context, id string) ([]kms.KEKVersion, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+versionCols+` FROM kms_kek_versions WHERE kek = ? ORDER BY version`), id)
	if err != nil {
		return nil, storeErr(err)
	}
	defer rows.Close()
	var out []kms.KEKVersion
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, storeErr(err)
		}
		out = append(out, v)
	}
	return out, storeErr(rows.Err())
}

// SetMinDecryption implements kms.Store.
func (s *Store) SetMinDecryption(ctx context.Context, id string, version int) error {
	n, err := s.exec(ctx, `UPDATE kms_keks SET min_decryption = ? WHERE id = ?`, version, id)
	if err == nil && n == 0 {
		return notFound("KEK")
	}
	return err
}

// DestroyKEKVersion implements kms.Store.
func (s *Store) DestroyKEKVersion(ctx context.Context, id string, version int, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	n, err := s.exec(ctx, `UPDATE kms_kek_versions SET handle = NULL, secret = NULL, destroyed = ? WHERE kek = ? AND version = ?`,
		nanos(at), id, version)
	if err == nil && n == 0 {
		return notFound("KEK version")
	}
	if err != nil {
		return err
	}
	return s.erased(ctx)
}

// PutDataKey implements kms.Store.
func (s *Store) PutDataKey(ctx context.Context, k kms.DataKey) error {
	n, err := s.exec(ctx, `INSERT INTO kms_data_keys (id, kek, kek_version, wrapped, created) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		k.ID, k.KEK, k.KEKVersion, k.Wrapped, nanos(k.Created))
	if err == nil && n == 0 {
		return kms.Errorf(kms.CodeExists, "data key %s exists", k.ID)
	}
	return err
}

const dataCols = `id, kek, kek_version, wrapped, created`

func scanData(sc interface{ Scan(...any) error }) (kms.DataKey, error) {
	var k kms.DataKey
	var created int64
	err := sc.Scan(&k.ID, &k.KEK, &k.KEKVersion, &k.Wrapped, &created)
	k.Created = fromNanos(created)
	return k, err
}

// DataKey implements kms.Store.
func (s *Store) DataKey(ctx context.Context, id string) (kms.DataKey, error) {
	k, err := scanData(s.db.QueryRowContext(ctx, s.q(`SELECT `+dataCols+` FROM kms_data_keys WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return kms.DataKey{}, notFound("data key")
	}
	return k, storeErr(err)
}

// DeleteDataKey implements kms.Store.
func (s *Store) DeleteDataKey(ctx context.Context, id string) error {
	n, err := s.exec(ctx, `DELETE FROM kms_data_keys WHERE id = ?`, id)
	if err == nil && n == 0 {
		return notFound("data key")
	}
	if err != nil {
		return err
	}
	return s.erased(ctx)
}

// CountDataKeysBelow implements kms.Store.
func (s *Store) CountDataKeysBelow(ctx context.Context, kek string, version int) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM kms_data_keys WHERE kek = ? AND kek_version < ?`), kek, version).Scan(&n)
	return n, storeErr(err)
}

// DataKeysBelow implements kms.Store.
func (s *Store) DataKeysBelow(ctx context.Context, kek string, version int, after string, limit int) ([]kms.DataKey, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+dataCols+` FROM kms_data_keys WHERE kek = ? AND kek_version < ? AND id > ?
		ORDER BY id LIMIT ?`), kek, version, after, limit)
	if err != nil {
		return nil, storeErr(err)
	}
	defer rows.Close()
	var out []kms.DataKey
	for rows.Next() {
		k, err := scanData(rows)
		if err != nil {
			return nil, storeErr(err)
		}
		out = append(out, k)
	}
	return out, storeErr(rows.Err())
}

// RewrapDataKey implements kms.Store.
func (s *Store) RewrapDataKey(ctx context.Context, k kms.DataKey, fromVersion int) error {
	n, err := s.exec(ctx, `UPDATE kms_data_keys SET wrapped = ?, kek_version = ? WHERE id = ? AND kek_version = ?`,
		k.Wrapped, k.KEKVersion, k.ID, fromVersion)
	if err == nil && n == 0 {
		return kms.Errorf(kms.CodeConflict, "data key %s is no longer at version %d", k.ID, fromVersion)
	}
	return err
}

// PutRotation implements kms.Store.
func (s *Store) PutRotation(ctx context.Context, r kms.Rotation) error {
	fin := 0
	if r.Finished {
		fin = 1
	}
	_, err := s.exec(ctx, `INSERT INTO kms_rotations (kek, to_version, total, done, cursor_id, finished, started, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (kek) DO UPDATE SET to_version = excluded.to_version, total = excluded.total, done = excluded.done,
			cursor_id = excluded.cursor_id, finished = excluded.finished, started = excluded.started, updated = excluded.updated`,
		r.KEK, r.ToVersion, r.Total, r.Done, r.Cursor, fin, nanos(r.Started), nanos(r.Updated))
	return err
}

// Rotation implements kms.Store.
func (s *Store) Rotation(ctx context.Context, kek string) (kms.Rotation, error) {
	var r kms.Rotation
	var fin int
	var started, updated int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT kek, to_version, total, done, cursor_id, finished, started, updated
		FROM kms_rotations WHERE kek = ?`), kek).Scan(&r.KEK, &r.ToVersion, &r.Total, &r.Done, &r.Cursor, &fin, &started, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return kms.Rotation{}, notFound("rotation")
	}
	r.Finished, r.Started, r.Updated = fin != 0, fromNanos(started), fromNanos(updated)
	return r, storeErr(err)
}

// PutCustodian implements kms.Store.
func (s *Store) PutCustodian(ctx context.Context, c kms.Custodian) error {
	n, err := s.exec(ctx, `INSERT INTO kms_custodians (id, suite, public, created) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		c.ID, c.Suite, c.Public, nanos(c.Created))
	if err == nil && n == 0 {
		return kms.Errorf(kms.CodeExists, "custodian %s exists", c.ID)
	}
	return err
}

func scanCustodian(sc interface{ Scan(...any) error }) (kms.Custodian, error) {
	var c kms.Custodian
	var created int64
	err := sc.Scan(&c.ID, &c.Suite, &c.Public, &created)
	c.Created = fromNanos(created)
	return c, err
}

// Custodian implements kms.Store.
func (s *Store) Custodian(ctx context.Context, id string) (kms.Custodian, error) {
	c, err := scanCustodian(s.db.QueryRowContext(ctx, s.q(`SELECT id, suite, public, created FROM kms_custodians WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return kms.Custodian{}, notFound("custodian")
	}
	return c, storeErr(err)
}

// Custodians implements kms.Store.
func (s *Store) Custodians(ctx context.Context) ([]kms.Custodian, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, suite, public, created FROM kms_custodians ORDER BY id`)
	if err != nil {
		return nil, storeErr(err)
	}
	defer rows.Close()
	var out []kms.Custodian
	for rows.Next() {
		c, err := scanCustodian(rows)
		if err != nil {
			return nil, storeErr(err)
		}
		out = append(out, c)
	}
	return out, storeErr(rows.Err())
}

// UseNonces implements kms.Store. Expired nonces are purged on the way: an
// approval past its expiry is refused before its nonce is looked at.
func (s *Store) UseNonces(ctx context.Context, nonces []kms.Nonce) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM kms_nonces WHERE expires < ?`), time.Now().Add(-time.Hour).UnixNano()); err != nil {
			return storeErr(err)
		}
		for _, n := range nonces {
			res, err := tx.ExecContext(ctx, s.q(`INSERT INTO kms_nonces (nonce, expires) VALUES (?, ?) ON CONFLICT DO NOTHING`), n.Value, nanos(n.Expires))
			if err != nil {
				return storeErr(err)
			}
			if k, _ := res.RowsAffected(); k == 0 {
				return kms.Errorf(kms.CodeExists, "nonce already used")
			}
		}
		return nil
	})
}

// AppendOp implements kms.Store.
func (s *Store) AppendOp(ctx context.Context, op kms.Op) error {
	for _, a := range op.Approvers {
		if strings.Contains(a, ",") {
			return kms.Errorf(kms.CodeBadInput, "approver id contains a comma")
		}
	}
	_, err := s.exec(ctx, `INSERT INTO kms_ops (at, actor, action, key_id, version, approvers, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		nanos(op.Time), op.Actor, op.Action, op.Key, op.Version, strings.Join(op.Approvers, ","), op.Outcome, op.Detail)
	return err
}

// Ops implements kms.Store.
func (s *Store) Ops(ctx context.Context, after int64, limit int) ([]kms.Op, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT seq, at, actor, action, key_id, version, approvers, outcome, detail
		FROM kms_ops WHERE seq > ? ORDER BY seq LIMIT ?`), after, limit)
	if err != nil {
		return nil, storeErr(err)
	}
	defer rows.Close()
	var out []kms.Op
	for rows.Next() {
		var op kms.Op
		var at int64
		var approvers string
		if err := rows.Scan(&op.Seq, &at, &op.Actor, &op.Action, &op.Key, &op.Version, &approvers, &op.Outcome, &op.Detail); err != nil {
			return nil, storeErr(err)
		}
		op.Time = fromNanos(at)
		if approvers != "" {
			op.Approvers = strings.Split(approvers, ",")
		}
		out = append(out, op)
	}
	return out, storeErr(rows.Err())
}

// String names the store for messages.
func (s *Store) String() string {
	if s.d == postgres {
		return "postgres"
	}
	return "sqlite"
}
