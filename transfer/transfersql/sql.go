// Package transfersql is the transfer.Store on SQLite (modernc.org/sqlite,
// the embedded default) and PostgreSQL (pgx): one implementation over
// database/sql sharing its SQL, with the dialect differences (placeholders,
// the binary column type) kept in one place.
package transfersql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	_ "modernc.org/sqlite"             // SQLite driver "sqlite"

	"phix/transfer"
)

// Store implements transfer.Store.
type Store struct {
	db *sql.DB
	pg bool
}

var _ transfer.Store = (*Store)(nil)

// Open opens url: "postgres://..." or "postgresql://..." for PostgreSQL,
// anything else is a SQLite file path ("sqlite:" prefix optional). It
// creates the schema if needed.
func Open(ctx context.Context, url string) (*Store, error) {
	s := &Store{}
	var err error
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		s.pg = true
		s.db, err = sql.Open("pgx", url)
	} else {
		path := strings.TrimPrefix(url, "sqlite:")
		s.db, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
		if err == nil {
			// One writer avoids SQLITE_BUSY storms; WAL lets readers share it.
			s.db.SetMaxOpenConns(1)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("transfersql: open: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	bin := "BLOB"
	if s.pg {
		bin = "BYTEA"
	}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS trf_hospitals (id TEXT PRIMARY KEY, status TEXT NOT NULL, doc TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS trf_transfers (id TEXT PRIMARY KEY, sender TEXT NOT NULL, receiver TEXT NOT NULL,
			status TEXT NOT NULL, created BIGINT NOT NULL, updated BIGINT NOT NULL, doc TEXT NOT NULL,
			receipt TEXT, reason TEXT NOT NULL DEFAULT '', consent TEXT NOT NULL DEFAULT '',
			retention_until BIGINT NOT NULL DEFAULT 0, erased BIGINT NOT NULL DEFAULT 0)`,
		`CREATE INDEX IF NOT EXISTS trf_transfers_sender ON trf_transfers (sender, created)`,
		`CREATE INDEX IF NOT EXISTS trf_transfers_receiver ON trf_transfers (receiver, created)`,
		`CREATE TABLE IF NOT EXISTS trf_files (transfer TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL,
			size BIGINT NOT NULL, off BIGINT NOT NULL, status TEXT NOT NULL, hash_state ` + bin + `,
			PRIMARY KEY (transfer, idx))`,
		`CREATE TABLE IF NOT EXISTS trf_caps (hash TEXT PRIMARY KEY, kind TEXT NOT NULL, transfer TEXT NOT NULL,
			idx INTEGER NOT NULL, hospital TEXT NOT NULL, cert_fp TEXT NOT NULL, expires BIGINT NOT NULL, dead INTEGER NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS trf_caps_file ON trf_caps (transfer, idx)`,
		`CREATE TABLE IF NOT EXISTS trf_consent_withdrawals (sender TEXT NOT NULL, consent TEXT NOT NULL,
			withdrawn BIGINT NOT NULL, PRIMARY KEY (sender, consent))`,
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			if s.pg && isPGUniqueRace(err) {
				// Two replicas creating the schema at once: the other one won.
				continue
			}
			return fmt.Errorf("transfersql: migrate: %w", err)
		}
	}
	// Databases made before retention existed get the columns; "duplicate
	// column" means it is already there.
	for _, col := range []string{`consent TEXT NOT NULL DEFAULT ''`, `retention_until BIGINT NOT NULL DEFAULT 0`, `erased BIGINT NOT NULL DEFAULT 0`} {
		add := `ALTER TABLE trf_transfers ADD COLUMN `
		if s.pg {
			add += `IF NOT EXISTS `
		}
		if _, err := s.db.ExecContext(ctx, add+col); err != nil && !isDuplicateColumn(err) {
			return fmt.Errorf("transfersql: migrate: %w", err)
		}
	}
	for _, q := range []string{
		`CREATE INDEX IF NOT EXISTS trf_transfers_consent ON trf_transfers (sender, consent)`,
		`CREATE INDEX IF NOT EXISTS trf_transfers_erase ON trf_transfers (erased, status, updated)`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil && !(s.pg && isPGUniqueRace(err)) {
			return fmt.Errorf("transfersql: migrate: %w", err)
		}
	}

	return nil
}

func isDuplicateColumn(err error) bool {
	m := err.Error()
	return strings.Contains(m, "duplicate column") || strings.Contains(m, "42701")
}

func isPGUniqueRace(err error) bool {
	return strings.Contains(err.Error(), "23505") || strings.Contains(err.Error(), "42P07")
}

// q rewrites ? placeholders to $n for PostgreSQL.
func (s *Store) q(query string) string {
	if !s.pg {
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

func isUnique(err error) bool {
	m := err.Error()
	return strings.Contains(m, "UNIQUE constraint") || strings.Contains(m, "23505")
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// AddHospital inserts a hospital; transfer.ErrExists if the id is taken.
func (s *Store) AddHospital(ctx context.Context, h transfer.Hospital) error {
	doc, err := json.Marshal(h)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO trf_hospitals (id, status, doc) VALUES (?, ?, ?)`), h.ID, h.Status, string(doc))
	if err != nil && isUnique(err) {
		return transfer.ErrExists
	}
	return err
}

// Hospital returns one hospital.
func (s *Store) Hospital(ctx context.Context, id string) (transfer.Hospital, error) {
	var status, doc string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT status, doc FROM trf_hospitals WHERE id = ?`), id).Scan(&status, &doc)
	if errors.Is(err, sql.ErrNoRows) {
		return transfer.Hospital{}, transfer.ErrNotFound
	}
	if err != nil {
		return transfer.Hospital{}, err
	}
	var h transfer.Hospital
	if err := json.Unmarshal([]byte(doc), &h); err != nil {
		return transfer.Hospital{}, err
	}
	h.Status = status
	return h, nil
}

// Hospitals lists every hospital by id.
func (s *Store) Hospitals(ctx context.Context) ([]transfer.Hospital, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT status, doc FROM trf_hospitals ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []transfer.Hospital
	for rows.Next() {
		var status, doc string
		if err := rows.Scan(&status, &doc); err != nil {
			return nil, err
		}
		var h transfer.Hospital
		if err := json.Unmarshal([]byte(doc), &h); err != nil {
			return nil, err
		}
		h.Status = status
		out = append(out, h)
	}
	return out, rows.Err()
}

// SetHospitalStatus changes a hospital's status.
func (s *Store) SetHospitalStatus(ctx context.Context, id, status string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE trf_hospitals SET status = ? WHERE id = ?`), status, id)
	if err != nil {
		return err
	}
	return affected(res, transfer.ErrNotFound)
}

