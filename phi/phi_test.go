package phi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"phix/errcode"
	"phix/fhir"
	"phix/kms"
	"phix/phi"
	"phix/phi/policy"
	"phix/suite"
)

func TestSyntheaRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, sid := range []suite.ID{suite.Intl, suite.GM} {
		t.Run(string(sid), func(t *testing.T) {
			e := newEnv(t, sid)
			max := 0
			if sid == suite.GM || testing.Short() {
				max = 3
			}
			n := 0
			for _, b := range synthea(t, max) {
				secrets := []string{}
				for _, r := range b.resources {
					if r.Type == "Patient" {
						secrets = phiStrings(r)
					}
				}
				if len(secrets) < 5 {
					t.Fatalf("patient %s: only %d PHI strings found", b.patientID, len(secrets))
				}
				for _, r := range b.resources {
					want, err := fhir.Canonical(r)
					if err != nil {
						t.Fatal(err)
					}
					stored, entries, err := e.p.Seal(ctx, r, b.patientID)
					if err != nil {
						t.Fatalf("%s/%s: Seal: %v", r.Type, r.ID, err)
					}
					for _, is := range fhir.Validate(stored) {
						if is.Severity == fhir.SeverityFatal || is.Severity == "error" {
							t.Fatalf("%s/%s: stored form invalid: %s %v %s", r.Type, r.ID, is.Code, is.Expression, is.Diagnostics)
						}
					}
					raw, err := fhir.Marshal(stored)
					if err != nil {
						t.Fatal(err)
					}
					ent := []byte(fmt.Sprintf("%+v", entries))
					for i, s := range secrets {
						// Index 0 is the birth date: clinical dates stay clear by
						// design, so the birth encounter may share it.
						if i == 0 && r.Type != "Patient" {
							continue
						}
						if contains(raw, s) || contains(ent, s) {
							t.Fatalf("%s/%s: a PHI value of the patient is stored in clear", r.Type, r.ID)
						}
					}
					// Reparse as the store would and open.
					back, err := fhir.Parse(raw, fhir.ParseOptions{})
					if err != nil {
						t.Fatal(err)
					}
					got, err := e.p.Open(ctx, back)
					if err != nil {
						t.Fatalf("%s/%s: Open: %v", r.Type, r.ID, err)
					}
					gotC, _ := fhir.Canonical(got)
					if !bytes.Equal(gotC, want) || !reflect.DeepEqual(got.Object, r.Object) {
						t.Fatalf("%s/%s: round trip differs", r.Type, r.ID)
					}
					got2, err := e.p.OpenJSON(ctx, raw)
					if err != nil || !reflect.DeepEqual(got2.Object, r.Object) {
						t.Fatalf("%s/%s: OpenJSON: %v", r.Type, r.ID, err)
					}
					n++
				}
			}
			t.Logf("%d resources round-tripped", n)
		})
	}
}

func patient() *fhir.Resource {
	r, err := fhir.Parse([]byte(`{"resourceType":"Patient","id":"p1",
	 "name":[{"family":"陈","given":["小明"]},{"family":"Chen","given":["Xiaoming"]}],
	 "identifier":[{"system":"urn:mrn","value":"MRN-778899"}],
	 "telecom":[{"system":"phone","value":"+86 138-0013-8000"},{"system":"email","value":"Xiaoming.Chen@Example.org"}],
	 "address":[{"line":["88 Nanjing Rd"],"city":"Shanghai","postalCode":"200001","state":"SH","country":"CN"}],
	 "gender":"male","birthDate":"1980-03-05"}`), fhir.ParseOptions{})
	if err != nil {
		panic(err)
	}
	return r
}

func TestTamperingDetected(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, suite.Intl)
	stored, _, err := e.p.Seal(ctx, patient(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := fhir.Marshal(stored)
	tests := []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"clear field", func(b []byte) []byte { return bytes.Replace(b, []byte(`"male"`), []byte(`"female"`), 1) }},
		{"year kept in clear", func(b []byte) []byte { return bytes.Replace(b, []byte(`"1980"`), []byte(`"1981"`), 1) }},
		{"state", func(b []byte) []byte { return bytes.Replace(b, []byte(`"SH"`), []byte(`"BJ"`), 1) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.edit(append([]byte(nil), raw...))
			if bytes.Equal(b, raw) {
				t.Fatal("edit did nothing")
			}
			r, err := fhir.Parse(b, fhir.ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.p.Open(ctx, r); errcode.CodeOf(err) != errcode.HMACVerificationFailed {
				t.Fatalf("Open = %v, want PHI-6005", err)
			}
		})
	}
	// Flip a byte of a sealed value and swap two sealed values; the HMAC is
	// recomputed by an attacker-free path (we bypass it by checking the AEAD
	// layer alone through a re-signed copy is impossible without the key), so
	// both must fail at Verify already.
	r, _ := fhir.Parse(raw, fhir.ParseOptions{})
	names := r.Object["name"].([]any)
	names[0], names[1] = names[1], names[0]
	if _, err := e.p.Open(ctx, r); errcode.CodeOf(err) != errcode.HMACVerificationFailed {
		t.Fatalf("swapped sealed values: %v", err)
	}
	// Moving a sealed value to another resource fails too.
	other := patient()
	other.ID, other.Object["id"] = "p2", "p2"
	st2, _, err := e.p.Seal(ctx, other, "p1")
	if err != nil {
		t.Fatal(err)
	}
	r, _ = fhir.Parse(raw, fhir.ParseOptions{})
	r.Object["name"] = st2.Object["name"]
	if _, err := e.p.Open(ctx, r); err == nil {
		t.Fatal("sealed value from another resource accepted")
	}
}

