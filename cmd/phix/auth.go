package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	osuser "os/user"
	"strings"
	"text/tabwriter"

	jose "github.com/go-jose/go-jose/v4"

	"phix/audit"
	"phix/auth/authserver"
	"phix/auth/nodeauth"
	"phix/auth/secretbox"
	"phix/auth/session"
	"phix/fhirserver"
	"phix/suite"
)

func init() {
	register(command{name: "auth", summary: "manage the node's authorization server: users, clients, TOTP, IP allowlists", run: runAuth})
}

const authUsage = `usage: phix auth --db DSN <command> ...
  users add NAME --roles R[,R] [--org O] [--purpose P] [--fhir-user Practitioner/ID] [--patients ID,ID] [--display-name N] [--password-file F]
                                    (the password is read from --password-file or the first line of stdin; never an argument)
  users list
  users disable NAME                refuses logins and revokes the user's refresh tokens
  clients add ID --scope S [--name N] [--roles R] [--org O] [--purpose P]
       backend services: --jwks FILE | --public-key FILE (PEM)   (client_credentials, private_key_jwt)
       public SMART app: --redirect-uri URI (repeatable)          (authorization code with PKCE)
       --introspect (with keys): may introspect every token of this server (a resource server)
       --ehr (with keys): an EHR that may create SMART EHR launch contexts (POST /auth/launch)
  clients list
  clients disable ID                refuses the client and revokes its refresh tokens
  totp enrol USER --data-dir DIR --hospital H [--suite intl|gm]
                                    prints the otpauth:// URI and the secret once (on stdout only)
  totp confirm USER CODE --data-dir DIR --hospital H [--suite intl|gm]
                                    activates the secret with a first code; the login then asks for one
  totp reset USER --data-dir DIR --hospital H [--suite intl|gm]
                                    clears the enrolment (lost device); the user must enrol again; audited
  allowlist list
  allowlist add client|org ID CIDR... --data-dir DIR --hospital H     audited
  allowlist remove client|org ID [CIDR...] --data-dir DIR --hospital H
                                    without CIDR: the whole list (the id is then unrestricted); audited
DSN is the auth store: a SQLite file (phix node: DATA/auth.db; phix fhir --auth-server:
DB-dir/auth.db) or a postgres:// DSN`

func runAuth(ctx context.Context, args []string) error {
	return authMain(ctx, args, os.Stdin, os.Stdout)
}

