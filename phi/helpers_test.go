package phi_test

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"phix/fhir"
	"phix/internal/testenv"
	"phix/kms"
	"phix/kms/keyring"
	"phix/kms/sqlstore"
	"phix/phi"
	"phix/suite"
)

type env struct {
	m *kms.Manager
	p *phi.Protector
}

func newEnv(t testing.TB, sid suite.ID) *env {
	t.Helper()
	ctx := context.Background()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	master, err := keyring.MasterKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "keyring.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	be, err := keyring.Open(ctx, st, master, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := kms.Open(ctx, kms.Config{Store: st, Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.InitHospital(ctx, "h", string(sid)); err != nil {
		t.Fatal(err)
	}
	s, err := suite.Lookup(sid)
	if err != nil {
		t.Fatal(err)
	}
	p, err := phi.New(phi.Config{KMS: m, Hospital: "h", Suite: s})
	if err != nil {
		t.Fatal(err)
	}
	return &env{m: m, p: p}
}

// bundle is one Synthea patient's resources.
type bundle struct {
	patientID string
	resources []*fhir.Resource
}

func synthea(t testing.TB, max int) []bundle {
	t.Helper()
	dir := testenv.Shared(t, "testdata", "synthea")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	if max > 0 && len(files) > max {
		files = files[:max]
	}
	var out []bundle
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := fhir.Parse(data, fhir.ParseOptions{})
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		var bu bundle
		entries, _ := b.Object["entry"].([]any)
		for _, e := range entries {
			em, _ := e.(map[string]any)
			ro, _ := em["resource"].(map[string]any)
			if ro == nil {
				continue
			}
			rt, _ := ro["resourceType"].(string)
			id, _ := ro["id"].(string)
			if id == "" {
				continue
			}
			if rt == "Patient" {
				bu.patientID = id
			}
			bu.resources = append(bu.resources, &fhir.Resource{Type: rt, ID: id, Object: ro})
		}
		if bu.patientID == "" {
			continue
		}
		out = append(out, bu)
	}
	return out
}

// phiStrings lists the PHI values of a Synthea Patient that must never be
// stored in clear.
func phiStrings(r *fhir.Resource) []string {
	var out []string
	add := func(s string) {
		if len(s) >= 4 && s != "null" {
			out = append(out, s)
		}
	}
	o := r.Object
	if bd, ok := o["birthDate"].(string); ok {
		add(bd)
	}
	for _, n := range list(o["name"]) {
		add(str(n["family"]))
		for _, g := range anyList(n["given"]) {
			add(str(g))
		}
	}
	for _, id := range list(o["identifier"]) {
		add(str(id["value"]))
	}
	for _, c := range list(o["telecom"]) {
		add(str(c["value"]))
	}
	for _, a := range list(o["address"]) {
		add(str(a["city"]))
		add(str(a["postalCode"]))
		for _, l := range anyList(a["line"]) {
			add(str(l))
		}
	}
	return out
}

func str(v any) string { s, _ := v.(string); return s }

func anyList(v any) []any { l, _ := v.([]any); return l }

func list(v any) []map[string]any {
	var out []map[string]any
	for _, e := range anyList(v) {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// contains reports whether needle occurs in hay as a whole word: not inside a
// longer run of base64/hex characters, where short numeric values (postal
// codes) turn up by chance in ciphertexts and tokens.
func contains(hay []byte, needle string) bool {
	h := string(hay)
	for i := 0; ; {
		j := strings.Index(h[i:], needle)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(needle)
		if (j == 0 || !isB64(h[j-1])) && (end == len(h) || !isB64(h[end])) {
			return true
		}
		i = j + 1
	}
}

func isB64(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
}
