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
