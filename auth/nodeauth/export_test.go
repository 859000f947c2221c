package nodeauth

import (
	"database/sql"
	"time"
)

// NewGrantsClock is NewGrants with a test clock and no audit log.
func NewGrantsClock(db *sql.DB, now func() time.Time) *Grants {
	g := NewGrants(db, nil, nil)
	g.now = now
	return g
}

// The resource server re-reads the revocation list and the allowlists far
// more often in tests (the production bounds are seconds).
func init() {
	revocationRefresh = 20 * time.Millisecond
	allowlistRefresh = 20 * time.Millisecond
}
