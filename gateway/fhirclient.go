package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"phix/fhir"
)

// FHIRClient calls the hospital's own FHIR server (the PHI vault) with a
// service token. Errors carry the HTTP status and the OperationOutcome
// codes, never resource content.
type FHIRClient struct {
	Base  string // e.g. http://127.0.0.1:18081/fhir/r4
	Token string
	// TokenSource, when set, gives the token for each call instead of
	// Token (tokens from an authorization server expire).
	TokenSource func(ctx context.Context) (string, error)
	// ConsentTokenSource, when set, gives the token for reading Consent
	// resources (Read("Consent", id)): a client whose scope is only
	// system/Consent.rs, so that verifying a transfer's consent needs no
	// grant to the patient's clinical data.
	ConsentTokenSource func(ctx context.Context) (string, error)
	// Grants, when set, opens and closes per-transfer treatment grants of
	// the gateway's client (auth/nodeauth): the collect and the import run
	// under a grant for the transfer's patient only.
	Grants TransferGrants
	HTTP   *http.Client
}

// TransferGrants opens and closes the time-boxed treatment grants of the
// gateway's client, each for one patient, one transfer and one verified
// consent (nodeauth.ClientTransferGrants).
type TransferGrants interface {
	OpenTransferGrant(ctx context.Context, patient, transfer, consent, purpose, direction string) error
	CloseTransferGrant(ctx context.Context, transfer string) error
}

// OpenGrant opens the transfer grant for patient (direction "outbound"
// for a collect, "inbound" for an import); without Grants it does nothing
// (a standing grant or none).
func (c *FHIRClient) OpenGrant(ctx context.Context, patient, transfer, consent, purpose, direction string) error {
	if c.Grants == nil {
		return nil
	}
	return c.Grants.OpenTransferGrant(ctx, patient, transfer, consent, purpose, direction)
}

// CloseGrant ends the grants of a transfer; without Grants it does nothing.
func (c *FHIRClient) CloseGrant(ctx context.Context, transfer string) error {
	if c.Grants == nil {
		return nil
	}
	return c.Grants.CloseTransferGrant(ctx, transfer)
}

// FHIRError is a failed FHIR call.
type FHIRError struct {
	Status int
	Codes  []string
}

func (e *FHIRError) Error() string {
	return fmt.Sprintf("fhir server: status %d %s", e.Status, strings.Join(e.Codes, ","))
}

func (c *FHIRClient) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	return c.doWith(ctx, c.TokenSource, method, path, body)
}

func (c *FHIRClient) doWith(ctx context.Context, source func(context.Context) (string, error), method, path string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Base, "/")+"/"+strings.TrimLeft(path, "/"), rd)
	if err != nil {
		return nil, err
	}
	tok := c.Token
	if source != nil {
		if tok, err = source(ctx); err != nil {
			return nil, fmt.Errorf("fhir server: no service token: %w", err)
		}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 512<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode >= 300 {
		return nil, &FHIRError{Status: res.StatusCode, Codes: outcomeCodes(b)}
	}
	return b, nil
}

// outcomeCodes reads the issue codes of an OperationOutcome.
func outcomeCodes(b []byte) []string {
	var oo struct {
		Issue []struct {
			Code    string `json:"code"`
			Details struct {
				Coding []struct {
					Code string `json:"code"`
				} `json:"coding"`
			} `json:"details"`
		} `json:"issue"`
	}
	_ = json.Unmarshal(b, &oo)
	var out []string
	for _, i := range oo.Issue {
		for _, c := range i.Details.Coding {
			out = append(out, c.Code)
		}
		if len(i.Details.Coding) == 0 && i.Code != "" {
			out = append(out, i.Code)
		}
	}
	return out
}

// Read reads one resource.
func (c *FHIRClient) Read(ctx context.Context, typ, id string) (*fhir.Resource, error) {
	source := c.TokenSource
	if typ == "Consent" && c.ConsentTokenSource != nil {
		source = c.ConsentTokenSource
	}
	b, err := c.doWith(ctx, source, http.MethodGet, typ+"/"+id, nil)
	if err != nil {
		return nil, err
	}
	return fhir.Parse(b, fhir.ParseOptions{})
}

// Get runs a GET of a relative FHIR URL (a search or an operation such as
// Patient/ID/$everything) that answers a Bundle.
func (c *FHIRClient) Get(ctx context.Context, rel string) (*fhir.Resource, error) {
	b, err := c.do(ctx, http.MethodGet, rel, nil)
	if err != nil {
		return nil, err
	}
	r, err := fhir.Parse(b, fhir.ParseOptions{})
	if err != nil {
		return nil, err
	}
	if r.Type != "Bundle" {
		return nil, fmt.Errorf("fhir server: %s did not answer a Bundle", "query")
	}
	return r, nil
}

// Transaction posts a transaction Bundle and returns the response Bundle.
func (c *FHIRClient) Transaction(ctx context.Context, bundle []byte) (*fhir.Resource, error) {
	b, err := c.do(ctx, http.MethodPost, "", bundle)
	if err != nil {
		return nil, err
	}
	return fhir.Parse(b, fhir.ParseOptions{})
}

// Update puts a resource (create-or-update by id).
func (c *FHIRClient) Update(ctx context.Context, r *fhir.Resource) error {
	b, err := fhir.Marshal(r)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPut, r.Type+"/"+r.ID, b)
	return err
}
