package devnet

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func get(t *testing.T, url, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	var obj map[string]any
	_ = json.Unmarshal(data, &obj)
	return res.StatusCode, obj
}

func readEndpoints(t *testing.T, dir string) Endpoints {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "dev", "endpoints.json"))
	if err != nil {
		t.Fatal(err)
	}
	var eps Endpoints
	if err := json.Unmarshal(data, &eps); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	_ = json.Unmarshal(data, &raw)
	if _, ok := raw["coordinator"]; !ok {
		t.Fatal("endpoints.json has no coordinator key")
	}
	return eps
}

// TestRestartKeepsDataAndTokens starts the network, writes, stops it, starts
// it again on the same directory and finds the data, with fresh tokens.
func TestRestartKeepsDataAndTokens(t *testing.T) {
	dir := t.TempDir()
	n, err := Start(context.Background(), Options{DataDir: dir, BasePort: -1})
	if err != nil {
		t.Fatal(err)
	}
	eps := readEndpoints(t, dir)
	if !strings.HasPrefix(eps.Coordinator, "https://127.0.0.1:") || eps.Demo == nil || !strings.HasPrefix(eps.Demo.Patient, "Patient/") ||
		!strings.HasPrefix(eps.Demo.Consent, "Consent/") || eps.Demo.From != "hospital-a" || eps.Demo.To != "hospital-b" {
		t.Fatalf("endpoints coordinator/demo: %+v", eps)
	}
	for _, h := range eps.Hospitals {
		if !strings.HasPrefix(h.Gateway, "http://127.0.0.1:") {
			t.Fatalf("gateway URL %q", h.Gateway)
		}
	}
	if len(eps.Hospitals) != 2 || eps.Hospitals[0].ID != "hospital-a" || eps.Hospitals[1].ID != "hospital-b" {
		t.Fatalf("endpoints: %+v", eps)
	}
	tokens := map[string]string{}
	for _, h := range eps.Hospitals {
		if !strings.HasPrefix(h.FHIR, "http://127.0.0.1:") || !strings.HasSuffix(h.FHIR, "/fhir/r4") {
			t.Fatalf("fhir URL %q", h.FHIR)
		}
		path := filepath.Join(dir, "dev", h.ID+".token")
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v", path, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(path)
		tokens[h.ID] = strings.TrimSpace(string(b))
		if strings.Count(tokens[h.ID], ".") != 2 {
			t.Fatal("token file does not hold a JWT from the hospital's authorization server")
		}
		// 401 without the token, demo data with it.
		if st, obj := get(t, h.FHIR+"/Patient", ""); st != 401 || obj["resourceType"] != "OperationOutcome" {
			t.Fatalf("no token: %d %v", st, obj)
		}
		want := 2.0
		if h.ID == "hospital-a" {
			want = 4 // and the two Synthea demo patients
		}
		if st, obj := get(t, h.FHIR+"/Patient?_summary=count", tokens[h.ID]); st != 200 || obj["total"].(float64) != want {
			t.Fatalf("seeded patients: %d %v", st, obj)
		}
	}
	if tokens["hospital-a"] == tokens["hospital-b"] {
		t.Fatal("hospitals share a token")
	}
	// hospital-a's token does not open hospital-b.
	if st, _ := get(t, eps.Hospitals[1].FHIR+"/Patient", tokens["hospital-a"]); st != 401 {
		t.Fatalf("cross-hospital token: %d", st)
	}
	// write something, then restart.
	req, _ := http.NewRequest("PUT", eps.Hospitals[0].FHIR+"/Patient/restart-1", strings.NewReader(`{"resourceType":"Patient","id":"restart-1","active":true}`))
	req.Header.Set("Authorization", "Bearer "+tokens["hospital-a"])
	req.Header.Set("Content-Type", "application/fhir+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("put: %v %v", err, res)
	}
	res.Body.Close()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(eps.Hospitals[0].FHIR + "/metadata"); err == nil {
		t.Fatal("server still answers after Close")
	}

	n2, err := Start(context.Background(), Options{DataDir: dir, BasePort: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	for _, h := range n2.Hospitals {
		// Tokens are short-lived (300 s): the restart wrote fresh ones.
		b, _ := os.ReadFile(filepath.Join(dir, "dev", h.ID+".token"))
		if h.Token != strings.TrimSpace(string(b)) {
			t.Fatalf("%s token file not rewritten at restart", h.ID)
		}
		tokens[h.ID] = h.Token
		if h.Seeded {
			t.Fatalf("%s seeded again", h.ID)
		}
	}
	eps2 := readEndpoints(t, dir)
	if eps2.Demo == nil || *eps2.Demo != *eps.Demo {
		t.Fatalf("demo changed across restart: %+v", eps2.Demo)
	}
	if st, obj := get(t, eps2.Hospitals[0].FHIR+"/Patient/restart-1", tokens["hospital-a"]); st != 200 || obj["active"] != true {
		t.Fatalf("data lost across restart: %d %v", st, obj)
	}
	if st, obj := get(t, eps2.Hospitals[0].FHIR+"/Patient?_summary=count", tokens["hospital-a"]); st != 200 || obj["total"].(float64) != 5 {
		t.Fatalf("after restart: %d %v", st, obj)
	}
}

// TestStopsOnContextCancel is what SIGINT/SIGTERM do in phix dev.
func TestStopsOnContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n, err := Start(ctx, Options{DataDir: t.TempDir(), BasePort: -1, NoSeed: true})
	if err != nil {
		t.Fatal(err)
	}
	url := n.Hospitals[0].FHIR + "/metadata"
	if st, _ := get(t, url, ""); st != 200 {
		t.Fatalf("metadata %d", st)
	}
	cancel()
	if err := n.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(url); err == nil {
		t.Fatal("still serving after cancel")
	}
}
