// Package authserver is the node's own OAuth 2.0 authorization server: SMART
// App Launch v2 (authorization code with PKCE S256, a minimal login form
// with TOTP), SMART Backend Services (client_credentials with a
// private_key_jwt assertion, jti replay refused, tokens of at most 300 s),
// discovery documents and the JWKS. Its tokens are JWTs verified by
// auth/oidc like any other provider's: the FHIR server has one
// verification path.
package authserver

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"phix/access/scopes"
	"phix/auth/secretbox"
	"phix/auth/session"
)

// MaxTokenLifetime bounds every access token (SMART Backend Services: 5 min).
const MaxTokenLifetime = 300 * time.Second

// SecondFactor verifies a user's TOTP code (auth/totp.Manager).
type SecondFactor interface {
	Verify(ctx context.Context, user, code string) error
}

// Config configures a Server.
type Config struct {
	// Issuer is the absolute URL at which Handler is mounted (no trailing
	// slash), e.g. http://127.0.0.1:18081/auth. It is the tokens' iss.
	Issuer string
	// Audience is the FHIR base URL: the aud of every token, and the value
	// a SMART app must pass as aud to /authorize.
	Audience string
	DB       *sql.DB // Migrate must have run
	// Sealer seals the signing keys at rest (secretbox.FromKMS).
	Sealer secretbox.Sealer
	// TOTP is asked for users with TOTPRequired; nil refuses their login.
	TOTP SecondFactor
	// Lockout locks a user or client out after repeated failures (default
	// session.NewLockout()).
	Lockout *session.Lockout
	// TokenLifetime is the access-token lifetime (default and maximum 300 s).
	TokenLifetime time.Duration
	// RefreshLifetime bounds a refresh-token family granted with
	// offline_access (default 30 days); OnlineRefreshLifetime one granted
	// with online_access (default 8 hours, a working shift). The bound is
	// absolute: rotation does not extend it.
	RefreshLifetime, OnlineRefreshLifetime time.Duration
	Now                                    func() time.Time
	Logger                                 *slog.Logger
}

// Server is a running authorization server.
type Server struct {
	*Store
	cfg Config
	db  *sql.DB

	mu   sync.RWMutex
	keys []*signingKey // keys[0] signs

	flows sync.Mutex
	reqs  map[string]*authRequest // pending /authorize requests, by id
	codes map[string]*grant       // issued codes, by code

	issuedPurged atomic.Int64 // Unix time of the last purge of as_issued (issued.go)
}

