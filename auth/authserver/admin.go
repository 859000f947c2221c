package authserver

import (
	"context"
	"encoding/json"
	"errors"
)

// ErrNotFound is returned by the Store's administrative calls for an
// unknown user or client.
var ErrNotFound = errors.New("authserver: no such user or client")

// Clients lists every registered client, disabled ones included, by id.
func (st *Store) Clients(ctx context.Context) ([]Client, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT doc FROM as_clients ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Client
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var c Client
		if err := json.Unmarshal([]byte(doc), &c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Users lists every user by name; the password hashes are cleared.
func (st *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT doc FROM as_users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var u User
		if err := json.Unmarshal([]byte(doc), &u); err != nil {
			return nil, err
		}
		u.PasswordHash = ""
		out = append(out, u)
	}
	return out, rows.Err()
}

// DisableClient refuses the client from now on, revokes its refresh
// tokens and puts its access tokens still out on the revocation list (the
// FHIR replicas refuse them within their refresh interval).
func (st *Store) DisableClient(ctx context.Context, id string) error {
	c, err := st.Client(ctx, id)
	if errors.Is(err, errUnknownClient) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	c.Disabled = true
	doc, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := st.db.ExecContext(ctx, `UPDATE as_clients SET doc = $1 WHERE id = $2`, string(doc), id); err != nil {
		return err
	}
	if _, err := st.db.ExecContext(ctx, `UPDATE as_refresh SET revoked = 1 WHERE client = $1`, id); err != nil {
		return err
	}
	return revokeIssued(ctx, st.db, st.now(), issuedByClient, id)
}

// DisableUser refuses the user's logins and refreshes from now on, revokes
// the user's refresh tokens and puts the user's access tokens still out
// on the revocation list.
func (st *Store) DisableUser(ctx context.Context, name string) error {
	return st.updateUser(ctx, name, func(u *User) { u.Disabled = true })
}

// RequireTOTP sets whether the user's login asks for a TOTP code (set
// after a confirmed enrolment).
func (st *Store) RequireTOTP(ctx context.Context, name string, required bool) error {
	return st.updateUser(ctx, name, func(u *User) { u.TOTPRequired = required })
}

func (st *Store) updateUser(ctx context.Context, name string, f func(*User)) error {
	u, err := st.User(ctx, name)
	if errors.Is(err, errUnknownUser) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	f(u)
	doc, err := json.Marshal(u)
	if err != nil {
		return err
	}
	if _, err := st.db.ExecContext(ctx, `UPDATE as_users SET doc = $1 WHERE name = $2`, string(doc), name); err != nil {
		return err
	}
	if u.Disabled {
		if _, err := st.db.ExecContext(ctx, `UPDATE as_refresh SET revoked = 1 WHERE subject = $1`, name); err != nil {
			return err
		}
		return revokeIssued(ctx, st.db, st.now(), issuedByUser, name)
	}
	return nil
}

// validID reports whether s is a FHIR logical id ([A-Za-z0-9\-\.]{1,64}).
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
