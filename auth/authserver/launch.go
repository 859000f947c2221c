package authserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// LaunchLifetime is how long a launch value created at POST /launch may be
// redeemed at /authorize (once).
const LaunchLifetime = 5 * time.Minute

// maxLaunchValueLen bounds what is hashed and looked up (ours are 43).
const maxLaunchValueLen = 128

// LaunchContext is what an EHR puts into an app's grant at EHR launch
// (SMART App Launch v2 launch context): the patient, and optionally the
// encounter, further FHIR references (fhirContext) and an intent. The
// standalone launch fills Patient only.
type LaunchContext struct {
	Patient     string       `json:"patient,omitempty"`
	Encounter   string       `json:"encounter,omitempty"`
	FHIRContext []ContextRef `json:"fhirContext,omitempty"`
	Intent      string       `json:"intent,omitempty"`
}

// ContextRef is one fhirContext entry: a relative reference (Type/id).
type ContextRef struct {
	Reference string `json:"reference"`
}

// LaunchRequest is a parsed POST /launch body.
type LaunchRequest struct {
	// ClientID is the app the launch is for (target_client_id): only that
	// client may redeem the launch value.
	ClientID string
	Context  LaunchContext
}

// launchParams are the parameters POST /launch accepts; any other is
// refused, so a misspelt context parameter is not silently dropped.
var launchParams = map[string]bool{"client_assertion_type": true, "client_assertion": true, "client_id": true,
	"target_client_id": true, "patient": true, "encounter": true, "intent": true, "fhir_context": true}

// maxFHIRContext bounds the references in fhir_context.
const maxFHIRContext = 10

// ParseLaunchRequest checks the launch parameters of a POST /launch form
// (already parsed by ParseEndpointForm): target_client_id and patient are
// required; encounter is a FHIR logical id; fhir_context is up to 10
// space-separated relative references (Type/id); intent is up to 64
// printable ASCII characters. Errors are invalid_request and never quote
// input (a patient id is PHI).
func ParseLaunchRequest(f url.Values) (LaunchRequest, error) {
	bad := func(d string) error { return oerr(http.StatusBadRequest, "invalid_request", d) }
	for k := range f {
		if !launchParams[k] {
			return LaunchRequest{}, bad("unknown parameter " + safeName(k))
		}
	}
	lr := LaunchRequest{ClientID: f.Get("target_client_id")}
	if lr.ClientID == "" || len(lr.ClientID) > 128 {
		return LaunchRequest{}, bad("target_client_id (the app to launch) is required")
	}
	lr.Context.Patient = f.Get("patient")
	if !validID(lr.Context.Patient) {
		return LaunchRequest{}, bad("patient must be a FHIR logical id")
	}
	if e := f.Get("encounter"); e != "" {
		if !validID(e) {
			return LaunchRequest{}, bad("encounter must be a FHIR logical id")
		}
		lr.Context.Encounter = e
	}
	if in := f.Get("intent"); in != "" {
		if len(in) > 64 || strings.IndexFunc(in, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
			return LaunchRequest{}, bad("intent must be 1..64 printable ASCII characters")
		}
		lr.Context.Intent = in
	}
	if fc := f.Get("fhir_context"); fc != "" {
		refs := strings.Fields(fc)
		if len(refs) > maxFHIRContext {
			return LaunchRequest{}, bad("fhir_context has more than 10 references")
		}
		for _, ref := range refs {
			if !validRelativeRef(ref) {
				return LaunchRequest{}, bad("fhir_context must be relative references (Type/id)")
			}
			lr.Context.FHIRContext = append(lr.Context.FHIRContext, ContextRef{Reference: ref})
		}
	}
	return lr, nil
}

