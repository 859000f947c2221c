package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"phix/store"
	"phix/store/internal/sqlstore"
)

var _ store.Reindexer = (*Store)(nil)

// ReindexBatch implements store.Reindexer. The batch runs in one write
// transaction (BEGIN IMMEDIATE): writers wait for it, so no write can slip
// between reading a resource and replacing its entries; readers go on.
func (s *Store) ReindexBatch(ctx context.Context, b *store.ReindexBatch) (last int64, n int, err error) {
	if err := sqlstore.CheckReindexBatch(b); err != nil {
		return 0, 0, err
	}
	last = b.After
	err = s.Tx(ctx, func(stx store.Tx) error {
		t := stx.(*tx)
		q := t.q()
		items, err := sqlstore.LoadReindexBatch(ctx, q, dialect, b.Types, b.After, b.Limit, false)
		if err != nil {
			return err
		}
		for _, it := range items {
			rows, mask, err := sqlstore.ReindexRows(b, it)
			if err != nil {
				return err
			}
			if err := t.clearIndex(ctx, q, it, b.Params); err != nil {
				return err
			}
			if err := t.insertIndex(ctx, q, it.PK, it.Rec.Type, rows); err != nil {
				t.broken = err
				return err
			}
			if _, err := q.exec(ctx, `UPDATE resources SET idx_mask = ?1 WHERE pk = ?2`, int64(mask), it.PK); err != nil {
				t.broken = sqlstore.DBError("reindex: mask", err)
				return t.broken
			}
			last = it.PK
		}
		n = len(items)
		return nil
	})
	if err != nil {
		return b.After, 0, err
	}
	return last, n, nil
}

// clearIndex removes the entries a reindex replaces: every entry (by the
// old mask), or the entries of params.
func (t *tx) clearIndex(ctx context.Context, q querier, it sqlstore.ReindexItem, params []string) error {
	for i, tb := range sqlstore.Tables {
		if it.Mask&tb.Bit == 0 {
			continue
		}
		var err error
		if len(params) == 0 {
			_, err = q.exec(ctx, deleteSQL(i), it.PK)
		} else {
			args := []any{it.PK}
			ph := make([]string, len(params))
			for j, p := range params {
				args = append(args, p)
				ph[j] = fmt.Sprintf("?%d", j+2)
			}
			_, err = q.exec(ctx, "DELETE FROM "+tb.Name+" WHERE res_pk = ?1 AND param IN ("+strings.Join(ph, ", ")+")", args...)
		}
		if err != nil {
			t.broken = sqlstore.DBError("reindex: clear", err)
			return t.broken
		}
	}
	return nil
}

// CountCurrent implements store.Reindexer.
func (s *Store) CountCurrent(ctx context.Context, types []string, after int64) (int64, error) {
	return sqlstore.CountCurrent(ctx, s.reader(), dialect, types, after)
}

