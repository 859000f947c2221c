package fhirserver

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"phix/internal/testenv"
	"sort"
	"strings"
	"testing"
	"time"

	"phix/fhir"
	"phix/store/sqlite"
	"phix/suite"
)

// provenanceFor returns the Provenance resources naming Type/id.
func provenanceFor(t testing.TB, e *env, ref string) []map[string]any {
	t.Helper()
	r := e.do("GET", "/Provenance?target="+ref+"&_count=100", nil).want(t, 200)
	var out []map[string]any
	for _, en := range r.entries() {
		out = append(out, en["resource"].(map[string]any))
	}
	return out
}

func provTargets(p map[string]any) (refs, acts []string) {
	for _, t := range asList(p["target"]) {
		m := t.(map[string]any)
		refs = append(refs, m["reference"].(string))
		for _, e := range asList(m["extension"]) {
			if em := e.(map[string]any); em["url"] == ExtTargetActivity {
				acts = append(acts, em["valueCode"].(string))
			}
		}
	}
	return refs, acts
}

// TestProvenancePerWrite: create, update and delete each leave one signed
// Provenance (versioned target, activity, agent, reason, signature) that
// $verify accepts; it holds no PHI.
func TestProvenancePerWrite(t *testing.T) {
	for _, sid := range []string{"intl", "gm"} {
		t.Run(sid, func(t *testing.T) { testProvenancePerWrite(t, sid) })
	}
}

func testProvenancePerWrite(t *testing.T, sid string) {
	e, path, _ := signEnv(t, sid)
	id := e.do("POST", "/Patient", patient("Provenant", "Pia")).want(t, 201).str("id")
	up := patient("Provenant", "Pia")
	up["id"], up["active"] = id, true
	e.do("PUT", "/Patient/"+id, up).want(t, 200)
	e.do("DELETE", "/Patient/"+id, nil).want(t, 204)

	provs := provenanceFor(t, e, "Patient/"+id)
	if len(provs) != 3 {
		t.Fatalf("%d Provenance for three writes", len(provs))
	}
	seen := map[string]string{}
	for _, p := range provs {
		refs, acts := provTargets(p)
		if len(refs) != 1 || len(acts) != 1 {
			t.Fatalf("targets: %v", p["target"])
		}
		seen[acts[0]] = refs[0]
		coding := asList(p["activity"].(map[string]any)["coding"])[0].(map[string]any)
		if coding["system"] != fhir.SystemDataOperation || coding["code"] != acts[0] {
			t.Fatalf("activity: %v", p["activity"])
		}
		reason := asList(asList(p["reason"])[0].(map[string]any)["coding"])[0].(map[string]any)
		if reason["code"] != "TREAT" || reason["system"] != fhir.SystemPurposeOfUse {
			t.Fatalf("reason: %v", p["reason"])
		}
		agent := asList(p["agent"])[0].(map[string]any)
		if agent["who"].(map[string]any)["identifier"].(map[string]any)["value"] != "static-token-1" {
			t.Fatalf("agent: %v", agent)
		}
		if len(asList(p["signature"])) != 1 || p["recorded"] == nil {
			t.Fatalf("signature/recorded: %v", p)
		}
		body := mustMarshal(t, p)
		// Whole words: a 6 kB base64 signature holds "Pia" by chance about
		// once in forty runs.
		for _, phi := range []string{"Provenant", "Pia"} {
			if testenv.ContainsWord(body, phi) {
				t.Fatalf("Provenance holds PHI")
			}
		}
		v := decodeVerify(t, e.do("GET", "/Provenance/"+p["id"].(string)+"/$verify", nil).want(t, 200))
		want := "match"
		if acts[0] == "DELETE" {
			want = "deleted"
		}
		if !v.valid || v.prov["status"] != "valid" || len(v.provT) != 1 || v.provT[0]["status"] != want {
			t.Fatalf("verify %s: %+v", acts[0], v)
		}
	}
	if seen["CREATE"] != "Patient/"+id+"/_history/1" || seen["UPDATE"] != "Patient/"+id+"/_history/2" || seen["DELETE"] != "Patient/"+id+"/_history/3" {
		t.Fatalf("versioned targets: %v", seen)
	}

	// With field protection on, the digest is over the sealed form as
	// stored: a database edit of the target no longer matches it.
	id3 := e.do("POST", "/Patient", patient("Tamper", "Tina")).want(t, 201).str("id")
	p3 := provenanceFor(t, e, "Patient/"+id3)[0]
	tamperVersion(t, path, "Patient", id3, 1, `"gender":"female"`, `"gender":"male"`)
	if v := decodeVerify(t, e.do("GET", "/Provenance/"+p3["id"].(string)+"/$verify", nil).want(t, 200)); v.valid || v.provT[0]["status"] != "mismatch" {
		t.Fatalf("tampered protected target: %+v", v)
	}

	// Without the HMAC layer in front a changed Provenance reaches the
	// signature check (with it, reading the Provenance answers PHI-6005).
	e, path, _ = signEnv(t, sid, noProtect)
	id2 := e.do("POST", "/Patient", patient("Tamper", "Tom")).want(t, 201).str("id")
	p2 := provenanceFor(t, e, "Patient/"+id2)[0]
	tamperVersion(t, path, "Patient", id2, 1, `"gender":"female"`, `"gender":"male"`)
	v := decodeVerify(t, e.do("GET", "/Provenance/"+p2["id"].(string)+"/$verify", nil).want(t, 200))
	if v.valid || v.prov["status"] != "valid" || v.provT[0]["status"] != "mismatch" {
		t.Fatalf("tampered target: %+v", v)
	}
	// And a changed Provenance no longer verifies.
	tamperVersion(t, path, "Provenance", p2["id"].(string), 1, `"code":"TREAT"`, `"code":"HRESCH"`)
	v = decodeVerify(t, e.do("GET", "/Provenance/"+p2["id"].(string)+"/$verify", nil).want(t, 200))
	if v.valid || v.prov["status"] != "invalid" {
		t.Fatalf("tampered Provenance: %+v", v)
	}
}

