package devnet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	_ "modernc.org/sqlite" // the auth database

	"phix/access/breakglass"
	"phix/auth/authserver"
	"phix/auth/oidc"
	"phix/auth/secretbox"
	"phix/auth/totp"
	"phix/fhirserver"
	"phix/kms"
	"phix/suite"
)

// tokenRefresh is how often the dev token files are rewritten: tokens live
// authserver.MaxTokenLifetime (300 s), so a file read at any time holds a
// token valid for at least another minute.
const tokenRefresh = authserver.MaxTokenLifetime - 60*time.Second

// devClient is one machine client of a hospital's authorization server
// whose tokens the dev network writes to a file. Its private key lives in
// memory only: every start makes a new key and re-registers the client.
type devClient struct {
	id, file, scope string
	roles           []string
	purpose         string
	key             ed25519.PrivateKey
	kid             string
}

// hospitalAuth is a hospital's own authorization server and its dev clients.
type hospitalAuth struct {
	as      *authserver.Server
	totp    *totp.Manager
	clients []*devClient
	http    *http.Client

	mu      sync.Mutex
	current []string // the clients' latest tokens, in clients order
}

// clinicianToken is the clinician-administrator's current token (the gateway
// calls its FHIR server with it).
func (h *hospitalAuth) clinicianToken(context.Context) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.current) == 0 {
		return "", errors.New("devnet: no token yet")
	}
	return h.current[0], nil
}

// openAuthDB opens DIR/<hospital>/auth.db with the tables of the
// authorization server, TOTP and break-glass.
func openAuthDB(ctx context.Context, dir string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "auth.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, err
	}
	for _, m := range []func(context.Context, *sql.DB) error{authserver.Migrate, totp.Migrate, breakglass.Migrate} {
		if err := m(ctx, db); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// newBearerAuth returns the hospital's authenticator: tokens of its own
// authorization server (issuer), for its FHIR base (audience), and of the
// external providers, all verified through auth/oidc.
func newBearerAuth(issuer, audience string, external []oidc.Provider) (*fhirserver.BearerAuth, error) {
	ps := []oidc.Provider{{Issuer: issuer, Audience: []string{audience}, MaxLifetime: authserver.MaxTokenLifetime}}
	for _, p := range external {
		if len(p.Audience) == 0 {
			p.Audience = []string{audience}
		}
		ps = append(ps, p)
	}
	v, err := oidc.New(oidc.Options{}, ps...)
	if err != nil {
		return nil, err
	}
	return fhirserver.NewBearerAuth(fhirserver.BearerAuthOptions{Verifier: v})
}

// newHospitalAuth opens the authorization server (keys sealed under the
// hospital's data KEK) and registers the dev clients: the
// clinician-administrator and the auditor (DESIGN.md, "The dev network").
// suiteID is the hospital's suite ("" means intl): the secrets are sealed
// with its AEAD under a data key of that suite's size.
func newHospitalAuth(ctx context.Context, db *sql.DB, keys *kms.Manager, suiteID, hospital, issuer, audience, devDir string) (*hospitalAuth, error) {
	sid := suite.ID(suiteID)
	if sid == "" {
		sid = suite.Intl
	}
	box, err := secretbox.FromKMS(ctx, keys, hospital, sid)
	if err != nil {
		return nil, err
	}
	// Users with TOTPRequired give a code at login; their secrets are
	// sealed in the same database.
	second := totp.New(db, box, "phix "+hospital)
	as, err := authserver.New(ctx, authserver.Config{Issuer: issuer, Audience: audience, DB: db, Sealer: box, TOTP: second})
	if err != nil {
		return nil, err
	}
	h := &hospitalAuth{as: as, totp: second, http: &http.Client{Timeout: 10 * time.Second}}
	for _, c := range []*devClient{
		{id: hospital + "-admin", file: filepath.Join(devDir, hospital+".token"), scope: "system/*.cruds", roles: []string{"clinician"}, purpose: "TREAT"},
		{id: hospital + "-auditor", file: filepath.Join(devDir, hospital+".auditor.token"), scope: "system/AuditEvent.rs", roles: []string{"auditor"}, purpose: "HOPERAT"},
	} {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		var kid [8]byte
		_, _ = rand.Read(kid[:])
		c.key, c.kid = priv, fmt.Sprintf("dev-%x", kid)
		jwks := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv.Public(), KeyID: c.kid, Algorithm: "EdDSA", Use: "sig"}}}
		if err := as.RegisterClient(ctx, authserver.Client{ID: c.id, JWKS: jwks, Scope: c.scope, ClientCredentials: true,
			Roles: c.roles, Org: hospital, Purpose: c.purpose}); err != nil {
			return nil, err
		}
		h.clients = append(h.clients, c)
	}
	if err := devLogin(ctx, as, hospital, devDir); err != nil {
		return nil, err
	}
	return h, nil
}

