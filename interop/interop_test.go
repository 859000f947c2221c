// Package interop drives phix with real third-party clients (npm packages
// in interop/node_modules).
package interop

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"phix/devnet"
	"phix/internal/testenv"
)

// TestFHIRKitClient starts the dev network (phix dev) on free loopback ports
// and runs interop/fhirkit.mjs (fhir-kit-client) against hospital-a.
func TestFHIRKitClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node is not installed")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "fhir-kit-client", "package.json")); err != nil {
		testenv.Missing(t, "interop/node_modules has no fhir-kit-client (run npm ci in interop)")
	}
	// The dev network, as `phix dev` runs it, on free loopback ports; the
	// client learns the URL and token from the files it writes.
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := devnet.Start(ctx, devnet.Options{DataDir: dir, BasePort: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var eps devnet.Endpoints
	data, err := os.ReadFile(filepath.Join(dir, "dev", "endpoints.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &eps); err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "dev", eps.Hospitals[0].ID+".token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))

	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer rcancel()
	cmd := exec.CommandContext(rctx, node, "fhirkit.mjs")
	cmd.Env = append(os.Environ(),
		"PHIX_FHIR_URL="+eps.Hospitals[0].FHIR,
		"PHIX_TOKEN="+token,
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node fhirkit.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("fhir-kit-client run failed: %v", err)
	}
}