// validRelativeRef reports whether s is Type/id: a resource type name
// (an upper-case letter, then letters, at most 64) and a FHIR logical id.
func validRelativeRef(s string) bool {
	typ, id, ok := strings.Cut(s, "/")
	if !ok || len(typ) == 0 || len(typ) > 64 || typ[0] < 'A' || typ[0] > 'Z' {
		return false
	}
	for i := 0; i < len(typ); i++ {
		if c := typ[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return validID(id)
}

// serveLaunch is POST /launch: an EHR (a confidential client registered
// with EHR, authenticated by its private_key_jwt assertion) registers a
// launch context for an app and receives an opaque launch value, single
// use, redeemable by that app at /authorize for LaunchLifetime. The body
// is a form as at /revoke (no URL parameters, none repeated).
func (s *Server) serveLaunch(w http.ResponseWriter, r *http.Request) {
	if err := endpointForm(w, r); err != nil {
		writeOAuthError(w, err)
		return
	}
	ctx := r.Context()
	ehr, err := s.authenticateClient(ctx, r, true)
	if err != nil {
		writeOAuthError(w, err)
		return
	}
	if !ehr.EHR {
		s.cfg.Logger.Warn("launch refused: client is not an EHR", "client", ehr.ID)
		writeOAuthError(w, oerr(http.StatusForbidden, "unauthorized_client", "client may not create launch contexts"))
		return
	}
	lr, err := ParseLaunchRequest(r.PostForm)
	if err != nil {
		writeOAuthError(w, err)
		return
	}
	app, err := s.Client(ctx, lr.ClientID)
	switch {
	case errors.Is(err, errUnknownClient) || err == nil && (app.Disabled || len(app.RedirectURIs) == 0):
		writeOAuthError(w, oerr(http.StatusBadRequest, "invalid_request", "target_client_id is not an enabled app with redirect URIs"))
		return
	case err != nil:
		s.cfg.Logger.Error("launch failed", "ehr", ehr.ID, "err", err)
		writeOAuthError(w, err)
		return
	}
	value, err := s.createLaunch(ctx, ehr.ID, lr)
	if err != nil {
		s.cfg.Logger.Error("launch failed", "ehr", ehr.ID, "err", err)
		writeOAuthError(w, err)
		return
	}
	s.cfg.Logger.Info("EHR launch created", "ehr", ehr.ID, "client", app.ID)
	writeJSON(w, http.StatusCreated, map[string]any{"launch": value, "expires_in": int(LaunchLifetime / time.Second)})
}

// createLaunch stores the context under the SHA-256 of a new random launch
// value and returns the value. Expired launches are purged.
func (s *Server) createLaunch(ctx context.Context, ehr string, lr LaunchRequest) (string, error) {
	doc, err := json.Marshal(lr.Context)
	if err != nil {
		return "", err
	}
	now := s.now()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM as_launch WHERE expires < $1`, now.Unix()); err != nil {
		return "", err
	}
	v := randomID()
	_, err = s.db.ExecContext(ctx, `INSERT INTO as_launch (id, client, ehr, doc, expires) VALUES ($1, $2, $3, $4, $5)`,
		refreshID(v), lr.ClientID, ehr, string(doc), now.Add(LaunchLifetime).Unix())
	return v, err
}

// consumeLaunch redeems a launch value for client: it must exist, be
// unexpired, unused and created for that client; it is then used (of
// concurrent redemptions exactly one wins). nil, nil: refused.
func (s *Server) consumeLaunch(ctx context.Context, value, client string) (*LaunchContext, error) {
	if value == "" || len(value) > maxLaunchValueLen {
		return nil, nil
	}
	id, now := refreshID(value), s.now().Unix()
	res, err := s.db.ExecContext(ctx, `UPDATE as_launch SET used = $1 WHERE id = $2 AND client = $3 AND used = 0 AND expires >= $1`, now, id, client)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return nil, err
	}
	var doc string
	if err := s.db.QueryRowContext(ctx, `SELECT doc FROM as_launch WHERE id = $1`, id).Scan(&doc); err != nil {
		if errors.Is(err, sql.ErrNoRows) { // purged in between: as good as expired
			return nil, nil
		}
		return nil, err
	}
	var lc LaunchContext
	if err := json.Unmarshal([]byte(doc), &lc); err != nil {
		return nil, err
	}
	return &lc, nil
}

// extra encodes the context beyond the patient for the as_refresh launch
// column ("" when there is none).
func (lc LaunchContext) extra() string {
	lc.Patient = ""
	if lc.Encounter == "" && lc.Intent == "" && len(lc.FHIRContext) == 0 {
		return ""
	}
	b, _ := json.Marshal(lc)
	return string(b)
}

// launchFromColumns rebuilds a refresh family's context.
func launchFromColumns(patient, extra string) LaunchContext {
	var lc LaunchContext
	if extra != "" {
		_ = json.Unmarshal([]byte(extra), &lc) // written by extra
	}
	lc.Patient = patient
	return lc
}

// addTo puts the context's parameters into a token response.
func (lc LaunchContext) addTo(out map[string]any) {
	if lc.Patient != "" {
		out["patient"] = lc.Patient
	}
	if lc.Encounter != "" {
		out["encounter"] = lc.Encounter
	}
	if len(lc.FHIRContext) > 0 {
		out["fhirContext"] = lc.FHIRContext
	}
	if lc.Intent != "" {
		out["intent"] = lc.Intent
	}
}