// New opens the server: loads its signing keys (creating the first).
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Issuer == "" || cfg.Audience == "" || cfg.DB == nil || cfg.Sealer == nil {
		return nil, errors.New("authserver: Config needs Issuer, Audience, DB and Sealer")
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	if cfg.TokenLifetime <= 0 || cfg.TokenLifetime > MaxTokenLifetime {
		cfg.TokenLifetime = MaxTokenLifetime
	}
	if cfg.Lockout == nil {
		cfg.Lockout = session.NewLockout()
	}
	if cfg.RefreshLifetime <= 0 {
		cfg.RefreshLifetime = 30 * 24 * time.Hour
	}
	if cfg.OnlineRefreshLifetime <= 0 {
		cfg.OnlineRefreshLifetime = 8 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{Store: NewStore(cfg.DB), cfg: cfg, db: cfg.DB, reqs: map[string]*authRequest{}, codes: map[string]*grant{}}
	s.Store.now = s.now // disabling a user or client revokes by the server's clock
	if err := s.loadKeys(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// Issuer returns the issuer URL.
func (s *Server) Issuer() string { return s.cfg.Issuer }

// TokenURL is the token endpoint, the aud of client assertions.
func (s *Server) TokenURL() string { return s.cfg.Issuer + "/token" }

// Handler serves the endpoints relative to the issuer path (mount it with
// http.StripPrefix): /.well-known/openid-configuration,
// /.well-known/smart-configuration, /jwks, /authorize, /token, /revoke
// (RFC 7009), /introspect (RFC 7662), /userinfo (OpenID Connect), /launch
// (EHR launch contexts).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", s.serveDiscovery)
	mux.HandleFunc("GET /.well-known/smart-configuration", s.serveSMART)
	mux.HandleFunc("GET /jwks", s.serveJWKS)
	mux.HandleFunc("GET /authorize", s.serveAuthorize)
	mux.HandleFunc("POST /authorize", s.serveLogin)
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("POST /revoke", s.serveRevoke)
	mux.HandleFunc("POST /introspect", s.serveIntrospect)
	mux.HandleFunc("GET /userinfo", s.serveUserinfo)
	mux.HandleFunc("POST /userinfo", s.serveUserinfo)
	mux.HandleFunc("POST /launch", s.serveLaunch)
	return mux
}

// SMARTConfiguration serves /.well-known/smart-configuration; the FHIR
// server mounts it under its base URL too, as SMART requires.
func (s *Server) SMARTConfiguration() http.Handler { return http.HandlerFunc(s.serveSMART) }

var assertionAlgs = []string{"RS384", "ES384", "EdDSA"}

func (s *Server) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                 s.cfg.Issuer,
		"jwks_uri":               s.cfg.Issuer + "/jwks",
		"authorization_endpoint": s.cfg.Issuer + "/authorize",
		"token_endpoint":         s.TokenURL(),
		"userinfo_endpoint":      s.cfg.Issuer + "/userinfo",
		"revocation_endpoint":    s.cfg.Issuer + "/revoke",
		"introspection_endpoint": s.cfg.Issuer + "/introspect",
		"revocation_endpoint_auth_methods_supported":    []string{"private_key_jwt", "none"},
		"introspection_endpoint_auth_methods_supported": []string{"private_key_jwt"},
		"scopes_supported":                                 []string{"openid", "fhirUser", "profile", "offline_access", "online_access"},
		"claims_supported":                                 []string{"sub", "fhirUser", "preferred_username", "name"},
		"response_types_supported":                         []string{"code"},
		"grant_types_supported":                            []string{"authorization_code", "client_credentials", "refresh_token"},
		"subject_types_supported":                          []string{"public"},
		"id_token_signing_alg_values_supported":            []string{"ES256"},
		"token_endpoint_auth_methods_supported":            []string{"private_key_jwt", "none"},
		"token_endpoint_auth_signing_alg_values_supported": assertionAlgs,
		"code_challenge_methods_supported":                 []string{"S256"},
	})
}

func (s *Server) serveSMART(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.cfg.Issuer,
		"jwks_uri":                              s.cfg.Issuer + "/jwks",
		"authorization_endpoint":                s.cfg.Issuer + "/authorize",
		"token_endpoint":                        s.TokenURL(),
		"userinfo_endpoint":                     s.cfg.Issuer + "/userinfo",
		"revocation_endpoint":                   s.cfg.Issuer + "/revoke",
		"introspection_endpoint":                s.cfg.Issuer + "/introspect",
		"grant_types_supported":                 []string{"authorization_code", "client_credentials", "refresh_token"},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt", "none"},
		"token_endpoint_auth_signing_alg_values_supported": assertionAlgs,
		"scopes_supported": []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access", "online_access",
			"patient/*.rs", "user/*.cruds", "system/*.cruds"},
		"response_types_supported":         []string{"code"},
		"code_challenge_methods_supported": []string{"S256"},
		"capabilities": []string{"launch-standalone", "launch-ehr", "client-public", "client-confidential-asymmetric",
			"permission-v1", "permission-v2", "sso-openid-connect", "context-standalone-patient", "context-ehr-patient", "context-ehr-encounter",
			"permission-offline", "permission-online", "permission-patient", "permission-user"},
	})
}

func (s *Server) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "max-age=300")
	writeJSON(w, http.StatusOK, s.JWKS())
}

// Principal is who a token is issued to.
type Principal struct {
	Subject  string
	ClientID string
	Scope    string
	Roles    []string
	Org      string
	Purpose  string
	FHIRUser string
	// Patient is the SMART launch context (a Patient logical id), carried
	// as the patient claim.
	Patient string
	// Encounter is the EHR launch's encounter (a logical id), carried as
	// the encounter claim: context for the app; enforcement is by patient.
	Encounter string
}

