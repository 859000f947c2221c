package devnet

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"phix/consent"
	"phix/fhir"
	"phix/fhirserver"
	"phix/pki"
)

//go:embed testdata/synthea-*.json
var syntheaFS embed.FS

// demo seeds (once) hospital-a with the Synthea demo patients and a signed
// consent for each, permitting disclosure to hospital-b for treatment and
// research; DIR/dev/demo.json remembers them across restarts.
func (n *Network) demo(ctx context.Context, opts Options, devDir string) (*Demo, error) {
	path := filepath.Join(devDir, "demo.json")
	if b, err := os.ReadFile(path); err == nil {
		var d Demo
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, err
		}
		return &d, nil
	}
	if opts.NoSeed {
		return nil, nil
	}
	names, err := syntheaFS.ReadDir("testdata")
	if err != nil {
		return nil, err
	}
	sort.Slice(names, func(i, j int) bool { return names[i].Name() < names[j].Name() })
	var demo *Demo
	for _, e := range names {
		b, err := syntheaFS.ReadFile("testdata/" + e.Name())
		if err != nil {
			return nil, err
		}
		d, err := n.SeedPatient(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("seed %s: %w", e.Name(), err)
		}
		if demo == nil {
			demo = &d
		}
	}
	b, _ := json.MarshalIndent(demo, "", "  ")
	return demo, pki.WriteFileAtomic(path, b, 0o644)
}

// SeedPatient imports a transaction Bundle holding one Patient into
// hospital-a and writes a signed consent for disclosure to hospital-b; it
// returns them as a Demo (tests and benchmarks seed full Synthea records).
func (n *Network) SeedPatient(ctx context.Context, bundle []byte) (Demo, error) {
	a := &n.Hospitals[0]
	resp, err := call(ctx, a.srv, a.Token, http.MethodPost, "", bundle)
	if err != nil {
		return Demo{}, err
	}
	pid := patientFromResponse(resp)
	if pid == "" {
		return Demo{}, fmt.Errorf("no Patient in the response")
	}
	cid, err := n.seedConsent(ctx, a, pid, HospitalIDs[1])
	if err != nil {
		return Demo{}, err
	}
	return Demo{From: a.ID, To: HospitalIDs[1], Patient: "Patient/" + pid, Consent: "Consent/" + cid}, nil
}

func patientFromResponse(b []byte) string {
	var r struct {
		Entry []struct {
			Response struct {
				Location string `json:"location"`
			} `json:"response"`
		} `json:"entry"`
	}
	_ = json.Unmarshal(b, &r)
	for _, e := range r.Entry {
		if rest, ok := strings.CutPrefix(e.Response.Location, "Patient/"); ok {
			id, _, _ := strings.Cut(rest, "/")
			return id
		}
	}
	return ""
}

// seedConsent writes a Consent of patient pid permitting disclosure to
// org, signed with the hospital's signing key (seed 002's
// consent-signature), and returns its id.
func (n *Network) seedConsent(ctx context.Context, h *Hospital, pid, org string) (string, error) {
	now := time.Now().UTC()
	// The id is chosen here: the signature covers it (fhir.Canonical).
	id := "consent-" + pid
	if len(id) > 64 {
		id = id[:64]
	}
	obj := map[string]any{
		"resourceType": "Consent", "id": id, "status": "active",
		"scope":    map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}}},
		"category": []any{map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}}}},
		"patient":  map[string]any{"reference": "Patient/" + pid},
		"dateTime": now.Format(time.RFC3339),
		"policy":   []any{map[string]any{"uri": "urn:phix:policy:inter-hospital-disclosure"}},
		"text": map[string]any{"status": "generated",
			"div": `<div xmlns="http://www.w3.org/1999/xhtml">Consent to disclose the record to ` + org + ` for treatment and research</div>`},
		"provision": map[string]any{
			"type":   "permit",
			"period": map[string]any{"start": now.Add(-24 * time.Hour).Format(time.RFC3339), "end": now.Add(365 * 24 * time.Hour).Format(time.RFC3339)},
			"actor": []any{map[string]any{
				"role":      map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}}},
				"reference": map[string]any{"reference": "Organization/" + org}}},
			"action": []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "disclose"}}}},
			"purpose": []any{
				map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"},
				map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}},
		},
	}
	signed, err := consent.Sign(&fhir.Resource{Type: "Consent", ID: id, Object: obj}, h.keys.Signer, now)
	if err != nil {
		return "", err
	}
	body, err := fhir.Marshal(signed)
	if err != nil {
		return "", err
	}
	if _, err := call(ctx, h.srv, h.Token, http.MethodPut, "/Consent/"+id, body); err != nil {
		return "", fmt.Errorf("seed consent: %w", err)
	}
	return id, nil
}

// SignConsent signs a Consent (FHIR JSON object, id set) with the hospital's
// signing key, as the dev network signs its demo consents: a changed
// consent (a withdrawal) must be signed again before it is stored.
func (h *Hospital) SignConsent(obj map[string]any) (map[string]any, error) {
	id, _ := obj["id"].(string)
	signed, err := consent.Sign(&fhir.Resource{Type: "Consent", ID: id, Object: obj}, h.keys.Signer, time.Now())
	if err != nil {
		return nil, err
	}
	return signed.Object, nil
}

// call runs one request against a FHIR server in-process.
func call(ctx context.Context, srv *fhirserver.Server, token, method, path string, body []byte) ([]byte, error) {
	req := httptest.NewRequestWithContext(ctx, method, fhirserver.BasePath+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/fhir+json")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code >= 300 {
		return nil, fmt.Errorf("status %d: %s", rec.Code, firstLine(rec.Body.String()))
	}
	return rec.Body.Bytes(), nil
}

func firstLine(s string) string {
	if len(s) > 3000 {
		s = s[:3000]
	}
	return s
}
