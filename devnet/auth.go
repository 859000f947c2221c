package devnet

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"phix/auth/authserver"
	"phix/auth/nodeauth"
	"phix/gateway"
)

// hospitalAuth is a hospital's access control (nodeauth: authorization
// server, TOTP, policy, break-glass) and its dev clients.
type hospitalAuth struct {
	*nodeauth.Auth
	files []nodeauth.TokenFile // the dev clients' token files
	// gateway is the edge gateway's backend-services client (its access
	// to patients comes from per-transfer grants only) and consents the
	// client it reads transfers' Consents with (system/Consent.rs).
	gateway, consents *nodeauth.ServiceClient
}

// openAuthDB opens DIR/<hospital>/auth.db with the tables of the
// authorization server, TOTP and break-glass.
func openAuthDB(ctx context.Context, dir string) (*sql.DB, error) {
	return nodeauth.OpenDB(ctx, filepath.Join(dir, "auth.db"))
}

// newHospitalAuth opens the hospital's access control (nodeauth.Open with
// cfg) and registers the dev clients: the clinician-administrator and the
// auditor (DESIGN.md, "The dev network").
func newHospitalAuth(ctx context.Context, cfg nodeauth.Config, devDir string) (*hospitalAuth, error) {
	a, err := nodeauth.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	h := &hospitalAuth{Auth: a}
	hospital := cfg.Hospital
	for _, c := range []struct {
		spec nodeauth.ServiceClientSpec
		file string
	}{
		{nodeauth.ServiceClientSpec{ID: hospital + "-admin", Scope: "system/*.cruds", Roles: []string{"clinician"}, Purpose: "TREAT"}, hospital + ".token"},
		{nodeauth.ServiceClientSpec{ID: hospital + "-auditor", Scope: "system/AuditEvent.rs", Roles: []string{"auditor"}, Purpose: "HOPERAT"}, hospital + ".auditor.token"},
	} {
		svc, err := a.RegisterServiceClient(ctx, hospital, c.spec)
		if err != nil {
			return nil, err
		}
		h.files = append(h.files, nodeauth.TokenFile{Client: svc, Path: filepath.Join(devDir, c.file)})
	}
	// The gateway's own clients, as phix node registers them.
	if h.gateway, err = a.RegisterServiceClient(ctx, hospital, nodeauth.ServiceClientSpec{ID: hospital + "-gateway", Scope: "system/*.cruds",
		Roles: []string{"clinician"}, Purpose: "TREAT"}); err != nil {
		return nil, err
	}
	if h.consents, err = a.RegisterServiceClient(ctx, hospital, nodeauth.ServiceClientSpec{ID: hospital + "-gateway-consents",
		Scope: "system/Consent.rs", Roles: []string{"clinician"}, Purpose: "TREAT"}); err != nil {
		return nil, err
	}
	if err := devLogin(ctx, a.AS, hospital, devDir); err != nil {
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
		RedirectURIs: []string{DevAppRedirectURI}, Scope: "openid fhirUser launch/patient offline_access online_access user/*.cruds patient/*.rs"}); err != nil {
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
	return nodeauth.RefreshTokenFiles(ctx, h.files)
}

// gatewayFHIR is the gateway's client of its hospital's FHIR server: its
// own backend-services tokens, a consent reader, and per-transfer grants.
func (h *hospitalAuth) gatewayFHIR(base string) *gateway.FHIRClient {
	return &gateway.FHIRClient{Base: base, TokenSource: h.gateway.Token, ConsentTokenSource: h.consents.Token,
		Grants: h.Grants.For(h.gateway.ID)}
}

// keepFresh rewrites the token files every nodeauth.TokenRefresh until ctx ends.
func (h *hospitalAuth) keepFresh(ctx context.Context, onErr func(error)) {
	nodeauth.KeepTokenFilesFresh(ctx, h.files, onErr, nil)
}

// writeSecretFile writes a 0600 file atomically (temporary file + rename).
func writeSecretFile(path, content string) error { return nodeauth.WriteSecretFile(path, content) }