// DropIndex implements store.Reindexer: DropBatch rows per transaction, so
// writers are never held for long.
func (s *Store) DropIndex(ctx context.Context, types []string, code string) error {
	if code == "" {
		return fmt.Errorf("%w: empty parameter code", store.ErrInvalid)
	}
	for _, tb := range sqlstore.Tables {
		for {
			args := []any{code}
			cond := "param = ?1"
			if len(types) > 0 {
				ph := make([]string, len(types))
				for i, t := range types {
					args = append(args, t)
					ph[i] = fmt.Sprintf("?%d", i+2)
				}
				cond += " AND rtype IN (" + strings.Join(ph, ", ") + ")"
			}
			var removed int64
			err := s.Tx(ctx, func(stx store.Tx) error {
				t := stx.(*tx)
				res, err := t.tx.ExecContext(ctx, "DELETE FROM "+tb.Name+" WHERE rowid IN (SELECT rowid FROM "+tb.Name+" WHERE "+cond+fmt.Sprintf(" LIMIT %d)", sqlstore.DropBatch), args...)
				if err != nil {
					return sqlstore.DBError("reindex: drop", err)
				}
				removed, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return err
			}
			if removed < sqlstore.DropBatch {
				break
			}
		}
	}
	return nil
}

// PutJob implements store.Reindexer.
func (s *Store) PutJob(ctx context.Context, id string, doc []byte) error {
	if id == "" {
		return fmt.Errorf("%w: empty job id", store.ErrInvalid)
	}
	var finished int64
	if sqlstore.JobFinished(doc) {
		finished = time.Now().UnixMilli()
	}
	// Write transactions are serialized (BEGIN IMMEDIATE): sequence order
	// is commit order.
	return s.Tx(ctx, func(stx store.Tx) error {
		t := stx.(*tx).tx
		var seq int64
		if err := t.QueryRowContext(ctx, `UPDATE reindex_job_seq SET n = n + 1 RETURNING n`).Scan(&seq); err != nil {
			return sqlstore.DBError("reindex: put job", err)
		}
		_, err := t.ExecContext(ctx, `INSERT INTO reindex_jobs (id, doc, seq, finished_at) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, seq = excluded.seq,
			finished_at = CASE WHEN excluded.finished_at = 0 THEN 0 WHEN reindex_jobs.finished_at > 0 THEN reindex_jobs.finished_at ELSE excluded.finished_at END`,
			id, doc, seq, finished)
		return sqlstore.DBError("reindex: put job", err)
	})
}

// JobsSince implements store.Reindexer.
func (s *Store) JobsSince(ctx context.Context, seq int64) (map[string][]byte, int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, doc, seq FROM reindex_jobs WHERE seq > ?1`, seq)
	if err != nil {
		return nil, seq, sqlstore.DBError("reindex: jobs since", err)
	}
	defer rows.Close()
	return sqlstore.JobChanges(rows, seq)
}

// FinishedJobs implements store.Reindexer.
func (s *Store) FinishedJobs(ctx context.Context, before time.Time) (map[string][]byte, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, doc FROM reindex_jobs WHERE finished_at > 0 AND finished_at < ?1`, before.UnixMilli())
	if err != nil {
		return nil, sqlstore.DBError("reindex: finished jobs", err)
	}
	defer rows.Close()
	return sqlstore.JobDocs(rows, "reindex: finished jobs")
}

// purgeChunk bounds the ids of one purge statement.
const purgeChunk = 500

// PurgeJobs implements store.Reindexer.
func (s *Store) PurgeJobs(ctx context.Context, ids []string, before, now time.Time) (int64, error) {
	var n int64
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), purgeChunk)]
		ids = ids[len(chunk):]
		args := []any{before.UnixMilli(), now.UnixMilli()}
		ph := make([]string, len(chunk))
		for i, id := range chunk {
			args = append(args, id)
			ph[i] = fmt.Sprintf("?%d", i+3)
		}
		err := s.Tx(ctx, func(stx store.Tx) error {
			res, err := stx.(*tx).tx.ExecContext(ctx, `DELETE FROM reindex_jobs WHERE finished_at > 0 AND finished_at < ?1 AND lease_until < ?2
				AND id IN (`+strings.Join(ph, ", ")+`)`, args...)
			if err != nil {
				return sqlstore.DBError("reindex: purge jobs", err)
			}
			d, err := res.RowsAffected()
			n += d
			return err
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// LeaseJob implements store.Reindexer.
func (s *Store) LeaseJob(ctx context.Context, id, owner string, now, until time.Time) (bool, error) {
	var n int64
	err := s.Tx(ctx, func(stx store.Tx) error {
		q, args := `UPDATE reindex_jobs SET lease_owner = ?1, lease_until = ?2
			WHERE id = ?3 AND (lease_owner = '' OR lease_owner = ?1 OR lease_until < ?4)`, []any{owner, until.UnixMilli(), id, now.UnixMilli()}
		if !until.After(now) {
			q, args = `UPDATE reindex_jobs SET lease_owner = '', lease_until = 0 WHERE id = ?2 AND lease_owner = ?1`, []any{owner, id}
		}
		res, err := stx.(*tx).tx.ExecContext(ctx, q, args...)
		if err != nil {
			return sqlstore.DBError("reindex: lease job", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n == 1, err
}

// Job implements store.Reindexer.
func (s *Store) Job(ctx context.Context, id string) ([]byte, error) {
	var doc []byte
	err := s.r.QueryRowContext(ctx, `SELECT doc FROM reindex_jobs WHERE id = ?1`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: reindex job", store.ErrNotFound)
	}
	return doc, sqlstore.DBError("reindex: job", err)
}

// Jobs implements store.Reindexer.
func (s *Store) Jobs(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, doc FROM reindex_jobs`)
	if err != nil {
		return nil, sqlstore.DBError("reindex: jobs", err)
	}
	defer rows.Close()
	return sqlstore.JobDocs(rows, "reindex: jobs")
}