func affected(res sql.Result, none error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return none
	}
	return nil
}

// CreateTransfer stores a transfer, its files and capabilities in one transaction.
func (s *Store) CreateTransfer(ctx context.Context, t transfer.Transfer, files []transfer.File, caps []transfer.Capability) error {
	doc, err := json.Marshal(t.Request)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO trf_transfers (id, sender, receiver, status, created, updated, doc, reason, consent, retention_until)
		VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?)`), t.ID, t.Sender, t.Receiver, t.Status, t.Created.UnixMicro(), t.Updated.UnixMicro(), string(doc),
		t.Request.ConsentID, t.Request.RetentionUntil.UnixMicro()); err != nil {
		if isUnique(err) {
			return transfer.ErrExists
		}
		return err
	}
	for _, f := range files {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO trf_files (transfer, idx, name, size, off, status, hash_state) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			t.ID, f.Index, f.Name, f.Size, f.Offset, f.Status, f.HashState); err != nil {
			return err
		}
	}
	for _, c := range caps {
		if err := s.addCap(ctx, tx, c); err != nil {
			return err
		}
	}
	return tx.Commit()
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *Store) addCap(ctx context.Context, e execer, c transfer.Capability) error {
	_, err := e.ExecContext(ctx, s.q(`INSERT INTO trf_caps (hash, kind, transfer, idx, hospital, cert_fp, expires, dead) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		c.Hash, c.Kind, c.Transfer, c.File, c.Hospital, c.CertFP, c.Expires.UnixMicro(), boolInt(c.Dead))
	if err != nil && isUnique(err) {
		return transfer.ErrExists
	}
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

const transferCols = `id, sender, receiver, status, created, updated, doc, receipt, reason, erased`

type scanner interface{ Scan(...any) error }

func scanTransfer(r scanner) (transfer.Transfer, error) {
	var t transfer.Transfer
	var created, updated, erased int64
	var doc string
	var receipt sql.NullString
	if err := r.Scan(&t.ID, &t.Sender, &t.Receiver, &t.Status, &created, &updated, &doc, &receipt, &t.Reason, &erased); err != nil {
		return t, err
	}
	t.Created, t.Updated = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	if erased != 0 {
		t.Erased = time.UnixMicro(erased).UTC()
	}
	if err := json.Unmarshal([]byte(doc), &t.Request); err != nil {
		return t, err
	}
	if receipt.Valid && receipt.String != "" {
		t.Receipt = new(transfer.Receipt)
		if err := json.Unmarshal([]byte(receipt.String), t.Receipt); err != nil {
			return t, err
		}
	}
	return t, nil
}

