package fhirserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"phix/fhir"
	"phix/kms"
	"phix/kms/keyring"
	"phix/kms/sqlstore"
	"phix/store"
)

// testKeys opens a fresh keyring with one hospital of the given suite.
func testKeys(t testing.TB, suiteID string) *kms.Manager {
	t.Helper()
	ctx := context.Background()
	raw := make([]byte, keyring.MasterKeySize)
	_, _ = rand.Read(raw)
	master, err := keyring.MasterKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "keyring.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	be, err := keyring.Open(ctx, st, master, keyring.Options{Suite: suiteID})
	if err != nil {
		t.Fatal(err)
	}
	m, err := kms.Open(ctx, kms.Config{Store: st, Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.InitHospital(ctx, "hospital-t", suiteID); err != nil {
		t.Fatal(err)
	}
	return m
}

// withSigning turns on $sign/$verify and Provenance with a fresh keyring.
func withSigning(t testing.TB, suiteID string) (func(*Config), *Signing) {
	t.Helper()
	sg, err := NewSigning(context.Background(), testKeys(t, suiteID), "hospital-t")
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.Signing = sg }, sg
}

// verifyResult is a decoded $verify Parameters.
type verifyResult struct {
	valid bool
	count int
	sigs  []map[string]any // each signature's parts by name
	prov  map[string]any
	provT []map[string]any
}

func decodeVerify(t testing.TB, r *resp) verifyResult {
	t.Helper()
	if r.str("resourceType") != "Parameters" {
		t.Fatalf("not a Parameters: %s", r.body)
	}
	var out verifyResult
	for _, p := range asList(r.obj["parameter"]) {
		pm := p.(map[string]any)
		switch pm["name"] {
		case "valid":
			out.valid = pm["valueBoolean"].(bool)
		case "signatures":
			out.count = int(pm["valueInteger"].(float64))
		case "signature":
			m, _ := paramParts(pm["part"])
			out.sigs = append(out.sigs, m)
		case "provenance":
			out.prov, out.provT = paramParts(pm["part"])
		}
	}
	return out
}

// paramParts maps a parameter's parts by name to their value[x]; "target"
// parts (which repeat) are returned as a list.
func paramParts(v any) (map[string]any, []map[string]any) {
	m := map[string]any{}
	var targets []map[string]any
	for _, p := range asList(v) {
		pm := p.(map[string]any)
		name := pm["name"].(string)
		if name == "target" {
			tm, _ := paramParts(pm["part"])
			targets = append(targets, tm)
			continue
		}
		for k, x := range pm {
			if strings.HasPrefix(k, "value") {
				m[name] = x
			}
		}
	}
	return m, targets
}

// TestSignVerify: $sign adds a signature extension and a version; $verify
// reports it valid with signer, key and time; co-signing adds a second; a
// tampered row makes both invalid; both suites.
func TestSignVerify(t *testing.T) {
	for _, sid := range []string{"intl", "gm"} {
		t.Run(sid, func(t *testing.T) {
			mod, sg := withSigning(t, sid)
			e := newEnv(t, openSQLite(t), mod, noProtect) // signatures alone: a database edit must reach $verify
			p := patient("Signee", "Sam")
			p["meta"] = map[string]any{"security": []any{map[string]any{"system": fhir.SystemConfidentiality, "code": "R"}}}
			id := e.do("POST", "/Patient", p).want(t, 201).str("id")

			// Nothing signed yet.
			v := decodeVerify(t, e.do("GET", "/Patient/"+id+"/$verify", nil).want(t, 200))
			if v.valid || v.count != 0 {
				t.Fatalf("unsigned resource: %+v", v)
			}

			signed := e.do("POST", "/Patient/"+id+"/$sign", nil).want(t, 200)
			if signed.str("meta", "versionId") != "2" {
				t.Fatalf("$sign wrote version %q", signed.str("meta", "versionId"))
			}
			wantURL := ExtMLDSASignature
			if sid == "gm" {
				wantURL = ExtSM2Signature
			}
			res, err := fhir.Parse(signed.body, fhir.ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if issues := fhir.Validate(res); hasErrors(issues) {
				t.Fatalf("signed resource does not validate: %+v", issues)
			}
			sigs := signatures(res)
			if len(sigs) != 1 || sigs[0].(map[string]any)["url"] != wantURL {
				t.Fatalf("signature extension: %s", signed.body)
			}
			v = decodeVerify(t, e.do("POST", "/Patient/"+id+"/$verify", nil).want(t, 200))
			k, _, _ := sg.signer(context.Background())
			if !v.valid || v.count != 1 || v.sigs[0]["status"] != "valid" || v.sigs[0]["signer"] != "static-token-1" ||
				v.sigs[0]["key-id"] != k.KeyID() || v.sigs[0]["algorithm"] != k.Algorithm() || v.sigs[0]["time"] == nil ||
				v.sigs[0]["organization"] != "hospital-t" || v.sigs[0]["key-version"] != float64(1) {
				t.Fatalf("verify: %+v", v)
			}

			// Co-signing: If-Match pins the reviewed version.
			e.do("POST", "/Patient/"+id+"/$sign", nil, "If-Match", `W/"1"`).want(t, 412)
			e.do("POST", "/Patient/"+id+"/$sign", nil, "If-Match", `W/"2"`).want(t, 200)
			v = decodeVerify(t, e.do("GET", "/Patient/"+id+"/$verify", nil).want(t, 200))
			if !v.valid || v.count != 2 || v.sigs[1]["status"] != "valid" {
				t.Fatalf("co-signed: %+v", v)
			}
			// The first version still verifies (nothing to verify) and v2 has one signature.
			v2 := decodeVerify(t, e.do("GET", "/Patient/"+id+"/_history/2/$verify", nil).want(t, 200))
			if !v2.valid || v2.count != 1 {
				t.Fatalf("vread verify: %+v", v2)
			}

			// Tamper with the stored row (as a database writer would): the
			// content no longer matches either signature.
			tamper(t, e.store, "Patient", id, func(obj map[string]any) {
				obj["gender"] = "male"
			})
			v = decodeVerify(t, e.do("GET", "/Patient/"+id+"/$verify", nil).want(t, 200))
			if v.valid || v.sigs[0]["status"] != "invalid" || v.sigs[1]["status"] != "invalid" {
				t.Fatalf("tampered: %+v", v)
			}
			// Changing the security label is tampering too (meta.security is covered).
			tamper(t, e.store, "Patient", id, func(obj map[string]any) {
				obj["gender"] = "female"
				obj["meta"].(map[string]any)["security"] = []any{map[string]any{"system": fhir.SystemConfidentiality, "code": "N"}}
			})
			v = decodeVerify(t, e.do("GET", "/Patient/"+id+"/$verify", nil).want(t, 200))
			if v.valid || v.sigs[0]["status"] != "invalid" {
				t.Fatalf("relabelled: %+v", v)
			}
			// But versionId and lastUpdated are not covered.
			tamper(t, e.store, "Patient", id, func(obj map[string]any) {
				obj["meta"].(map[string]any)["security"] = []any{map[string]any{"system": fhir.SystemConfidentiality, "code": "R"}}
				obj["meta"].(map[string]any)["lastUpdated"] = "2001-01-01T00:00:00Z"
			})
			v = decodeVerify(t, e.do("GET", "/Patient/"+id+"/$verify", nil).want(t, 200))
			if !v.valid {
				t.Fatalf("meta.lastUpdated should not be covered: %+v", v)
			}
		})
	}
}

// tamper rewrites the current stored version of typ/id in place through the
// store (a new row with the same version number is not possible, so it
// writes the next version with the edited body, bypassing the server).
func tamper(t testing.TB, st store.Store, typ, id string, edit func(map[string]any)) {
	t.Helper()
	ctx := context.Background()
	err := st.Tx(ctx, func(tx store.Tx) error {
		cur, err := tx.Read(ctx, typ, id)
		if err != nil {
			return err
		}
		var obj map[string]any
		if err := json.Unmarshal(cur.Body, &obj); err != nil {
			return err
		}
		edit(obj)
		obj["meta"].(map[string]any)["versionId"] = strconv.FormatInt(cur.Version+1, 10)
		body, _ := json.Marshal(obj)
		_, err = tx.Put(ctx, &store.Write{Type: typ, ID: id, Body: body, Method: http.MethodPut, LastUpdated: cur.LastUpdated, Version: cur.Version + 1})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSignatureForgery: signature extensions a client sends on ordinary
// writes are stripped; an unknown key and a malformed extension are
// reported as such when they reach storage some other way.
func TestSignatureForgery(t *testing.T) {
	mod, _ := withSigning(t, "intl")
	e := newEnv(t, openSQLite(t), mod, noProtect) // signatures alone: a database edit must reach $verify
	id := e.do("POST", "/Patient", patient("Forge", "Fay")).want(t, 201).str("id")
	signed := e.do("POST", "/Patient/"+id+"/$sign", nil).want(t, 200)

	// A client copies the genuine signature onto an update (same content
	// even): it is stripped, so nothing passes as signed.
	var body map[string]any
	if err := json.Unmarshal(signed.body, &body); err != nil {
		t.Fatal(err)
	}
	got := e.do("PUT", "/Patient/"+id, body).want(t, 200)
	if strings.Contains(string(got.body), ExtMLDSASignature) {
		t.Fatalf("client signature kept on update: %s", got.body)
	}
	// Also on create and in a transaction.
	body["id"] = "forged-1"
	created := e.do("POST", "/Patient", body).want(t, 201)
	if strings.Contains(string(created.body), ExtMLDSASignature) {
		t.Fatal("client signature kept on create")
	}
	tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"resource": body, "request": map[string]any{"method": "PUT", "url": "Patient/forged-2"}},
	}}
	body["id"] = "forged-2"
	e.do("POST", "", tx).want(t, 200)
	rd := e.do("GET", "/Patient/forged-2", nil).want(t, 200)
	if strings.Contains(string(rd.body), ExtMLDSASignature) {
		t.Fatal("client signature kept in a transaction")
	}

	// Stored some other way (an import, a database writer): an extension
	// naming an unknown key, a malformed one, and a bad signature by a real key id.
	sigExt := findExt(t, signed.body, ExtMLDSASignature)
	unknown := cloneJSON(t, sigExt)
	setSub(unknown, "key-id", "valueString", "00112233445566778899aabbccddeeff")
	badSig := cloneJSON(t, sigExt)
	setSub(badSig, "signature", "valueBase64Binary", base64.StdEncoding.EncodeToString([]byte("not a signature")))
	malformed := map[string]any{"url": ExtMLDSASignature, "extension": []any{map[string]any{"url": "algorithm", "valueString": "ML-DSA-87"}}}
	tamper(t, e.store, "Patient", id, func(obj map[string]any) {
		obj["extension"] = append(asList(obj["extension"]), sigExt, unknown, badSig, malformed)
	})
	v := decodeVerify(t, e.do("GET", "/Patient/"+id+"/$verify", nil).want(t, 200))
	want := []string{"valid", "unknown-key", "invalid", "malformed"}
	if v.valid || v.count != 4 {
		t.Fatalf("verify: %+v", v)
	}
	for i, w := range want {
		if v.sigs[i]["status"] != w {
			t.Fatalf("signature %d: status %v, want %s", i, v.sigs[i]["status"], w)
		}
	}

	// Bad requests.
	e.do("POST", "/Patient/nope/$sign", nil).want(t, 404)
	e.do("POST", "/Patient/"+id+"/$sign", map[string]any{"resourceType": "Parameters", "parameter": []any{map[string]any{"name": "x", "valueString": "y"}}}).want(t, 400)
	e.do("POST", "/Patient/"+id+"/$sign", map[string]any{"resourceType": "Patient"}).want(t, 400)
	e.do("GET", "/Patient/"+id+"/$sign", nil).want(t, 405)
	e.do("DELETE", "/Patient/"+id, nil)
	e.do("POST", "/Patient/"+id+"/$sign", nil).want(t, 410)
	e.do("GET", "/Patient/"+id+"/$verify", nil).want(t, 410)

	// Without keys the operations are not offered.
	plain := newEnv(t, openSQLite(t))
	pid := plain.do("POST", "/Patient", patient("No", "Keys")).want(t, 201).str("id")
	plain.do("POST", "/Patient/"+pid+"/$sign", nil).want(t, 501)
	plain.do("GET", "/Patient/"+pid+"/$verify", nil).want(t, 501)
}

func findExt(t testing.TB, body []byte, url string) map[string]any {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatal(err)
	}
	for _, e := range asList(obj["extension"]) {
		if m := e.(map[string]any); m["url"] == url {
			return m
		}
	}
	t.Fatalf("no extension %s", url)
	return nil
}

func cloneJSON(t testing.TB, v map[string]any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(v)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func setSub(ext map[string]any, url, key, v string) {
	for _, s := range asList(ext["extension"]) {
		if m := s.(map[string]any); m["url"] == url {
			m[key] = v
		}
	}
}

// TestSignatureMessage: the signed message binds every field, so changing
// any of signer, key, time or content breaks the signature.
func TestSignatureMessage(t *testing.T) {
	_, sg := withSigning(t, "intl")
	r, err := fhir.Parse([]byte(`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"}}`), fhir.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	si, err := sg.signOne(ctx, r, &Principal{Subject: "dr-a"})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := signableCanonical(r)
	if st, _, _ := sg.check(ctx, si, si.message(c)); st != sigValid {
		t.Fatalf("fresh signature: %s", st)
	}
	for name, mut := range map[string]func(*signatureInfo){
		"signer": func(s *signatureInfo) { s.Signer = "dr-b" },
		"time":   func(s *signatureInfo) { s.Time = "2020-01-01T00:00:00.000Z" },
		"role":   func(s *signatureInfo) { s.Role = "auditor" },
		"org":    func(s *signatureInfo) { s.Org = "hospital-x" },
	} {
		c2 := *si
		mut(&c2)
		if st, _, _ := sg.check(ctx, &c2, c2.message(c)); st != sigInvalid {
			t.Errorf("%s changed: %s", name, st)
		}
	}
	// The round trip through the extension is lossless.
	back, err := parseSignatureExt(cloneJSON(t, si.extension()))
	if err != nil || back.Signer != si.Signer || back.KeyID != si.KeyID || string(back.Signature) != string(si.Signature) {
		t.Fatalf("round trip: %v", err)
	}
}

// TestCapabilitySign: the CapabilityStatement lists $sign and $verify on
// every type only when the server has signing keys.
func TestCapabilitySign(t *testing.T) {
	mod, _ := withSigning(t, "intl")
	ops := func(e *env) map[string]bool {
		out := map[string]bool{}
		r := e.do("GET", "/metadata", nil).want(t, 200)
		for _, res := range asList(asList(r.obj["rest"])[0].(map[string]any)["resource"]) {
			rm := res.(map[string]any)
			if rm["type"] != "Observation" {
				continue
			}
			for _, o := range asList(rm["operation"]) {
				om := o.(map[string]any)
				out[om["name"].(string)] = om["definition"] != ""
			}
		}
		return out
	}
	if got := ops(newEnv(t, openSQLite(t), mod)); !got["sign"] || !got["verify"] {
		t.Fatalf("with keys: %v", got)
	}
	if got := ops(newEnv(t, openSQLite(t))); got["sign"] || got["verify"] {
		t.Fatalf("without keys: %v", got)
	}
}

// TestSignKeyRotation: after a rotation of the signing KEK new signatures
// use version 2 and old ones still verify as version 1; once version 1 is
// retired its signatures report unknown-key (within the cache time).
func TestSignKeyRotation(t *testing.T) {
	ctx := context.Background()
	m := testKeys(t, "intl")
	sg, err := NewSigning(ctx, m, "hospital-t")
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	sg.now = func() time.Time { return clock }
	e := newEnv(t, openSQLite(t), func(c *Config) { c.Signing = sg })
	id := e.do("POST", "/Patient", patient("Rotate", "Rae")).want(t, 201).str("id")
	e.do("POST", "/Patient/"+id+"/$sign", nil).want(t, 200)

	kek := kms.KEKID("hospital-t", kms.PurposeSigning)
	if _, err := m.Rotate(ctx, kek); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(signingKeyTTL + time.Second)
	e.do("POST", "/Patient/"+id+"/$sign", nil).want(t, 200)
	v := decodeVerify(t, e.do("GET", "/Patient/"+id+"/$verify", nil).want(t, 200))
	if !v.valid || v.sigs[0]["key-version"] != float64(1) || v.sigs[1]["key-version"] != float64(2) || v.sigs[0]["key-id"] == v.sigs[1]["key-id"] {
		t.Fatalf("after rotation: %+v", v)
	}
	if err := m.SetMinDecryptionVersion(ctx, kek, 2, true); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(signingKeyTTL + time.Second)
	v = decodeVerify(t, e.do("GET", "/Patient/"+id+"/$verify", nil).want(t, 200))
	if v.valid || v.sigs[0]["status"] != sigUnknownKey || v.sigs[1]["status"] != sigValid {
		t.Fatalf("after retiring v1: %+v", v)
	}
}

// TestSignTamperProtected: with field protection on, a database edit of a
// signed resource is caught by the resource HMAC before any signature is
// looked at: $verify answers PHI-6005.
func TestSignTamperProtected(t *testing.T) {
	mod, _ := withSigning(t, "intl")
	e := newEnv(t, openSQLite(t), mod)
	id := e.do("POST", "/Patient", patient("Signee", "Sam")).want(t, 201).str("id")
	e.do("POST", "/Patient/"+id+"/$sign", nil).want(t, 200)
	v := decodeVerify(t, e.do("GET", "/Patient/"+id+"/$verify", nil).want(t, 200))
	if !v.valid || v.count != 1 {
		t.Fatalf("signed: %+v", v)
	}
	tamper(t, e.store, "Patient", id, func(obj map[string]any) { obj["gender"] = "male" })
	e.do("GET", "/Patient/"+id+"/$verify", nil).wantCode(t, "PHI-6005")
}