// authMain runs `phix auth`; stdin gives passwords, stdout the listings
// and, once, a TOTP secret.
func authMain(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	usage := &exitError{code: 2, err: errors.New(authUsage)}
	fs := flag.NewFlagSet("auth", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dsn := fs.String("db", "", "auth store: SQLite file or postgres:// DSN")
	if err := fs.Parse(args); err != nil || *dsn == "" || fs.NArg() < 2 {
		return usage
	}
	rest := fs.Args()
	db, err := nodeauth.OpenDB(ctx, *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	st := authserver.NewStore(db)
	switch rest[0] + " " + rest[1] {
	case "users add":
		return authUserAdd(ctx, st, rest[2:], stdin)
	case "users list":
		us, err := st.Users(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLES\tORG\tFHIR USER\tTOTP\tSTATUS")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, strings.Join(u.Roles, ","), u.Org, u.FHIRUser, yesNo(u.TOTPRequired, "required", "-"), yesNo(u.Disabled, "disabled", "active"))
		}
		return tw.Flush()
	case "users disable":
		if len(rest) != 3 {
			return usage
		}
		return notFound(st.DisableUser(ctx, rest[2]), "user")
	case "clients add":
		return authClientAdd(ctx, st, rest[2:])
	case "clients list":
		cs, err := st.Clients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tSCOPE\tROLES\tSTATUS")
		for _, c := range cs {
			kind := "public"
			switch {
			case c.ClientCredentials:
				kind = "backend"
			case c.JWKS != nil && len(c.JWKS.Keys) > 0:
				kind = "confidential"
			}
			if c.Introspect {
				kind += ",introspect"
			}
			if c.EHR {
				kind += ",ehr"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, kind, c.Scope, strings.Join(c.Roles, ","), yesNo(c.Disabled, "disabled", "active"))
		}
		return tw.Flush()
	case "clients disable":
		if len(rest) != 3 {
			return usage
		}
		return notFound(st.DisableClient(ctx, rest[2]), "client")
	case "totp enrol", "totp enroll", "totp confirm", "totp reset":
		return authTOTP(ctx, st, db, rest[1], rest[2:], stdout)
	case "allowlist list":
		return authAllowlistList(ctx, db, stdout)
	case "allowlist add", "allowlist remove":
		return authAllowlistEdit(ctx, db, rest[1], rest[2:], stdout)
	}
	return usage
}

func yesNo(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

func notFound(err error, what string) error {
	if errors.Is(err, authserver.ErrNotFound) {
		return &exitError{code: 1, err: fmt.Errorf("no such %s", what)}
	}
	return err
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseInterleaved parses flags that may come before or after one
// positional argument (phix auth users add NAME --roles ...).
func parseInterleaved(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := positionals(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", errors.New("want exactly one name")
	}
	return pos[0], nil
}

// positionals parses fs from args, whose flags and positional arguments
// may come in any order, and returns the positional ones.
func positionals(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func authUserAdd(ctx context.Context, st *authserver.Store, args []string, stdin io.Reader) error {
	fs := flag.NewFlagSet("users add", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	rolesF := fs.String("roles", "", "comma-separated roles (separation of duties is checked)")
	org := fs.String("org", "", "organisation")
	purpose := fs.String("purpose", "", "purpose of use carried in the user's tokens (e.g. TREAT)")
	fhirUser := fs.String("fhir-user", "", "the user's FHIR resource, e.g. Practitioner/123")
	patients := fs.String("patients", "", "patients the user may pick as SMART launch context (logical ids)")
	display := fs.String("display-name", "", "the user's name shown to apps granted the profile scope")
	pwFile := fs.String("password-file", "", "file whose first line is the password (default: stdin)")
	name, err := parseInterleaved(fs, args)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("users add: %w\n%s", err, authUsage)}
	}
	var src io.Reader = stdin
	if *pwFile != "" {
		f, err := os.Open(*pwFile)
		if err != nil {
			return err
		}
		defer f.Close()
		src = f
	}
	line, err := bufio.NewReader(io.LimitReader(src, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	pw := strings.TrimRight(line, "\r\n")
	u := authserver.User{Name: name, Roles: splitList(*rolesF), Org: *org, Purpose: *purpose, FHIRUser: *fhirUser, Patients: splitList(*patients), DisplayName: *display}
	if old, err := st.User(ctx, name); err == nil {
		u.TOTPRequired = old.TOTPRequired // re-adding keeps an enrolled second factor
	}
	return st.SetUser(ctx, u, pw)
}

func authClientAdd(ctx context.Context, st *authserver.Store, args []string) error {
	fs := flag.NewFlagSet("clients add", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	scope := fs.String("scope", "", "the most the client may be granted (SMART scopes)")
	name := fs.String("name", "", "display name shown on the login form")
	jwksFile := fs.String("jwks", "", "the client's public keys (JWKS JSON): a backend-services client")
	pubFile := fs.String("public-key", "", "the client's public key (PEM, RSA/EC/Ed25519): a backend-services client")
	rolesF := fs.String("roles", "", "roles carried in a backend client's tokens")
	org := fs.String("org", "", "organisation carried in a backend client's tokens")
	purpose := fs.String("purpose", "", "purpose of use carried in a backend client's tokens")
	introspect := fs.Bool("introspect", false, "the client (a resource server) may introspect every token of this server")
	ehr := fs.Bool("ehr", false, "the client (an EHR) may create SMART EHR launch contexts")
	var redirects listFlag
	fs.Var(&redirects, "redirect-uri", "redirect URI of a public SMART app (repeatable; compared exactly)")
	id, err := parseInterleaved(fs, args)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("clients add: %w\n%s", err, authUsage)}
	}
	backend := *jwksFile != "" || *pubFile != ""
	switch {
	case *jwksFile != "" && *pubFile != "":
		return &exitError{code: 2, err: errors.New("clients add: --jwks or --public-key, not both")}
	case backend && len(redirects) > 0:
		return &exitError{code: 2, err: errors.New("clients add: a backend client has keys and no redirect URI; a public app the reverse")}
	case !backend && len(redirects) == 0:
		return &exitError{code: 2, err: errors.New("clients add: give --jwks/--public-key (backend services) or --redirect-uri (public SMART app)")}
	case *introspect && !backend:
		return &exitError{code: 2, err: errors.New("clients add: --introspect needs the client's keys (--jwks or --public-key)")}
	case *ehr && !backend:
		return &exitError{code: 2, err: errors.New("clients add: --ehr needs the client's keys (--jwks or --public-key)")}
	}
	c := authserver.Client{ID: id, Name: *name, Scope: *scope, RedirectURIs: redirects, Introspect: *introspect, EHR: *ehr}
	if backend {
		c.ClientCredentials, c.Roles, c.Org, c.Purpose = true, splitList(*rolesF), *org, *purpose
		if c.JWKS, err = readClientKeys(*jwksFile, *pubFile); err != nil {
			return err
		}
	}
	return st.RegisterClient(ctx, c)
}

// readClientKeys reads a JWKS file or a PEM public key (kid = the RFC 7638
// thumbprint).
func readClientKeys(jwksFile, pubFile string) (*jose.JSONWebKeySet, error) {
	if jwksFile != "" {
		b, err := os.ReadFile(jwksFile)
		if err != nil {
			return nil, err
		}
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) == 0 {
			return nil, errors.New("clients add: --jwks is not a JSON Web Key Set with keys")
		}
		return &set, nil
	}
	b, err := os.ReadFile(pubFile)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("clients add: --public-key must be a PEM PUBLIC KEY")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, errors.New("clients add: --public-key does not parse")
	}
	k := jose.JSONWebKey{Key: pub, Use: "sig"}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, errors.New("clients add: unsupported public key type")
	}
	k.KeyID = fmt.Sprintf("%x", tp[:8])
	return &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k}}, nil
}