// Issue signs an access token for p with the server's current key. The
// token lives TokenLifetime (≤ 300 s). It is recorded (as_issued) so that
// disabling its user (a Subject other than the ClientID) or client revokes
// it; an error means it could not be recorded and no token is returned.
func (s *Server) Issue(p Principal) (token string, expiresIn int, err error) {
	user := ""
	if p.Subject != p.ClientID {
		user = p.Subject
	}
	return s.issue(context.Background(), p, user, "")
}

// issue signs an access token for p and records it with its user ("" for a
// client's own token) and refresh family ("" for none).
func (s *Server) issue(ctx context.Context, p Principal, user, family string) (token string, expiresIn int, err error) {
	now := s.now()
	exp := now.Add(s.cfg.TokenLifetime)
	jti := randomID()[:22]
	claims := map[string]any{
		"iss": s.cfg.Issuer, "sub": p.Subject, "aud": s.cfg.Audience,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(),
		"jti": jti, "client_id": p.ClientID, "scope": p.Scope,
	}
	if len(p.Roles) > 0 {
		claims["roles"] = p.Roles
	}
	if p.Org != "" {
		claims["org"] = p.Org
	}
	if p.Purpose != "" {
		claims["purpose_of_use"] = p.Purpose
	}
	if p.FHIRUser != "" {
		claims["fhirUser"] = p.FHIRUser
	}
	if p.Patient != "" {
		claims["patient"] = p.Patient
	}
	if p.Encounter != "" {
		claims["encounter"] = p.Encounter
	}
	if token, err = s.sign(claims, "at+jwt"); err != nil {
		return "", 0, err
	}
	if err := s.recordIssued(ctx, jti, exp, p.ClientID, user, family); err != nil {
		return "", 0, err
	}
	return token, int(s.cfg.TokenLifetime / time.Second), nil
}

// sign signs claims with the current key under the given JOSE typ.
func (s *Server) sign(claims map[string]any, typ string) (string, error) {
	k := s.currentKey()
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// idToken signs an OpenID Connect ID token for a user who logged in at
// authTime through client: aud is the client, and fhirUser is present when
// the fhirUser scope was granted and the user has a FHIR resource.
func (s *Server) idToken(u *User, clientID string, sc *scopes.Set, nonce string, authTime time.Time) (string, error) {
	now := s.now()
	claims := map[string]any{
		"iss": s.cfg.Issuer, "sub": u.Name, "aud": clientID, "azp": clientID,
		"iat": now.Unix(), "exp": now.Add(s.cfg.TokenLifetime).Unix(), "auth_time": authTime.Unix(),
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if sc.Has("fhirUser") && u.FHIRUser != "" {
		// SMART App Launch v2: an absolute URL of the user's resource.
		claims["fhirUser"] = strings.TrimSuffix(s.cfg.Audience, "/") + "/" + u.FHIRUser
	}
	return s.sign(claims, "JWT")
}

func parseScopes(s string) (*scopes.Set, error) {
	if strings.TrimSpace(s) == "" {
		return scopes.Parse("")
	}
	return scopes.Parse(s)
}

// oauthError is an RFC 6749 error response.
type oauthError struct {
	status int
	code   string // invalid_request, invalid_client, invalid_grant, invalid_scope, unauthorized_client, unsupported_grant_type
	desc   string // never quotes input
}

func (e *oauthError) Error() string { return e.code + ": " + e.desc }

func oerr(status int, code, desc string) *oauthError { return &oauthError{status, code, desc} }

func writeOAuthError(w http.ResponseWriter, err error) {
	var oe *oauthError
	if !errors.As(err, &oe) {
		oe = oerr(http.StatusInternalServerError, "server_error", "internal error")
	}
	if oe.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_client"`)
	}
	writeJSON(w, oe.status, map[string]string{"error": oe.code, "error_description": oe.desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