func mustMarshal(t testing.TB, v any) string {
	t.Helper()
	b, err := fhir.Marshal(&fhir.Resource{Object: v.(map[string]any)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// signEnv is a signing server over a SQLite file whose path a test can
// open directly.
func signEnv(t testing.TB, suiteID string, mods ...func(*Config)) (*env, string, *Signing) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fhir.db")
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mod, sg := withSigning(t, suiteID)
	return newEnv(t, st, append([]func(*Config){mod}, mods...)...), path, sg
}

// tamperVersion edits one stored version's body with SQL, the way an
// attacker with database access would.
func tamperVersion(t testing.TB, path, typ, id string, version int64, from, to string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var body []byte
	if err := db.QueryRow(`SELECT body FROM resource_versions WHERE type = ? AND id = ? AND version = ?`, typ, id, version).Scan(&body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), from) {
		t.Fatalf("stored body lacks %s", from)
	}
	body = []byte(strings.Replace(string(body), from, to, 1))
	if _, err := db.Exec(`UPDATE resource_versions SET body = ? WHERE type = ? AND id = ? AND version = ?`, body, typ, id, version); err != nil {
		t.Fatal(err)
	}
}

// TestProvenanceTransaction: one Provenance names every target of a
// transaction; a failed transaction leaves none; a batch gets one per entry.
func TestProvenanceTransaction(t *testing.T) {
	mod, _ := withSigning(t, "intl")
	e := newEnv(t, openSQLite(t), mod)
	old := e.do("POST", "/Observation", map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "old"}}).want(t, 201).str("id")
	tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", "resource": patient("Trans", "Tia"),
			"request": map[string]any{"method": "POST", "url": "Patient"}},
		map[string]any{"resource": map[string]any{"resourceType": "Observation", "id": "obs-t1", "status": "final", "code": map[string]any{"text": "w"},
			"subject": map[string]any{"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},
			"request": map[string]any{"method": "PUT", "url": "Observation/obs-t1"}},
		map[string]any{"request": map[string]any{"method": "DELETE", "url": "Observation/" + old}},
	}}
	e.do("POST", "", tx).want(t, 200)
	provs := provenanceFor(t, e, "Observation/obs-t1")
	if len(provs) != 1 {
		t.Fatalf("%d Provenance for the transaction", len(provs))
	}
	refs, acts := provTargets(provs[0])
	if len(refs) != 3 || strings.Join(acts, ",") != "DELETE,CREATE,CREATE" {
		t.Fatalf("targets %v activities %v", refs, acts)
	}
	if provs[0]["activity"].(map[string]any)["text"] != "transaction" {
		t.Fatalf("mixed activity: %v", provs[0]["activity"])
	}
	v := decodeVerify(t, e.do("GET", "/Provenance/"+provs[0]["id"].(string)+"/$verify", nil).want(t, 200))
	if !v.valid || len(v.provT) != 3 {
		t.Fatalf("verify: %+v", v)
	}

	count := func() int {
		return e.do("GET", "/Provenance?_summary=count", nil).want(t, 200).total()
	}
	before := count()
	bad := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"resource": patient("Fail", "Fred"), "request": map[string]any{"method": "POST", "url": "Patient"}},
		map[string]any{"resource": map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "w"},
			"subject": map[string]any{"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}},
			"request": map[string]any{"method": "POST", "url": "Observation"}},
	}}
	e.do("POST", "", bad).want(t, 400)
	if count() != before {
		t.Fatal("a failed transaction left a Provenance")
	}

	batch := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
		map[string]any{"resource": patient("Batch", "Bo"), "request": map[string]any{"method": "POST", "url": "Patient"}},
		map[string]any{"resource": patient("Batch", "Bea"), "request": map[string]any{"method": "POST", "url": "Patient"}},
	}}
	e.do("POST", "", batch).want(t, 200)
	if got := count(); got != before+2 {
		t.Fatalf("batch of 2 wrote %d Provenance", got-before)
	}
}

// failingKey is a signing key whose Sign always fails.
type failingKey struct{ suite.SigningKey }

func (failingKey) Sign([]byte) ([]byte, error) { return nil, errors.New("hsm unavailable") }