// Transfer returns a transfer and its files in index order.
func (s *Store) Transfer(ctx context.Context, id string) (transfer.Transfer, []transfer.File, error) {
	t, err := scanTransfer(s.db.QueryRowContext(ctx, s.q(`SELECT `+transferCols+` FROM trf_transfers WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, nil, transfer.ErrNotFound
	}
	if err != nil {
		return t, nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT idx, name, size, off, status, hash_state FROM trf_files WHERE transfer = ? ORDER BY idx`), id)
	if err != nil {
		return t, nil, err
	}
	defer rows.Close()
	var files []transfer.File
	for rows.Next() {
		f := transfer.File{Transfer: id}
		if err := rows.Scan(&f.Index, &f.Name, &f.Size, &f.Offset, &f.Status, &f.HashState); err != nil {
			return t, nil, err
		}
		files = append(files, f)
	}
	return t, files, rows.Err()
}

// Transfers lists a hospital's transfers, newest first.
func (s *Store) Transfers(ctx context.Context, hospital, role string, limit int) ([]transfer.Transfer, error) {
	var query string
	switch role {
	case "sender":
		query = `SELECT ` + transferCols + ` FROM trf_transfers WHERE sender = ? ORDER BY created DESC, id LIMIT ?`
	case "receiver":
		query = `SELECT ` + transferCols + ` FROM trf_transfers WHERE receiver = ? AND status IN ('ready', 'delivered') ORDER BY created DESC, id LIMIT ?`
	default:
		return nil, fmt.Errorf("transfersql: unknown role")
	}
	return s.queryTransfers(ctx, query, hospital, limit)
}

func (s *Store) queryTransfers(ctx context.Context, query string, args ...any) ([]transfer.Transfer, error) {
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []transfer.Transfer
	for rows.Next() {
		t, err := scanTransfer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// SetTransferStatus moves a transfer between statuses (compare-and-set).
func (s *Store) SetTransferStatus(ctx context.Context, id string, from []string, to string, receipt *transfer.Receipt, reason string) error {
	args := []any{to, time.Now().UnixMicro(), reason}
	set := `status = ?, updated = ?, reason = ?`
	if receipt != nil {
		doc, err := json.Marshal(receipt)
		if err != nil {
			return err
		}
		set += `, receipt = ?`
		args = append(args, string(doc))
	}
	args = append(args, id)
	ph := make([]string, len(from))
	for i, f := range from {
		ph[i] = "?"
		args = append(args, f)
	}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE trf_transfers SET `+set+` WHERE id = ? AND status IN (`+strings.Join(ph, ", ")+`)`), args...)
	if err != nil {
		return err
	}
	if err := affected(res, transfer.ErrConflict); err != nil {
		var n int
		if s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM trf_transfers WHERE id = ?`), id).Scan(&n) != nil {
			return transfer.ErrNotFound
		}
		return err
	}
	return nil
}

// AdvanceFile stores a file's new offset, status and hash state if its
// offset is still old.
func (s *Store) AdvanceFile(ctx context.Context, f transfer.File, old int64) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE trf_files SET off = ?, status = ?, hash_state = ? WHERE transfer = ? AND idx = ? AND off = ? AND status = 'pending'`),
		f.Offset, f.Status, f.HashState, f.Transfer, f.Index, old)
	if err != nil {
		return err
	}
	return affected(res, transfer.ErrConflict)
}

// AddCapability stores a capability.
func (s *Store) AddCapability(ctx context.Context, c transfer.Capability) error {
	return s.addCap(ctx, s.db, c)
}

// Capability looks a capability up by its hash.
func (s *Store) Capability(ctx context.Context, hash string) (transfer.Capability, error) {
	c := transfer.Capability{Hash: hash}
	var exp int64
	var dead int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT kind, transfer, idx, hospital, cert_fp, expires, dead FROM trf_caps WHERE hash = ?`), hash).
		Scan(&c.Kind, &c.Transfer, &c.File, &c.Hospital, &c.CertFP, &exp, &dead)
	if errors.Is(err, sql.ErrNoRows) {
		return c, transfer.ErrNotFound
	}
	c.Expires, c.Dead = time.UnixMicro(exp).UTC(), dead != 0
	return c, err
}

// TouchCapability extends a live capability.
func (s *Store) TouchCapability(ctx context.Context, hash string, expires time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE trf_caps SET expires = ? WHERE hash = ? AND dead = 0`), expires.UnixMicro(), hash)
	if err != nil {
		return err
	}
	return affected(res, transfer.ErrNotFound)
}

// KillCapabilities marks capabilities dead.
func (s *Store) KillCapabilities(ctx context.Context, kind, id string, file int) error {
	var err error
	if file < 0 {
		_, err = s.db.ExecContext(ctx, s.q(`UPDATE trf_caps SET dead = 1 WHERE kind = ? AND transfer = ?`), kind, id)
	} else {
		_, err = s.db.ExecContext(ctx, s.q(`UPDATE trf_caps SET dead = 1 WHERE kind = ? AND transfer = ? AND idx = ?`), kind, id, file)
	}
	return err
}
