package gateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"phix/devnet"
	"phix/gateway"
)

// net starts a dev network in dir (embedded mode unless opts says
// otherwise) with background receiving off: tests drive ReceiveOnce.
func startNet(t *testing.T, opts devnet.Options) *devnet.Network {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	opts.BasePort = -1
	opts.NoAutoReceive = true
	n, err := devnet.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func fhirGet(t *testing.T, h devnet.Hospital, rel string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", h.FHIR+"/"+rel, nil)
	req.Header.Set("Authorization", "Bearer "+h.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var obj map[string]any
	if err := json.NewDecoder(res.Body).Decode(&obj); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", rel, res.StatusCode, obj)
	}
	return obj
}

func fhirRaw(t *testing.T, h devnet.Hospital, rel string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", h.FHIR+"/"+rel, nil)
	req.Header.Set("Authorization", "Bearer "+h.Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return b
}

// randomFile writes n random bytes with a PDF header.
func randomFile(t *testing.T, dir, name string, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	copy(b, "%PDF-1.7\n")
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitJob polls the sender's status until it leaves uploading.
func waitJob(t *testing.T, g *gateway.Gateway, id string, want string) gateway.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var st gateway.Status
	for time.Now().Before(deadline) {
		var err error
		st, err = g.Status(httptestRequest(), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status == want {
			return st
		}
		if st.Status != gateway.JobUploading && st.Status != gateway.JobSent {
			t.Fatalf("transfer %s: %s (%s %s), want %s", id, st.Status, st.Code, st.Error, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("transfer %s did not reach %s: %+v", id, want, st)
	return gateway.Status{}
}

func httptestRequest() *http.Request {
	r, _ := http.NewRequest("GET", "/", nil)
	return r
}

// receiveUntil runs the receiver's inbox until it handled transfer id.
func receiveUntil(t *testing.T, g *gateway.Gateway, id string) *gateway.Inbound {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		recs, err := g.ReceiveOnce(context.Background(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.ID == id {
				return r
			}
		}
	}
	t.Fatalf("transfer %s never arrived", id)
	return nil
}

var _ = errors.New
var _ = bytes.NewReader

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
