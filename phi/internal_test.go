package phi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"path/filepath"
	"testing"

	"phix/errcode"
	"phix/fhir"
	"phix/fhir/search"
	"phix/kms"
	"phix/kms/keyring"
	"phix/kms/sqlstore"
	"phix/suite"
	"time"
)

func newProtector(t *testing.T) *Protector {
	t.Helper()
	ctx := context.Background()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	master, _ := keyring.MasterKey(raw)
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "k.db"))
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
	if _, err := m.InitHospital(ctx, "h", "intl"); err != nil {
		t.Fatal(err)
	}
	s, _ := suite.Lookup(suite.Intl)
	p, err := New(Config{KMS: m, Hospital: "h", Suite: s})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// resign replaces the HMAC as an attacker holding the HMAC key (but not the
// data key) could, to test that the AEAD layer alone rejects moved or
// altered ciphertexts.
func resign(t *testing.T, p *Protector, r *fhir.Resource) {
	t.Helper()
	exts := r.Object["extension"].([]any)
	var kept []any
	for _, e := range exts {
		if e.(map[string]any)["url"] != ExtHMAC {
			kept = append(kept, e)
		}
	}
	r.Object["extension"] = kept
	if err := p.sign(context.Background(), r, "p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(context.Background(), r); err != nil {
		t.Fatalf("re-signed resource does not verify: %v", err)
	}
}

func TestAEADBindsElement(t *testing.T) {
	ctx := context.Background()
	p := newProtector(t)
	src := `{"resourceType":"Patient","id":"p1","name":[{"family":"Alpha"},{"family":"Beta"}],
	 "telecom":[{"system":"phone","value":"555-0101"}],"birthDate":"1980-03-05"}`
	seal := func() *fhir.Resource {
		r, err := fhir.Parse([]byte(src), fhir.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st, _, err := p.Seal(ctx, r, "p1")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	ctOf := func(v any) map[string]any {
		return v.(map[string]any)["extension"].([]any)[0].(map[string]any)
	}
	tests := []struct {
		name string
		edit func(r *fhir.Resource)
	}{
		{"swap names", func(r *fhir.Resource) {
			n := r.Object["name"].([]any)
			n[0], n[1] = n[1], n[0]
		}},
		{"move family to telecom value", func(r *fhir.Resource) {
			n := r.Object["name"].([]any)[0].(map[string]any)
			tc := r.Object["telecom"].([]any)[0].(map[string]any)
			tc["_value"] = n["_family"]
		}},
		{"flip a ciphertext byte", func(r *fhir.Resource) {
			e := ctOf(r.Object["_birthDate"])
			b, _ := base64.StdEncoding.DecodeString(e["valueBase64Binary"].(string))
			b[len(b)-5] ^= 1
			e["valueBase64Binary"] = base64.StdEncoding.EncodeToString(b)
		}},
		{"truncate a ciphertext", func(r *fhir.Resource) {
			ctOf(r.Object["_birthDate"])["valueBase64Binary"] = "UAEB"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := seal()
			tc.edit(r)
			resign(t, p, r)
			if _, err := p.Open(ctx, r); errcode.CodeOf(err) != errcode.HMACVerificationFailed {
				t.Fatalf("Open = %v, want PHI-6005", err)
			}
		})
	}
	// Control: re-signing alone does not break Open.
	r := seal()
	resign(t, p, r)
	if _, err := p.Open(ctx, r); err != nil {
		t.Fatal(err)
	}
}

func TestCoverRange(t *testing.T) {
	p := newProtector(t)
	_ = p
	tests := []struct {
		lo, hi string
		want   []string
	}{
		{"1980-01-01", "1980-12-31", []string{"1980"}},
		{"1980-03-01", "1980-03-31", []string{"1980-03"}},
		{"1980-03-05", "1980-03-05", []string{"1980-03-05"}},
		{"1980-12-30", "1982-02-01", []string{"1980-12-30", "1980-12-31", "1981", "1982-01", "1982-02-01"}},
	}
	for _, tc := range tests {
		v := searchValue(tc.lo, tc.hi)
		got, err := coverRange(v, p.cfg.Now())
		if err != nil || len(got) != len(tc.want) {
			t.Fatalf("coverRange(%s..%s) = %v, %v", tc.lo, tc.hi, got, err)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("coverRange(%s..%s) = %v", tc.lo, tc.hi, got)
			}
		}
	}
}

func searchValue(lo, hi string) search.Value {
	l, _ := time.Parse("2006-01-02", lo)
	h, _ := time.Parse("2006-01-02", hi)
	return search.Value{Prefix: search.PrefixEq, Lo: l, Hi: h.Add(24*time.Hour - time.Nanosecond)}
}

func TestNormToken(t *testing.T) {
	cases := []struct{ param, in, want string }{
		{"identifier", " Cond-One ", "Cond-One"},
		{"identifier", "Cond-Two", "Cond-Two"}, // identifiers never collapse to digits
		{"phone", "+1 (555) 010-2000", "15550102000"},
		{"telecom", "Ann@Example.ORG", "ann@example.org"},
		{"telecom", "https://example.org/ann", "https://example.org/ann"},
		{"telecom", "pager-x", "pager-x"},
	}
	for _, c := range cases {
		if got := normToken(c.param, c.in); got != c.want {
			t.Errorf("normToken(%s, %q) = %q, want %q", c.param, c.in, got, c.want)
		}
	}
}

// TestOpenVerified: decrypting after a Verify gives what OpenJSON gives;
// a wrong owner's key does not open the sealed values.
func TestOpenVerified(t *testing.T) {
	ctx := context.Background()
	p := newProtector(t)
	r, err := fhir.Parse([]byte(`{"resourceType":"Patient","id":"v1","name":[{"family":"Verified"}],"birthDate":"1990-02-03"}`), fhir.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sealed, _, err := p.Seal(ctx, r, "v1")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := fhir.Marshal(sealed)
	want, err := p.OpenJSON(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := fhir.Marshal(want)
	s2, _ := fhir.Parse(raw, fhir.ParseOptions{})
	owner, err := p.Verify(ctx, s2)
	if err != nil || owner != "v1" {
		t.Fatalf("verify: %q %v", owner, err)
	}
	got, err := p.OpenVerified(ctx, s2, owner)
	if err != nil {
		t.Fatal(err)
	}
	if gotJSON, _ := fhir.Marshal(got); string(gotJSON) != string(wantJSON) {
		t.Fatalf("OpenVerified %s, OpenJSON %s", gotJSON, wantJSON)
	}
	if _, err := p.fieldKey(ctx, "other", true); err != nil {
		t.Fatal(err)
	}
	s3, _ := fhir.Parse(raw, fhir.ParseOptions{})
	if _, err := p.OpenVerified(ctx, s3, "other"); errcode.CodeOf(err) != errcode.HMACVerificationFailed {
		t.Fatalf("another owner's key opened the values: %v", err)
	}
}
