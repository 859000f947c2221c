package transfer_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"phix/transfer"
)

// TestTusJSClient uploads with the npm tus-js-client 4.3.1, aborting after the
// first chunk and resuming, then finalizes: the hash must match the manifest.
func TestTusJSClient(t *testing.T) {
	modules, _ := filepath.Abs("../interop/node_modules")
	if _, err := os.Stat(filepath.Join(modules, "tus-js-client")); err != nil {
		testenvMissing(t, "interop/node_modules/tus-js-client not installed")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testenvMissing(t, "node not installed")
	}
	e := newEnv(t, "")
	data := randBytes(300_000)
	v := e.create(e.a, e.request(e.a, e.b, map[string][]byte{"scan.enc": data}))
	path := filepath.Join(t.TempDir(), "scan.enc")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "testdata/tus_upload.js", e.ts.URL+v.Files[0].UploadURL, e.a.ID, e.a.Cert, path)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tus-js-client: %v: %s", err, out)
	}
	var res struct{ FirstSent int64 }
	if err := json.Unmarshal(out, &res); err != nil || res.FirstSent <= 0 || res.FirstSent >= int64(len(data)) {
		t.Fatalf("no abort mid-upload: %s", out)
	}
	var done transfer.TransferView
	if code, prob := e.doJSON(e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, &done); code != 200 {
		t.Fatalf("complete after tus-js-client upload: %d %v", code, prob)
	}
}