// DevAppClientID is the public SMART app registered on every hospital's
// authorization server for trying the authorization-code flow; it may
// redirect only to DevAppRedirectURI.
const (
	DevAppClientID    = "phix-dev-app"
	DevAppRedirectURI = "http://127.0.0.1:8765/callback"
)

// devLogin registers the dev SMART app and the hospital's dev clinician,
// whose user name and password are DIR/dev/<hospital>.login (0600, two
// lines; created once with a random password, kept).
func devLogin(ctx context.Context, as *authserver.Server, hospital, devDir string) error {
	if err := as.RegisterClient(ctx, authserver.Client{ID: DevAppClientID, Name: "phix dev app",
		RedirectURIs: []string{DevAppRedirectURI}, Scope: "openid fhirUser user/*.cruds patient/*.rs"}); err != nil {
		return err
	}
	path := filepath.Join(devDir, hospital+".login")
	user := hospital + "-clinician"
	b, err := os.ReadFile(path)
	var password string
	switch {
	case errors.Is(err, os.ErrNotExist):
		var pw [18]byte
		_, _ = rand.Read(pw[:])
		password = base64.RawURLEncoding.EncodeToString(pw[:])
		if err := writeSecretFile(path, user+"\n"+password+"\n"); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 {
			return fmt.Errorf("%s: want two lines, user name and password", path)
		}
		user, password = strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1])
	}
	return as.SetUser(ctx, authserver.User{Name: user, Roles: []string{"clinician"}, Org: hospital, Purpose: "TREAT"}, password)
}

// refresh obtains a token for every dev client through the token endpoint
// (SMART Backend Services: client_credentials with a private_key_jwt
// assertion) and writes the token files atomically (mode 0600). It returns
// the tokens in client order.
func (h *hospitalAuth) refresh(ctx context.Context) ([]string, error) {
	var out []string
	for _, c := range h.clients {
		tok, err := h.token(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("token for %s: %w", c.id, err)
		}
		if err := writeSecretFile(c.file, tok+"\n"); err != nil {
			return nil, err
		}
		out = append(out, tok)
	}
	h.mu.Lock()
	h.current = out
	h.mu.Unlock()
	return out, nil
}

func (h *hospitalAuth) token(ctx context.Context, c *devClient) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: c.key, KeyID: c.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	claims, _ := json.Marshal(map[string]any{"iss": c.id, "sub": c.id, "aud": h.as.TokenURL(),
		"exp": time.Now().Add(4 * time.Minute).Unix(), "jti": base64.RawURLEncoding.EncodeToString(jti[:])})
	obj, err := signer.Sign(claims)
	if err != nil {
		return "", err
	}
	assertion, err := obj.CompactSerialize()
	if err != nil {
		return "", err
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {c.scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.as.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := h.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", fmt.Errorf("token endpoint answered %d %s", resp.StatusCode, body.Error)
	}
	return body.AccessToken, nil
}

// keepFresh rewrites the token files every tokenRefresh until ctx ends.
func (h *hospitalAuth) keepFresh(ctx context.Context, onErr func(error)) {
	t := time.NewTicker(tokenRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := h.refresh(ctx); err != nil && !errors.Is(err, context.Canceled) {
				onErr(err)
			}
		}
	}
}

// writeSecretFile writes a 0600 file atomically (temporary file + rename).
func writeSecretFile(path, content string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
