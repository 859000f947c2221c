package transfer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"phix/audit"
	"phix/audit/auditsqlite"
	"phix/suite"
	"phix/transfer"
)

// FuzzRequest feeds arbitrary bodies to request parsing and validation: no
// panic, and an accepted request has only plain file names.
func FuzzRequest(f *testing.F) {
	f.Add([]byte(`{"patient":"pseud-0001","consent_id":"c1","consent_proof":{"statement":"e30=","signature":"AA=="},"purpose":"TREAT","data_class":"clinical","retention_until":"2030-01-01T00:00:00Z","receiver":"hospital-b","files":[{"name":"a.bin","size":1,"hash_alg":"sha256","hash":"` + string(bytes.Repeat([]byte("ab"), 32)) + `"}],"signature":"AA=="}`))
	f.Add([]byte(`{"files":[{"name":"../x"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r transfer.Request
		if json.Unmarshal(body, &r) != nil {
			return
		}
		if r.Validate() == nil {
			for _, fs := range r.Files {
				if transfer.ValidateFileName(fs.Name) != nil {
					t.Fatalf("accepted file name %q", fs.Name)
				}
			}
			_ = transfer.CanonicalManifest("hospital-a", &r)
		}
	})
}

// FuzzFileName checks the file-name rule never lets a separator or a
// traversal through.
func FuzzFileName(f *testing.F) {
	for _, s := range []string{"a.bin", "..", "../a", "a/b", `a\b`, "", ".x", "名字.dcm"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if transfer.ValidateFileName(name) == nil {
			if name == "" || name == ".." || bytes.ContainsAny([]byte(name), "/\\\x00") || filepath.Base(name) != name {
				t.Fatalf("accepted %q", name)
			}
		}
	})
}

// TestRealAuditLog runs a denial and a permit through the real audit.Log (SQLite).
func TestRealAuditLog(t *testing.T) {
	ctx := context.Background()
	b, err := auditsqlite.Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := suite.Lookup(suite.Intl)
	k, _ := s.GenerateSigningKey()
	l, err := audit.Open(ctx, b, audit.Options{Origin: "test.phix/audit", Signer: k})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e := newEnv(t, "", func(c *transfer.Config) { c.Auditor = l })
	req := e.request(e.a, e.c, map[string][]byte{"a.bin": []byte("x")})
	if code, _ := e.doJSON(e.a, "POST", "/v1/transfers", req, nil); code != 403 {
		t.Fatalf("cross-border: %d", code)
	}
	e.create(e.a, e.request(e.a, e.b, map[string][]byte{"a.bin": []byte("x")}))
	// 3 registrations + deny + permit.
	if n := l.Size(); n < 5 {
		t.Fatalf("audit log has %d events", n)
	}
}
