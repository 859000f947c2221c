package fhirserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"

	"phix/access/roles"
	"phix/access/scopes"
	"phix/auth/oidc"
	"phix/auth/session"
	"phix/internal/bearer"
)

// TokenVerifier checks a bearer token's signature, issuer, audience and
// validity (auth/oidc.Verifier: the node's own authorization server and any
// configured external IdP alike).
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*oidc.Claims, error)
}

// BearerAuthOptions configures BearerAuth.
type BearerAuthOptions struct {
	Verifier TokenVerifier // required
	// Idle logs sessions off after inactivity (nil: 15 minutes).
	Idle *session.Idle
	// Lockout refuses a claimed principal after repeated forged or
	// otherwise invalid tokens (nil: 5 failures in 15 minutes lock it for
	// 15 minutes).
	Lockout *session.Lockout
	// Allowlist restricts source addresses per client and organisation
	// (nil: no restriction).
	Allowlist *session.Allowlist
	// DefaultPurpose applies when a token carries no purpose_of_use claim
	// (default "TREAT").
	DefaultPurpose string
	// Claim names (defaults "roles", "org", "purpose_of_use"): external
	// IdPs name them as their operators chose.
	RolesClaim, OrgClaim, PurposeClaim string
}

// BearerAuth authenticates OIDC/SMART bearer tokens and applies the session
// rules: lockout, IP allowlist, idle logoff, separation of duties.
type BearerAuth struct{ o BearerAuthOptions }

// Errors of BearerAuth (wrapped with ErrUnauthenticated; never shown to
// clients, never holding the token).
var (
	errTokenRoles  = errors.New("fhirserver: token roles refused (unknown role or separation of duties)")
	errTokenScopes = errors.New("fhirserver: token scope does not parse")
)

// NewBearerAuth returns a BearerAuth.
func NewBearerAuth(o BearerAuthOptions) (*BearerAuth, error) {
	if o.Verifier == nil {
		return nil, errors.New("fhirserver: BearerAuth needs a Verifier")
	}
	if o.Idle == nil {
		o.Idle = &session.Idle{}
	}
	if o.Lockout == nil {
		o.Lockout = session.NewLockout()
	}
	if o.DefaultPurpose == "" {
		o.DefaultPurpose = "TREAT"
	}
	if o.RolesClaim == "" {
		o.RolesClaim = "roles"
	}
	if o.OrgClaim == "" {
		o.OrgClaim = "org"
	}
	if o.PurposeClaim == "" {
		o.PurposeClaim = "purpose_of_use"
	}
	return &BearerAuth{o: o}, nil
}

// Authenticate implements Authenticator.
//
// Lockout (MLPS 2.0 8.1.4.1) is per claimed principal: a token that parses
// but fails verification for a reason an attacker would produce (forged
// signature, wrong key or alg, wrong audience or issuer) counts against the
// issuer and subject it claims; after MaxFailures that principal is refused,
// valid tokens included, until the lock ends. Expired or not-yet-valid
// tokens are ordinary client behaviour and do not count; nor does a token
// that does not even parse (it claims no one, and keying it by source
// address would lock every client behind one NAT or on loopback).
func (a *BearerAuth) Authenticate(r *http.Request) (*Principal, error) {
	ctx := r.Context()
	tok, ok := bearer.Token(r)
	if !ok {
		return nil, ErrUnauthenticated
	}
	claimed, err := oidc.Parse(tok)
	if err != nil {
		return nil, errors.Join(ErrUnauthenticated, err)
	}
	lockKey := "sub:" + claimed.Claims.Issuer + "\x00" + claimed.Claims.Subject
	if err := a.o.Lockout.Check(ctx, lockKey); err != nil {
		return nil, errors.Join(ErrUnauthenticated, err)
	}
	c, err := a.o.Verifier.Verify(ctx, tok)
	if err != nil {
		if countsAsFailure(oidc.CodeOf(err)) {
			_, _ = a.o.Lockout.Failure(ctx, lockKey)
		}
		return nil, errors.Join(ErrUnauthenticated, err)
	}
	rs, err := roles.Parse(c.Strings(a.o.RolesClaim))
	if err != nil {
		return nil, errors.Join(ErrUnauthenticated, errTokenRoles)
	}
	sc, err := scopes.Parse(c.Scope)
	if err != nil {
		return nil, errors.Join(ErrUnauthenticated, errTokenScopes)
	}
	org := c.String(a.o.OrgClaim)
	if err := a.o.Allowlist.Allow(c.ClientID, org, sourceAddr(r)); err != nil {
		return nil, errors.Join(ErrUnauthenticated, err)
	}
	if err := a.o.Idle.Touch(c.Issuer+"\x00"+c.Subject+"\x00"+c.ClientID, c.IssuedAt.Time()); err != nil {
		return nil, errors.Join(ErrUnauthenticated, err)
	}
	a.o.Lockout.Success(lockKey)
	purpose := c.String(a.o.PurposeClaim)
	if purpose == "" {
		purpose = a.o.DefaultPurpose
	}
	return &Principal{Subject: c.Subject, Role: coarseRole(rs), Issuer: c.Issuer, ClientID: c.ClientID, Roles: rs, Org: org,
		Purpose: purpose, FHIRUser: c.String("fhirUser"), Patient: c.String("patient"), Scopes: sc, Expires: c.Expiry.Time()}, nil
}

// countsAsFailure reports whether a verification failure looks like an
// attempt on the claimed principal rather than a stale or early token or a
// provider outage.
func countsAsFailure(c oidc.Code) bool {
	switch c {
	case oidc.CodeExpired, oidc.CodeNotYetValid, oidc.CodeProviderFailure, "":
		return false
	}
	return true
}

// coarseRole maps the roles onto the server's path-level split: audit
// endpoints for auditors, clinical endpoints for the clinical roles (the
// policy engine refines what each may do), neither for the rest.
func coarseRole(rs []roles.Role) Role {
	if slices.Contains(rs, roles.Auditor) {
		return RoleAuditor
	}
	for _, r := range []roles.Role{roles.Clinician, roles.Nurse, roles.Registrar, roles.Researcher} {
		if slices.Contains(rs, r) {
			return RoleClinician
		}
	}
	return RoleNoData
}

// sourceAddr is the TCP peer (proxy headers are not trusted).
func sourceAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.IPv4Unspecified()
	}
	return a.Unmap()
}
