package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"phix/fhirserver"
)

// verifyOut is where verify-integrity writes (tests replace it).
var verifyOut struct {
	stdout, stderr io.Writer
} = struct{ stdout, stderr io.Writer }{os.Stdout, os.Stderr}

// runVerifyIntegrity is `phix fhir verify-integrity`: it checks the HMAC of
// every stored version of a FHIR store (all types, all history) with the
// node's keyring and prints one line per bad version, "Type/id/_history/v:
// reason" (no PHI). The exit status is 1 when any version is bad.
func runVerifyIntegrity(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("phix fhir verify-integrity", flag.ContinueOnError)
	fs.SetOutput(verifyOut.stderr)
	db := fs.String("db", "", "database: a SQLite file path, or a postgres:// DSN (required)")
	dataDir := fs.String("data-dir", "", "directory of the node's keyring (default: the SQLite file's directory; required with PostgreSQL)")
	hospital := fs.String("hospital", "hospital", "the node's hospital id in the keyring")
	suiteID := fs.String("suite", "intl", "crypto suite of the keyring: intl or gm")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2, err: err}
	}
	if *db == "" {
		return &exitError{code: 2, err: errors.New("--db is required")}
	}
	if *dataDir == "" {
		if isPostgresURL(*db) {
			return &exitError{code: 2, err: errors.New("--data-dir is required with a PostgreSQL database")}
		}
		*dataDir = filepath.Dir(strings.TrimPrefix(strings.TrimPrefix(*db, "sqlite:"), "file:"))
	}
	if _, err := os.Stat(filepath.Join(*dataDir, "keyring.db")); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("no keyring in %s", *dataDir)}
	}
	st, err := openStore(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	// The node wants an authenticator for its audit endpoints; none is served.
	tok, err := fhirserver.NewToken()
	if err != nil {
		return err
	}
	auth, err := fhirserver.NewStaticTokens(tok)
	if err != nil {
		return err
	}
	node, err := fhirserver.OpenNode(ctx, fhirserver.NodeOptions{Dir: *dataDir, Hospital: *hospital, Suite: *suiteID, Auth: auth})
	if err != nil {
		return err
	}
	defer node.Close()
	stats, err := fhirserver.VerifyIntegrity(ctx, st, node.Protector, func(f fhirserver.IntegrityFinding) {
		fmt.Fprintf(verifyOut.stdout, "%s/%s/_history/%d: %s\n", f.Type, f.ID, f.Version, f.Reason)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(verifyOut.stderr, "phix fhir verify-integrity: %d versions checked, %d deletions, %d bad\n", stats.Versions, stats.Deleted, stats.Bad)
	if stats.Bad > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d stored versions fail their integrity check", stats.Bad)}
	}
	return nil
}
