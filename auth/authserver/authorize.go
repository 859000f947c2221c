package authserver

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"phix/access/roles"
)

// Lifetimes of the authorization-code flow's state.
const (
	requestLifetime = 10 * time.Minute // the login form
	codeLifetime    = 60 * time.Second // a code, single use
	maxPending      = 10000            // bound on pending requests and codes
)

type authRequest struct {
	clientID, redirectURI, scope, state, challenge, nonce string
	launchPatient                                         bool           // standalone launch/patient: the form asks for a patient
	launch                                                *LaunchContext // EHR launch: the context the EHR registered
	expires                                               time.Time
}

type grant struct {
	clientID, redirectURI, scope, challenge, user, nonce string
	launch                                               LaunchContext
	authTime, expires                                    time.Time
}

// serveAuthorize validates a SMART authorization request and shows the
// login form. Until client and redirect_uri are known good, errors are
// shown here; after, they go back to the client by redirect (RFC 6749 4.1.2.1).
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c, err := s.Client(r.Context(), q.Get("client_id"))
	if err != nil || c.Disabled {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	redirect := q.Get("redirect_uri")
	if !slices.Contains(c.RedirectURIs, redirect) {
		http.Error(w, "redirect_uri is not registered for this client", http.StatusBadRequest)
		return
	}
	back := func(code, desc string) {
		u, _ := url.Parse(redirect)
		v := u.Query()
		v.Set("error", code)
		v.Set("error_description", desc)
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	switch {
	case q.Get("response_type") != "code":
		back("unsupported_response_type", "response_type must be code")
		return
	case q.Get("code_challenge_method") != "S256":
		back("invalid_request", "PKCE with code_challenge_method S256 is required (plain is refused)")
		return
	case len(q.Get("code_challenge")) != 43:
		back("invalid_request", "code_challenge must be a base64url SHA-256 digest")
		return
	case q.Get("aud") != s.cfg.Audience:
		back("invalid_request", "aud must be this server's FHIR base URL")
		return
	case q.Get("state") == "":
		back("invalid_request", "state is required")
		return
	case len(q.Get("nonce")) > 256:
		back("invalid_request", "nonce is too long")
		return
	}
	scope, err := s.grantScope(c, q.Get("scope"))
	if err != nil {
		back("invalid_scope", "requested scope exceeds the client's registration")
		return
	}
	sc, _ := parseScopes(scope) // grantScope parsed it
	var lc *LaunchContext
	switch launch := q.Get("launch"); {
	case launch != "" && !sc.Has("launch"):
		back("invalid_scope", "an EHR launch needs the launch scope")
		return
	case launch != "":
		// Consumed here, before the login: a launch value opens one login form.
		if lc, err = s.consumeLaunch(r.Context(), launch, c.ID); err != nil {
			s.cfg.Logger.Error("EHR launch lookup failed", "client", c.ID, "err", err)
			back("server_error", "the launch could not be checked")
			return
		}
		if lc == nil {
			s.cfg.Logger.Warn("EHR launch refused: unknown, expired, used or for another client", "client", c.ID)
			back("invalid_request", "launch unknown, expired, already used or created for another client")
			return
		}
		if sc.Has("launch/encounter") && lc.Encounter == "" {
			back("invalid_request", "launch/encounter was requested but the launch has no encounter")
			return
		}
	case sc.Has("launch"):
		back("invalid_request", "the launch scope needs a launch parameter (EHR launch)")
		return
	case sc.Has("launch/encounter"):
		back("invalid_scope", "launch/encounter needs an EHR launch; standalone launch gives patient context only")
		return
	}
	id := randomID()
	s.flows.Lock()
	s.expire()
	if len(s.reqs) >= maxPending {
		s.flows.Unlock()
		back("temporarily_unavailable", "too many pending logins")
		return
	}
	req := &authRequest{clientID: c.ID, redirectURI: redirect, scope: scope, state: q.Get("state"), challenge: q.Get("code_challenge"),
		nonce: q.Get("nonce"), launchPatient: lc == nil && sc.Has("launch/patient"), launch: lc, expires: s.now().Add(requestLifetime)}
	s.reqs[id] = req
	s.flows.Unlock()
	s.renderLogin(w, http.StatusOK, id, c.Name, req, "")
}

// serveLogin checks the form (user, password, TOTP when required) and
// redirects back with a code.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	id := r.PostForm.Get("request")
	s.flows.Lock()
	s.expire()
	req, ok := s.reqs[id]
	s.flows.Unlock()
	if !ok {
		http.Error(w, "login request unknown or expired; start again from the application", http.StatusBadRequest)
		return
	}
	name, pw, code := r.PostForm.Get("username"), r.PostForm.Get("password"), r.PostForm.Get("totp")
	lockKey := "user:" + name
	again := func(msg string) { s.renderLogin(w, http.StatusUnauthorized, id, req.clientID, req, msg) }
	if err := s.cfg.Lockout.Check(ctx, lockKey); err != nil {
		again("This account is locked after repeated failures. Try again later.")
		return
	}
	u, err := s.User(ctx, name)
	hash := dummyHash
	if err == nil {
		hash = u.PasswordHash
	}
	if !checkPassword(hash, pw) || err != nil || u.Disabled {
		_, _ = s.cfg.Lockout.Failure(ctx, lockKey)
		again("Wrong user name or password.")
		return
	}
	if u.TOTPRequired {
		if s.cfg.TOTP == nil || s.cfg.TOTP.Verify(ctx, u.Name, code) != nil {
			_, _ = s.cfg.Lockout.Failure(ctx, lockKey)
			again("A valid one-time code is required.")
			return
		}
	}
	if _, err := roles.Parse(u.Roles); err != nil {
		again("This account's roles violate separation of duties; ask the security administrator.")
		return
	}
	s.cfg.Lockout.Success(lockKey)
	var lc LaunchContext
	switch {
	case req.launch != nil:
		// The EHR chose the patient; the user's own limits still apply.
		if p, ok := launchPatient(u, req.launch.Patient); !ok || p != req.launch.Patient {
			again("The patient of this launch is not one you may open.")
			return
		}
		lc = *req.launch
	case req.launchPatient:
		var ok bool
		if lc.Patient, ok = launchPatient(u, r.PostForm.Get("patient")); !ok {
			again("Choose a patient you may open (their record id).")
			return
		}
	}
	c := randomID()
	s.flows.Lock()
	delete(s.reqs, id)
	if len(s.codes) >= maxPending {
		s.flows.Unlock()
		http.Error(w, "too many pending codes", http.StatusServiceUnavailable)
		return
	}
	s.codes[c] = &grant{clientID: req.clientID, redirectURI: req.redirectURI, scope: req.scope, challenge: req.challenge,
		user: u.Name, nonce: req.nonce, launch: lc, authTime: s.now(), expires: s.now().Add(codeLifetime)}
	s.flows.Unlock()
	dst, _ := url.Parse(req.redirectURI)
	v := dst.Query()
	v.Set("code", c)
	v.Set("state", req.state)
	dst.RawQuery = v.Encode()
	http.Redirect(w, r, dst.String(), http.StatusFound)
}