// TestProvenanceAtomic: when the Provenance cannot be written (here: the
// signing key fails), the write itself is rolled back.
func TestProvenanceAtomic(t *testing.T) {
	mod, sg := withSigning(t, "intl")
	e := newEnv(t, openSQLite(t), mod)
	k, v, err := sg.signer(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sg.mu.Lock()
	sg.cur, sg.curVer, sg.curAt = failingKey{k}, v, time.Now().Add(time.Hour)
	sg.mu.Unlock()
	r := e.do("POST", "/Patient", patient("Atomic", "Ann")).want(t, 500)
	if r.errCode() != string(CodeInternal) {
		t.Fatalf("code %s", r.errCode())
	}
	if n := e.do("GET", "/Patient?_summary=count", nil).want(t, 200).total(); n != 0 {
		t.Fatalf("the write survived its failed Provenance: %d patients", n)
	}
	if n := e.do("GET", "/Provenance?_summary=count", nil).want(t, 200).total(); n != 0 {
		t.Fatalf("%d Provenance", n)
	}
}

// TestClientProvenance: a client may write Provenance as data but never with
// the server's signature, and may not change the server's own.
func TestClientProvenance(t *testing.T) {
	mod, _ := withSigning(t, "intl")
	e := newEnv(t, openSQLite(t), mod)
	id := e.do("POST", "/Patient", patient("Client", "Cy")).want(t, 201).str("id")
	server := provenanceFor(t, e, "Patient/"+id)[0]

	forged := map[string]any{}
	for k, v := range server {
		if k != "id" && k != "meta" {
			forged[k] = v
		}
	}
	created := e.do("POST", "/Provenance", forged).want(t, 201)
	if created.obj["signature"] != nil {
		t.Fatalf("client Provenance kept the server signature: %s", created.body)
	}
	v := decodeVerify(t, e.do("GET", "/Provenance/"+created.str("id")+"/$verify", nil).want(t, 200))
	if v.valid || v.prov != nil {
		t.Fatalf("client Provenance verifies as the server's: %+v", v)
	}
	// A client signature (not the server's system) is kept as data.
	own := cloneJSON(t, forged)
	own["signature"] = []any{map[string]any{
		"type": []any{map[string]any{"system": systemSigType, "code": "1.2.840.10065.1.12.1.1"}},
		"when": "2025-01-01T00:00:00Z", "who": map[string]any{"reference": "Practitioner/p1"}, "data": "AAEC",
	}}
	if got := e.do("POST", "/Provenance", own).want(t, 201); len(asList(got.obj["signature"])) != 1 {
		t.Fatalf("client's own signature dropped: %s", got.body)
	}
	sid := server["id"].(string)
	upd := cloneJSON(t, forged)
	upd["id"] = sid
	e.do("PUT", "/Provenance/"+sid, upd).want(t, 405)
	e.do("DELETE", "/Provenance/"+sid, nil).want(t, 405)
}

// TestProvenanceSynthea imports Synthea bundles as transactions with signing
// on: each transaction leaves one Provenance naming every resource it wrote,
// each verifies (signature and every target digest), and no Provenance holds
// a name, identifier, phone or address of the bundle.
func TestProvenanceSynthea(t *testing.T) {
	bundles := syntheaBundles(t)
	names := make([]string, 0, len(bundles))
	for n := range bundles {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 3 {
		names = names[:3] // bounded: three patients' records
	}
	e, _, _ := signEnv(t, "intl")
	var words, subs []string
	resources := 0
	for _, n := range names {
		r := e.do("POST", "", bundles[n], "Prefer", "return=minimal").want(t, 200)
		resources += len(r.entries())
		w, s := syntheaPHI(t, bundles[n])
		words, subs = append(words, w...), append(subs, s...)
	}
	r := e.do("GET", "/Provenance?_count=100", nil).want(t, 200)
	provs := r.entries()
	if len(provs) != len(names) {
		t.Fatalf("%d Provenance for %d transactions", len(provs), len(names))
	}
	targets := 0
	var bodies [][]byte
	for _, en := range provs {
		p := en["resource"].(map[string]any)
		refs, _ := provTargets(p)
		targets += len(refs)
		bodies = append(bodies, []byte(mustMarshal(t, p)))
		v := decodeVerify(t, e.do("GET", "/Provenance/"+p["id"].(string)+"/$verify", nil).want(t, 200))
		if !v.valid || len(v.provT) != len(refs) {
			t.Fatalf("Provenance does not verify: status %v, %d/%d targets", v.prov["status"], len(v.provT), len(refs))
		}
	}
	if targets != resources {
		t.Fatalf("Provenance names %d targets for %d written resources", targets, resources)
	}
	if len(words) == 0 || len(subs) == 0 || len(findPHI([][]byte{bundles[names[0]]}, words, subs)) == 0 {
		t.Fatal("the PHI scanner finds nothing in a raw bundle")
	}
	if hits := findPHI(bodies, words, subs); len(hits) > 0 {
		t.Fatalf("%d PHI values found in Provenance", len(hits))
	}
}
