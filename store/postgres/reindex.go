package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"phix/store"
	"phix/store/internal/sqlstore"
)

var _ store.Reindexer = (*Store)(nil)

// ReindexBatch implements store.Reindexer. The batch is one SERIALIZABLE
// transaction that locks its resource rows (FOR UPDATE): a concurrent
// writer of one of them waits for the batch or, on a serialization
// failure, one side reruns (Tx retries), so no write is lost between reading
// a resource and replacing its entries.
func (s *Store) ReindexBatch(ctx context.Context, b *store.ReindexBatch) (last int64, n int, err error) {
	if err := sqlstore.CheckReindexBatch(b); err != nil {
		return 0, 0, err
	}
	err = s.Tx(ctx, func(stx store.Tx) error {
		t := stx.(*tx)
		last, n = b.After, 0
		items, err := sqlstore.LoadReindexBatch(ctx, querier{t.tx}, dialect, b.Types, b.After, b.Limit, true)
		if err != nil {
			return t.fail("reindex: load", errors.Unwrap(err))
		}
		if len(items) == 0 {
			return nil
		}
		batch := &pgx.Batch{}
		pks := make([]int64, len(items))
		masks := make([]int32, len(items))
		order := make([]*resState, len(items))
		for i, it := range items {
			rows, mask, err := sqlstore.ReindexRows(b, it)
			if err != nil {
				return err
			}
			pks[i], masks[i] = it.PK, int32(mask)
			order[i] = &resState{typ: it.Rec.Type, id: it.Rec.ID, pk: it.PK, idx: rows}
			last = it.PK
		}
		for _, tb := range sqlstore.Tables {
			if len(b.Params) == 0 {
				batch.Queue("DELETE FROM "+tb.Name+" WHERE res_pk = ANY($1)", pks)
			} else {
				batch.Queue("DELETE FROM "+tb.Name+" WHERE res_pk = ANY($1) AND param = ANY($2)", pks, b.Params)
			}
		}
		// queueIndex writes the index rows of t.order; the resources rows
		// are updated here (only their mask), so the order is cleared
		// again before the commit-time flush.
		t.order = order
		t.queueIndex(batch)
		t.order = nil
		batch.Queue(`UPDATE resources AS r SET idx_mask = u.mask FROM unnest($1::int8[], $2::int4[]) AS u (pk, mask) WHERE r.pk = u.pk`, pks, masks)
		br := t.tx.SendBatch(ctx, batch)
		for i := 0; i < batch.Len(); i++ {
			if _, err := br.Exec(); err != nil {
				br.Close()
				return t.fail("reindex: write", err)
			}
		}
		if err := br.Close(); err != nil {
			return t.fail("reindex: write", err)
		}
		n = len(items)
		return nil
	})
	if err != nil {
		return b.After, 0, err
	}
	return last, n, nil
}

// CountCurrent implements store.Reindexer.
func (s *Store) CountCurrent(ctx context.Context, types []string, after int64) (int64, error) {
	return sqlstore.CountCurrent(ctx, querier{s.pool}, dialect, types, after)
}

// DropIndex implements store.Reindexer: DropBatch rows per transaction.
func (s *Store) DropIndex(ctx context.Context, types []string, code string) error {
	if code == "" {
		return fmt.Errorf("%w: empty parameter code", store.ErrInvalid)
	}
	for _, tb := range sqlstore.Tables {
		for {
			cond := "param = $1"
			args := []any{code}
			if len(types) > 0 {
				cond += " AND rtype = ANY($2)"
				args = append(args, types)
			}
			tag, err := s.pool.Exec(ctx, "DELETE FROM "+tb.Name+" WHERE ctid = ANY(ARRAY(SELECT ctid FROM "+tb.Name+" WHERE "+cond+fmt.Sprintf(" LIMIT %d))", sqlstore.DropBatch), args...)
			if err != nil {
				return sqlstore.DBError("reindex: drop", err)
			}
			if tag.RowsAffected() < sqlstore.DropBatch {
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
	// One statement: the counter row stays locked until it commits, so a
	// concurrent put takes the next number and commits after it.
	_, err := s.pool.Exec(ctx, `WITH c AS (UPDATE reindex_job_seq SET n = n + 1 RETURNING n)
		INSERT INTO reindex_jobs (id, doc, seq, finished_at) SELECT $1, $2, c.n, $3 FROM c
		ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, seq = excluded.seq,
		finished_at = CASE WHEN excluded.finished_at = 0 THEN 0 WHEN reindex_jobs.finished_at > 0 THEN reindex_jobs.finished_at ELSE excluded.finished_at END`,
		id, doc, finished)
	return sqlstore.DBError("reindex: put job", err)
}

// JobsSince implements store.Reindexer.
func (s *Store) JobsSince(ctx context.Context, seq int64) (map[string][]byte, int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, doc, seq FROM reindex_jobs WHERE seq > $1`, seq)
	if err != nil {
		return nil, seq, sqlstore.DBError("reindex: jobs since", err)
	}
	defer rows.Close()
	return sqlstore.JobChanges(rows, seq)
}

// FinishedJobs implements store.Reindexer.
func (s *Store) FinishedJobs(ctx context.Context, before time.Time) (map[string][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, doc FROM reindex_jobs WHERE finished_at > 0 AND finished_at < $1`, before.UnixMilli())
	if err != nil {
		return nil, sqlstore.DBError("reindex: finished jobs", err)
	}
	defer rows.Close()
	return sqlstore.JobDocs(rows, "reindex: finished jobs")
}

// PurgeJobs implements store.Reindexer.
func (s *Store) PurgeJobs(ctx context.Context, ids []string, before, now time.Time) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM reindex_jobs WHERE finished_at > 0 AND finished_at < $1 AND lease_until < $2 AND id = ANY($3)`,
		before.UnixMilli(), now.UnixMilli(), ids)
	if err != nil {
		return 0, sqlstore.DBError("reindex: purge jobs", err)
	}
	return tag.RowsAffected(), nil
}

// LeaseJob implements store.Reindexer.
func (s *Store) LeaseJob(ctx context.Context, id, owner string, now, until time.Time) (bool, error) {
	q, args := `UPDATE reindex_jobs SET lease_owner = $1, lease_until = $2
		WHERE id = $3 AND (lease_owner = '' OR lease_owner = $1 OR lease_until < $4)`, []any{owner, until.UnixMilli(), id, now.UnixMilli()}
	if !until.After(now) {
		q, args = `UPDATE reindex_jobs SET lease_owner = '', lease_until = 0 WHERE id = $2 AND lease_owner = $1`, []any{owner, id}
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return false, sqlstore.DBError("reindex: lease job", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Job implements store.Reindexer.
func (s *Store) Job(ctx context.Context, id string) ([]byte, error) {
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT doc FROM reindex_jobs WHERE id = $1`, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: reindex job", store.ErrNotFound)
	}
	return doc, sqlstore.DBError("reindex: job", err)
}

// Jobs implements store.Reindexer.
func (s *Store) Jobs(ctx context.Context) (map[string][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, doc FROM reindex_jobs`)
	if err != nil {
		return nil, sqlstore.DBError("reindex: jobs", err)
	}
	defer rows.Close()
	return sqlstore.JobDocs(rows, "reindex: jobs")
}