// authTOTP enrols, confirms or resets a user's TOTP secret, sealed under
// the hospital's data KEK (the node's keyring in --data-dir).
func authTOTP(ctx context.Context, st *authserver.Store, db *sql.DB, verb string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("totp", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	nf := nodeFlags(fs)
	pos, err := positionals(fs, args)
	if err != nil {
		return &exitError{code: 2, err: errors.New(authUsage)}
	}
	if !nf.set() || (verb == "confirm" && len(pos) != 2) || (verb != "confirm" && len(pos) != 1) {
		return &exitError{code: 2, err: errors.New(authUsage)}
	}
	user := pos[0]
	if _, err := st.User(ctx, user); err != nil {
		return &exitError{code: 1, err: errors.New("no such user")}
	}
	node, err := nf.open(ctx)
	if err != nil {
		return err
	}
	defer node.Close()
	box, err := secretbox.FromKMS(ctx, node.Keys, *nf.hospital, suite.ID(*nf.suite))
	if err != nil {
		return err
	}
	m := nodeauth.NewTOTP(db, box, *nf.hospital)
	switch verb {
	case "confirm":
		if err := m.Confirm(ctx, user, pos[1]); err != nil {
			return fmt.Errorf("the code does not confirm the enrolment (%w)", err)
		}
		return st.RequireTOTP(ctx, user, true)
	case "reset":
		// The secret goes; TOTPRequired stays, so the user cannot sign in
		// until enrolled and confirmed again (a lost or stolen device must
		// not turn into a password-only login).
		if err := m.Reset(ctx, user); err != nil {
			return err
		}
		if err := auditAuthAdmin(ctx, node, "phix-auth:totp-reset", "AuthUser", user); err != nil {
			return fmt.Errorf("TOTP enrolment reset but not audited: %w", err)
		}
		fmt.Fprintf(stdout, "TOTP enrolment of %s cleared; enrol again with: phix auth --db ... totp enrol %s --data-dir %s --hospital %s\n", user, user, *nf.dataDir, *nf.hospital)
		return nil
	}
	e, err := m.Begin(ctx, user)
	if err != nil {
		return err
	}
	// Shown once, on stdout only: the secret is never logged or stored
	// in clear. The login asks for codes after `totp confirm`.
	fmt.Fprintf(stdout, "otpauth URI: %s\nsecret:      %s\nthen: phix auth --db ... totp confirm %s CODE --data-dir %s --hospital %s\n", e.URI, e.Secret, user, *nf.dataDir, *nf.hospital)
	return nil
}

// nodeFlagSet are the flags that open the node's keyring and audit log.
type nodeFlagSet struct{ dataDir, hospital, suite *string }

func nodeFlags(fs *flag.FlagSet) nodeFlagSet {
	return nodeFlagSet{
		dataDir:  fs.String("data-dir", "", "the node's data directory (keyring, audit log)"),
		hospital: fs.String("hospital", "", "the node's hospital id"),
		suite:    fs.String("suite", "intl", "the keyring's suite"),
	}
}

func (nf nodeFlagSet) set() bool { return *nf.dataDir != "" && *nf.hospital != "" }

// open opens the node's keyring and audit log (the audit log takes
// appends from several processes, so this works beside a running node).
func (nf nodeFlagSet) open(ctx context.Context) (*fhirserver.Node, error) {
	static, err := fhirserver.NewStaticTokens("phix-auth-cli-unused-token")
	if err != nil {
		return nil, err
	}
	return fhirserver.OpenNode(ctx, fhirserver.NodeOptions{Dir: *nf.dataDir, Hospital: *nf.hospital, Suite: *nf.suite, Auth: static})
}

// auditAuthAdmin records an administrative change of the authorization
// server in the node's audit log: who (the operating-system account, as a
// pseudonym), what (the object, as a pseudonym) and the action as the
// policy id. No name, address or secret is in the record.
func auditAuthAdmin(ctx context.Context, node *fhirserver.Node, action, objectType, object string) error {
	operator := "unknown"
	if u, err := osuser.Current(); err == nil {
		operator = u.Username
	}
	ev := audit.Event{Action: audit.ActionUpdate, Outcome: audit.OutcomeSuccess,
		Who:      audit.Who{Role: "security-admin", User: node.Pseudonyms.User("os:" + operator)},
		What:     audit.What{ResourceType: objectType, ResourceID: node.Pseudonyms.Resource(objectType, object)},
		Decision: &audit.Decision{Effect: "permit", Policies: []string{action}}}
	_, err := node.Audit.Append(ctx, ev)
	return err
}

func authAllowlistList(ctx context.Context, db *sql.DB, stdout io.Writer) error {
	es, err := session.NewStoredAllowlist(db).List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tCIDR")
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Kind, e.ID, e.Prefix)
	}
	return tw.Flush()
}