// expire drops stale requests and codes; s.flows must be held.
func (s *Server) expire() {
	now := s.now()
	for k, v := range s.reqs {
		if now.After(v.expires) {
			delete(s.reqs, k)
		}
	}
	for k, v := range s.codes {
		if now.After(v.expires) {
			delete(s.codes, k)
		}
	}
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>phix sign-in</title></head>
<body>
<h1>Sign in</h1>
<p>{{.Client}} asks for: <code>{{.Scope}}</code></p>
{{if .Message}}<p role="alert">{{.Message}}</p>{{end}}
<form method="post" action="authorize">
<input type="hidden" name="request" value="{{.Request}}">
<p><label>User name <input name="username" autocomplete="username" required></label></p>
<p><label>Password <input type="password" name="password" autocomplete="current-password" required></label></p>
<p><label>One-time code (if enrolled) <input name="totp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}"></label></p>
{{if .Patient}}<p><label>Patient record id <input name="patient" pattern="[A-Za-z0-9.\-]{1,64}"></label> (may stay empty when you have one patient)</p>{{end}}
<p><button type="submit">Sign in and allow</button></p>
</form>
</body></html>
`))

// launchPatient picks the launch context: the id the user typed, if the
// user may pick it, or else the user's only allowed patient. A user whose
// FHIR resource is a Patient may only pick that patient.
func launchPatient(u *User, typed string) (string, bool) {
	allowed := u.Patients
	if p, ok := strings.CutPrefix(u.FHIRUser, "Patient/"); ok {
		allowed = []string{p}
	}
	switch {
	case typed == "" && len(allowed) == 1:
		return allowed[0], validID(allowed[0])
	case !validID(typed):
		return "", false
	case len(allowed) == 0 || slices.Contains(allowed, typed):
		return typed, true
	}
	return "", false
}

func (s *Server) renderLogin(w http.ResponseWriter, status int, id, client string, req *authRequest, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	// No form-action: browsers apply it to the redirect back to the app.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = loginPage.Execute(w, map[string]any{"Request": id, "Client": client, "Scope": req.scope, "Message": msg, "Patient": req.launchPatient})
}