func TestForgedExtensionsRejected(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, suite.Intl)
	for _, url := range []string{phi.ExtHMAC, phi.ExtMetadata, phi.ExtEncrypted} {
		r := patient()
		r.Object["extension"] = []any{map[string]any{"url": url, "valueString": "forged"}}
		if _, _, err := e.p.Seal(ctx, r, "p1"); errcode.CodeOf(err) != errcode.FHIRValidationFailed {
			t.Errorf("%s: Seal = %v", url, err)
		}
	}
}

func TestMisconfiguredPolicyRefused(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, suite.Intl)
	weak, err := policy.New(policy.File{Version: 1, Datatypes: map[string][]string{"ContactPoint": {"value"}}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := suite.Lookup(suite.Intl)
	p, err := phi.New(phi.Config{KMS: e.m, Hospital: "h", Suite: s, Policy: weak})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = p.Seal(ctx, patient(), "p1")
	if errcode.CodeOf(err) != errcode.PHIEncryptionRequired {
		t.Fatalf("Seal = %v, want PHI-6006", err)
	}
	if contains([]byte(err.Error()), "Chen") || contains([]byte(err.Error()), "陈") {
		t.Fatal("error carries PHI")
	}
}

func TestErasure(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, suite.Intl)
	stored, _, err := e.p.Seal(ctx, patient(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Open(ctx, stored); err != nil {
		t.Fatal(err)
	}
	if err := e.m.DestroyDataKey(ctx, "h", kms.KindPatient, "p1"); err != nil {
		t.Fatal(err)
	}
	e.p.Forget("p1")
	if _, err := e.p.Open(ctx, stored); !errors.Is(err, phi.ErrKeyDestroyed) {
		t.Fatalf("Open after erasure = %v", err)
	}
}

func TestTypeNotAllowed(t *testing.T) {
	e := newEnv(t, suite.Intl)
	for _, src := range []string{`{"resourceType":"Bundle","id":"b","type":"collection"}`, `{"resourceType":"Binary","id":"b","contentType":"text/plain"}`} {
		r, err := fhir.Parse([]byte(src), fhir.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.p.Seal(context.Background(), r, "p1"); errcode.CodeOf(err) != errcode.ResourceTypeNotAllowed {
			t.Errorf("%s: %v", r.Type, err)
		}
	}
}

func TestHMACKeyRotation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, suite.Intl)
	old, _, err := e.p.Seal(ctx, patient(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	for _, pu := range []kms.Purpose{kms.PurposeHMAC, kms.PurposeData} {
		if _, err := e.m.Rotate(ctx, kms.KEKID("h", pu)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.ResumeRotation(ctx, kms.KEKID("h", pu), kms.RotateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.p.Forget("p1")
	if _, err := e.p.Open(ctx, old); err != nil {
		t.Fatalf("resource sealed before rotation: %v", err)
	}
	fresh, _, err := e.p.Seal(ctx, patient(), "p1")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := fhir.Marshal(fresh)
	if !bytes.Contains(raw, []byte(`hmac#2"`)) {
		t.Fatalf("new seal not under HMAC KEK version 2: %s", raw[bytes.Index(raw, []byte("key-id")):][:80])
	}
	if _, err := e.p.Open(ctx, fresh); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentSealOpen(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, suite.Intl)
	const workers, each = 8, 10
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			for i := 0; i < each; i++ {
				r := patient()
				id := fmt.Sprintf("p%d-%d", w, i)
				r.ID, r.Object["id"] = id, id
				st, _, err := e.p.Seal(ctx, r, fmt.Sprintf("pat%d", i%3))
				if err == nil {
					_, err = e.p.Open(ctx, st)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}(w)
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