// authAllowlistEdit adds or removes allowed prefixes of a client or an
// organisation in the auth store, which the FHIR servers of the node read
// (within 5 s); the change is audited.
func authAllowlistEdit(ctx context.Context, db *sql.DB, verb string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("allowlist", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	nf := nodeFlags(fs)
	pos, err := positionals(fs, args)
	if err != nil {
		return &exitError{code: 2, err: errors.New(authUsage)}
	}
	if !nf.set() || len(pos) < 2 || (verb == "add" && len(pos) < 3) || (pos[0] != "client" && pos[0] != "org") {
		return &exitError{code: 2, err: errors.New(authUsage)}
	}
	kind, id := pos[0], pos[1]
	var prefixes []netip.Prefix
	for _, c := range pos[2:] {
		p, err := session.ParsePrefix(c)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("allowlist %s: not a CIDR or address", verb)}
		}
		prefixes = append(prefixes, p)
	}
	node, err := nf.open(ctx)
	if err != nil {
		return err
	}
	defer node.Close()
	al := session.NewStoredAllowlist(db)
	if verb == "add" {
		for _, p := range prefixes {
			if err := al.Add(ctx, kind, id, p); err != nil {
				return err
			}
		}
	} else {
		if len(prefixes) == 0 {
			prefixes = []netip.Prefix{{}} // the whole list
		}
		var n int64
		for _, p := range prefixes {
			k, err := al.Remove(ctx, kind, id, p)
			if err != nil {
				return err
			}
			n += k
		}
		if n == 0 {
			return &exitError{code: 1, err: fmt.Errorf("no such allowlist entry")}
		}
	}
	objType := map[string]string{"client": "AllowlistClient", "org": "AllowlistOrg"}[kind]
	if err := auditAuthAdmin(ctx, node, "phix-auth:allowlist-"+verb, objType, id); err != nil {
		return fmt.Errorf("allowlist changed but not audited: %w", err)
	}
	es, err := al.List(ctx)
	if err != nil {
		return err
	}
	var left []string
	for _, e := range es {
		if e.Kind == kind && e.ID == id {
			left = append(left, e.Prefix.String())
		}
	}
	if len(left) == 0 {
		fmt.Fprintf(stdout, "%s %s: no allowlist; not restricted by source address\n", kind, id)
	} else {
		fmt.Fprintf(stdout, "%s %s: allowed from %s\n", kind, id, strings.Join(left, " "))
	}
	return nil
}
