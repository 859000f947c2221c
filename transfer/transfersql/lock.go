package transfersql

import (
	"context"
	"database/sql/driver"
	"hash/fnv"
	"strconv"

	"phix/transfer"
)

var _ transfer.FileLocker = (*Store)(nil)

// LockFile takes a PostgreSQL session advisory lock on one file's upload,
// on a connection of its own held until unlock. PostgreSQL drops the lock
// when that connection ends, so a killed replica never blocks a resume.
// SQLite serves one process (the in-process lock suffices): it always grants.
func (s *Store) LockFile(ctx context.Context, transferID string, idx int) (func(), bool, error) {
	if !s.pg {
		return func() {}, true, nil
	}
	h := fnv.New64a()
	h.Write([]byte("phix.upload\x00" + transferID + "\x00" + strconv.Itoa(idx)))
	key := int64(h.Sum64())
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, false, err
	}
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
		conn.Close()
		return nil, false, err
	}
	if !got {
		conn.Close()
		return nil, false, nil
	}
	return func() {
		// Unlock on a context of its own: the request's may be done. If this
		// fails the connection is closed anyway, which releases the lock.
		if _, err := conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, key); err != nil {
			// Discard the session rather than pool it with the lock held.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}, true, nil
}
