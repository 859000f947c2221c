package session

import (
	"context"
	"database/sql"
	"errors"
	"net/netip"
	"time"

	"phix/internal/periodic"
)

// StoredAllowlist keeps the IP allowlists in the node's auth store (table
// session_allowlist, created by MigrateShared), where `phix auth allowlist`
// edits them and every replica reads them: the resource server's Allowlist
// re-reads the whole table (a few rows) at most every RefreshEvery, so a
// change reaches every replica within it. A table that cannot be read
// refuses every caller (fail closed) until it can be read again.
type StoredAllowlist struct {
	db *sql.DB
	// RefreshEvery bounds how long a change takes to be seen (default 5 s).
	RefreshEvery time.Duration
	Now          func() time.Time

	lists *periodic.Value[*Allowlist]
}

// AllowlistEntry is one allowed prefix of a client or an organisation.
type AllowlistEntry struct {
	Kind   string // "client" or "org"
	ID     string // the client id or organisation id
	Prefix netip.Prefix
}

// ErrAllowlistEntry is returned for a kind other than client or org, or an
// id that is empty, longer than 128 bytes or holds spaces or controls.
var ErrAllowlistEntry = errors.New("session: allowlist entry needs kind client or org and a plain id")

// NewStoredAllowlist returns the allowlists kept in db.
func NewStoredAllowlist(db *sql.DB) *StoredAllowlist {
	s := &StoredAllowlist{db: db}
	s.lists = periodic.New(func(ctx context.Context, _ time.Time) (*Allowlist, error) {
		ctx, cancel := context.WithTimeout(ctx, loadTimeout)
		defer cancel()
		es, err := s.List(ctx)
		if err != nil {
			return nil, err
		}
		a := &Allowlist{Clients: map[string][]netip.Prefix{}, Orgs: map[string][]netip.Prefix{}}
		for _, e := range es {
			m := a.Clients
			if e.Kind == "org" {
				m = a.Orgs
			}
			m[e.ID] = append(m[e.ID], e.Prefix)
		}
		return a, nil
	})
	return s
}

// Allowlist returns the Allowlist a resource server enforces
// (fhirserver.BearerAuthOptions.Allowlist): it reads this store.
func (s *StoredAllowlist) Allowlist() *Allowlist { return &Allowlist{src: s} }

// loadTimeout bounds one read of the table from Allow (which has no
// request context).
const loadTimeout = 2 * time.Second

func (s *StoredAllowlist) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// current returns the lists as of at most RefreshEvery ago.
func (s *StoredAllowlist) current() (*Allowlist, error) {
	every := s.RefreshEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	return s.lists.Get(context.Background(), s.now(), every)
}

// invalidate makes the next check re-read the table (a change made through
// this process is seen by it at once).
func (s *StoredAllowlist) invalidate() { s.lists.Invalidate() }

func validEntry(kind, id string) bool {
	if (kind != "client" && kind != "org") || id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// Add allows prefix for a client or an organisation. The first prefix of
// an id restricts it: from then on it must come from inside its list.
func (s *StoredAllowlist) Add(ctx context.Context, kind, id string, prefix netip.Prefix) error {
	if !validEntry(kind, id) || !prefix.IsValid() {
		return ErrAllowlistEntry
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO session_allowlist (kind, id, cidr) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		kind, id, prefix.Masked().String())
	s.invalidate()
	return err
}

// Remove removes one prefix of an id, or, with an invalid (zero) prefix,
// the id's whole list, which leaves it unrestricted. It returns how many
// prefixes were removed.
func (s *StoredAllowlist) Remove(ctx context.Context, kind, id string, prefix netip.Prefix) (int64, error) {
	if !validEntry(kind, id) {
		return 0, ErrAllowlistEntry
	}
	var res sql.Result
	var err error
	if prefix.IsValid() {
		res, err = s.db.ExecContext(ctx, `DELETE FROM session_allowlist WHERE kind = $1 AND id = $2 AND cidr = $3`, kind, id, prefix.Masked().String())
	} else {
		res, err = s.db.ExecContext(ctx, `DELETE FROM session_allowlist WHERE kind = $1 AND id = $2`, kind, id)
	}
	s.invalidate()
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// List returns every entry, by kind, id and prefix.
func (s *StoredAllowlist) List(ctx context.Context) ([]AllowlistEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT kind, id, cidr FROM session_allowlist ORDER BY kind, id, cidr`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AllowlistEntry
	for rows.Next() {
		var e AllowlistEntry
		var cidr string
		if err := rows.Scan(&e.Kind, &e.ID, &cidr); err != nil {
			return nil, err
		}
		if e.Prefix, err = netip.ParsePrefix(cidr); err != nil {
			return nil, errors.New("session: stored allowlist prefix does not parse")
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
