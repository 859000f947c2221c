package nodeauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"phix/auth/authserver"
	"phix/fhirserver"
)

// TokenRefresh is how often token files are rewritten: tokens live
// authserver.MaxTokenLifetime (300 s), so a file read at any time holds a
// token valid for at least another minute.
const TokenRefresh = authserver.MaxTokenLifetime - 60*time.Second

// TokenFile is a file that holds a service client's current token (for
// local tools: phix transfer, curl).
type TokenFile struct {
	Client *ServiceClient
	Path   string
}

// RefreshTokenFiles fetches a fresh token for every file's client through
// the token endpoint and writes the files atomically (0600). It returns the
// tokens in order.
func RefreshTokenFiles(ctx context.Context, files []TokenFile) ([]string, error) {
	var out []string
	for _, f := range files {
		tok, err := f.Client.Fresh(ctx)
		if err != nil {
			return nil, fmt.Errorf("token for %s: %w", f.Client.ID, err)
		}
		if err := WriteSecretFile(f.Path, tok+"\n"); err != nil {
			return nil, err
		}
		out = append(out, tok)
	}
	return out, nil
}

// KeepTokenFilesFresh rewrites the files every TokenRefresh until ctx ends;
// onNew, if set, gets each new set of tokens.
func KeepTokenFilesFresh(ctx context.Context, files []TokenFile, onErr func(error), onNew func([]string)) {
	t := time.NewTicker(TokenRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			toks, err := RefreshTokenFiles(ctx, files)
			switch {
			case err != nil && !errors.Is(err, context.Canceled):
				onErr(err)
			case err == nil && onNew != nil:
				onNew(toks)
			}
		}
	}
}

// WriteSecretFile writes a 0600 file atomically (temporary file + rename).
func WriteSecretFile(path, content string) error {
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

// ClientGrants is a standing explicit treatment grant for the named
// machine clients (Client/<id>) to every patient of the node. Persons
// still need a CareTeam or Encounter.
func ClientGrants(ids ...string) func(ctx context.Context, user, patient string) (bool, error) {
	refs := make([]string, len(ids))
	for i, id := range ids {
		refs[i] = "Client/" + id
	}
	return func(_ context.Context, user, _ string) (bool, error) { return slices.Contains(refs, user), nil }
}

// ClinicianOnly admits a request to the gateway's local API when its
// bearer token is valid for a clinician (the clinician-administrator).
func ClinicianOnly(auth fhirserver.Authenticator) func(*http.Request) error {
	return func(r *http.Request) error {
		p, err := auth.Authenticate(r)
		if err != nil {
			return err
		}
		if p.Role != "" && p.Role != fhirserver.RoleClinician {
			return errors.New("nodeauth: the gateway API is for the clinician-administrator")
		}
		return nil
	}
}
