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
	"os"
	"strings"
	"text/tabwriter"

	jose "github.com/go-jose/go-jose/v4"

	"phix/auth/authserver"
	"phix/auth/nodeauth"
	"phix/auth/secretbox"
	"phix/fhirserver"
	"phix/suite"
)

func init() {
	register(command{name: "auth", summary: "manage the node's authorization server: users, clients, TOTP enrolment", run: runAuth})
}

const authUsage = `usage: phix auth --db DSN <command> ...
  users add NAME --roles R[,R] [--org O] [--purpose P] [--fhir-user Practitioner/ID] [--patients ID,ID] [--password-file F]
                                    (the password is read from --password-file or the first line of stdin; never an argument)
  users list
  users disable NAME                refuses logins and revokes the user's refresh tokens
  clients add ID --scope S [--name N] [--roles R] [--org O] [--purpose P]
       backend services: --jwks FILE | --public-key FILE (PEM)   (client_credentials, private_key_jwt)
       public SMART app: --redirect-uri URI (repeatable)          (authorization code with PKCE)
  clients list
  clients disable ID                refuses the client and revokes its refresh tokens
  totp enrol USER --data-dir DIR --hospital H [--suite intl|gm]
                                    prints the otpauth:// URI and the secret once (on stdout only)
  totp confirm USER CODE --data-dir DIR --hospital H [--suite intl|gm]
                                    activates the secret with a first code; the login then asks for one
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, kind, c.Scope, strings.Join(c.Roles, ","), yesNo(c.Disabled, "disabled", "active"))
		}
		return tw.Flush()
	case "clients disable":
		if len(rest) != 3 {
			return usage
		}
		return notFound(st.DisableClient(ctx, rest[2]), "client")
	case "totp enrol", "totp enroll", "totp confirm":
		return authTOTP(ctx, st, db, rest[1], rest[2:], stdout)
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
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return "", errors.New("want exactly one name")
	}
	return pos[0], nil
}

func authUserAdd(ctx context.Context, st *authserver.Store, args []string, stdin io.Reader) error {
	fs := flag.NewFlagSet("users add", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	rolesF := fs.String("roles", "", "comma-separated roles (separation of duties is checked)")
	org := fs.String("org", "", "organisation")
	purpose := fs.String("purpose", "", "purpose of use carried in the user's tokens (e.g. TREAT)")
	fhirUser := fs.String("fhir-user", "", "the user's FHIR resource, e.g. Practitioner/123")
	patients := fs.String("patients", "", "patients the user may pick as SMART launch context (logical ids)")
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
	u := authserver.User{Name: name, Roles: splitList(*rolesF), Org: *org, Purpose: *purpose, FHIRUser: *fhirUser, Patients: splitList(*patients)}
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
	}
	c := authserver.Client{ID: id, Name: *name, Scope: *scope, RedirectURIs: redirects}
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

// authTOTP enrols or confirms a user's TOTP secret, sealed under the
// hospital's data KEK (the node's keyring in --data-dir).
func authTOTP(ctx context.Context, st *authserver.Store, db *sql.DB, verb string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("totp", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dataDir := fs.String("data-dir", "", "the node's data directory (keyring)")
	hospital := fs.String("hospital", "", "the node's hospital id")
	suiteID := fs.String("suite", "intl", "the keyring's suite")
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return &exitError{code: 2, err: errors.New(authUsage)}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if *dataDir == "" || *hospital == "" || (verb == "confirm" && len(pos) != 2) || (verb != "confirm" && len(pos) != 1) {
		return &exitError{code: 2, err: errors.New(authUsage)}
	}
	user := pos[0]
	if _, err := st.User(ctx, user); err != nil {
		return &exitError{code: 1, err: errors.New("no such user")}
	}
	static, err := fhirserver.NewStaticTokens("phix-auth-cli-unused-token")
	if err != nil {
		return err
	}
	node, err := fhirserver.OpenNode(ctx, fhirserver.NodeOptions{Dir: *dataDir, Hospital: *hospital, Suite: *suiteID, Auth: static})
	if err != nil {
		return err
	}
	defer node.Close()
	box, err := secretbox.FromKMS(ctx, node.Keys, *hospital, suite.ID(*suiteID))
	if err != nil {
		return err
	}
	m := nodeauth.NewTOTP(db, box, *hospital)
	if verb == "confirm" {
		if err := m.Confirm(ctx, user, pos[1]); err != nil {
			return fmt.Errorf("the code does not confirm the enrolment (%w)", err)
		}
		return st.RequireTOTP(ctx, user, true)
	}
	e, err := m.Begin(ctx, user)
	if err != nil {
		return err
	}
	// Shown once, on stdout only: the secret is never logged or stored
	// in clear. The login asks for codes after `totp confirm`.
	fmt.Fprintf(stdout, "otpauth URI: %s\nsecret:      %s\nthen: phix auth --db ... totp confirm %s CODE --data-dir %s --hospital %s\n", e.URI, e.Secret, user, *dataDir, *hospital)
	return nil
}
