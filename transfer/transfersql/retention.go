package transfersql

import (
	"context"
	"time"

	"phix/transfer"
)

// WithdrawConsent records a withdrawal once.
func (s *Store) WithdrawConsent(ctx context.Context, sender, consentID string, at time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO trf_consent_withdrawals (sender, consent, withdrawn) VALUES (?, ?, ?)
		ON CONFLICT (sender, consent) DO NOTHING`), sender, consentID, at.UnixMicro())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ConsentWithdrawn reports whether a withdrawal is recorded.
func (s *Store) ConsentWithdrawn(ctx context.Context, sender, consentID string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM trf_consent_withdrawals WHERE sender = ? AND consent = ?`), sender, consentID).Scan(&n)
	return n > 0, err
}

// TransfersByConsent lists the sender's transfers bound to a consent.
func (s *Store) TransfersByConsent(ctx context.Context, sender, consentID string) ([]transfer.Transfer, error) {
	return s.queryTransfers(ctx, `SELECT `+transferCols+` FROM trf_transfers WHERE sender = ? AND consent = ? ORDER BY created, id`, sender, consentID)
}

// DueForErasure lists transfers whose objects must be deleted now.
func (s *Store) DueForErasure(ctx context.Context, deliveredBefore, now time.Time, limit int) ([]transfer.Transfer, error) {
	return s.queryTransfers(ctx, `SELECT `+transferCols+` FROM trf_transfers WHERE erased = 0 AND (
		status IN ('failed', 'cancelled', 'withdrawn', 'expired')
		OR (status = 'delivered' AND updated <= ?)
		OR (retention_until > 0 AND retention_until <= ?)) ORDER BY updated, id LIMIT ?`,
		deliveredBefore.UnixMicro(), now.UnixMicro(), limit)
}

// MarkErased records the erasure time (the first one wins).
func (s *Store) MarkErased(ctx context.Context, id string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE trf_transfers SET erased = ? WHERE id = ? AND erased = 0`), at.UnixMicro(), id)
	return err
}
