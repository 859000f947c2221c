package fhirserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"phix/audit"
	"phix/audit/auditsqlite"
	"phix/audit/audittest"
	"phix/fhir"
	"phix/internal/testenv"
	"phix/kms"
	"phix/phi"
	"phix/phi/policy"
	"phix/store"
	"phix/store/postgres"
	"phix/store/sqlite"
	"phix/suite"
)

// rawDB is a store plus direct SQL access to its database, for the tests
// that look at (or tamper with) what is really stored.
type rawDB struct {
	name  string
	st    store.Store
	exec  func(t testing.TB, query string, args ...any) int64 // rows affected
	dump  func(t testing.TB) [][]byte                         // every byte of the database
	param func(i int) string                                  // placeholder syntax
}

func rawSQLite(t testing.TB) *rawDB {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "fhir.db")
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &rawDB{name: "sqlite", st: st,
		exec: func(t testing.TB, q string, args ...any) int64 {
			t.Helper()
			res, err := db.Exec(q, args...)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := res.RowsAffected()
			return n
		},
		dump: func(t testing.TB) [][]byte {
			t.Helper()
			var out [][]byte
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, b)
			}
			return out
		},
		param: func(int) string { return "?" },
	}
}

func rawPostgres(t testing.TB) *rawDB {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var mu sync.Mutex
	return &rawDB{name: "postgres", st: st,
		exec: func(t testing.TB, q string, args ...any) int64 {
			t.Helper()
			mu.Lock()
			defer mu.Unlock()
			tag, err := conn.Exec(ctx, q, args...)
			if err != nil {
				t.Fatal(err)
			}
			return tag.RowsAffected()
		},
		dump: func(t testing.TB) [][]byte {
			t.Helper()
			mu.Lock()
			defer mu.Unlock()
			rows, err := conn.Query(ctx, `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables
				WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'`)
			if err != nil {
				t.Fatal(err)
			}
			var tables []string
			for rows.Next() {
				var n string
				if err := rows.Scan(&n); err != nil {
					t.Fatal(err)
				}
				tables = append(tables, n)
			}
			if len(tables) == 0 {
				t.Fatal("no tables")
			}
			var out [][]byte
			for _, tbl := range tables {
				var d *string
				// Rows as text; bytea bodies are hex there, so also convert
				// every bytea column back to text.
				if err := conn.QueryRow(ctx, "SELECT string_agg(t::text, E'\\n') FROM "+tbl+" t").Scan(&d); err != nil {
					t.Fatalf("%s: %v", tbl, err)
				}
				if d != nil {
					out = append(out, []byte(*d))
				}
			}
			var body *string
			if err := conn.QueryRow(ctx, "SELECT string_agg(convert_from(body, 'UTF8'), E'\\n') FROM resource_versions WHERE length(body) > 0").Scan(&body); err != nil {
				t.Fatal(err)
			}
			if body != nil {
				out = append(out, []byte(*body))
			}
			return out
		},
		param: func(i int) string { return "$" + string(rune('0'+i)) },
	}
}

// rawBackends runs fn over both backends with direct database access.
func rawBackends(t *testing.T, fn func(t *testing.T, db *rawDB)) {
	for _, b := range []struct {
		name string
		open func(testing.TB) *rawDB
	}{{"sqlite", rawSQLite}, {"postgres", rawPostgres}} {
		t.Run(b.name, func(t *testing.T) { fn(t, b.open(t)) })
	}
}

// TestProtectRawPHIScan imports Synthea bundles through the running server
// (protection on, as phix fhir runs), searches them on blind tokens, then
// reads every byte of the SQLite files and every PostgreSQL table and finds
// none of the patients' names, identifiers, phone numbers or addresses. A
// control import with protection off must find them, so the scan can fail.
func TestProtectRawPHIScan(t *testing.T) {
	bundles := testenv.SyntheaBundles(t)
	n := 4
	if testing.Short() || raceEnabled {
		n = 2
	}
	bundles = bundles[:min(n, len(bundles))]
	var words, values []string
	for _, b := range bundles {
		p := testenv.SyntheaPHI(t, b.Data)
		words, values = append(words, p.Words...), append(values, p.Values...)
	}
	if len(words) == 0 || len(values) == 0 {
		t.Fatal("no PHI collected")
	}
	rawBackends(t, func(t *testing.T, db *rawDB) {
		e := newEnv(t, db.st)
		for _, b := range bundles {
			e.do("POST", "", b.Data).want(t, 200)
		}
		// A family name (blind prefix and exact) still finds its patient.
		fam := firstFamily(t, bundles[0].Data)
		if r := e.do("GET", "/Patient?family="+urlq(fam), nil).want(t, 200); r.total() < 1 {
			t.Fatalf("blind search on an imported family name: total %d", r.total())
		}
		// So does full-text search, on blind word tokens.
		if r := e.do("GET", "/Patient?_content="+urlq(fam), nil).want(t, 200); r.total() < 1 {
			t.Fatalf("blind full-text search on an imported family name: total %d", r.total())
		}
		if hits := findPHI(db.dump(t), words, values); len(hits) > 0 {
			t.Fatalf("%d PHI values found in the raw %s database (not printed)", len(hits), db.name)
		}
	})
	t.Run("control", func(t *testing.T) {
		db := rawSQLite(t)
		e := newEnv(t, db.st, noProtect)
		e.do("POST", "", bundles[0].Data).want(t, 200)
		if hits := findPHI(db.dump(t), words, values); len(hits) == 0 {
			t.Fatal("the scan finds nothing in a plaintext store: it cannot detect leaks")
		}
	})
}

// firstFamily returns the first Patient's family name in a Synthea bundle.
func firstFamily(t testing.TB, bundle []byte) string {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	for _, e := range b.Entry {
		if e.Resource["resourceType"] != "Patient" {
			continue
		}
		names, _ := e.Resource["name"].([]any)
		for _, n := range names {
			if f, _ := n.(map[string]any)["family"].(string); f != "" {
				return f
			}
		}
	}
	t.Fatal("no Patient family name in the bundle")
	return ""
}

// TestProtectStoredForm: what the store holds is sealed (no name, the
// protection extensions present); what the client reads is the plaintext.
func TestProtectStoredForm(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := e.do("POST", "/Patient", patient("Sealedname", "Hidden")).want(t, 201)
		if c.str("name") == "" && !strings.Contains(string(c.body), "Sealedname") {
			t.Fatalf("create answer is not the plaintext: %s", c.body)
		}
		rec, err := e.store.Read(context.Background(), "Patient", c.str("id"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{phi.ExtHMAC, phi.ExtMetadata, phi.ExtEncrypted} {
			if !bytes.Contains(rec.Body, []byte(want)) {
				t.Errorf("stored form lacks %s", want)
			}
		}
		if bytes.Contains(rec.Body, []byte("Sealedname")) || bytes.Contains(rec.Body, []byte("Hidden")) {
			t.Fatal("stored form holds the name in clear")
		}
		r := e.do("GET", "/Patient/"+c.str("id"), nil).want(t, 200)
		if !strings.Contains(string(r.body), "Sealedname") || strings.Contains(string(r.body), phi.ExtHMAC) {
			t.Fatalf("read is not the plaintext without protection extensions: %s", r.body)
		}
		// Client-sent protection extensions are refused, never stored.
		forged := patient("Forger", "Fay")
		forged["extension"] = []any{map[string]any{"url": phi.ExtHMAC, "valueString": "HMAC-SHA3-384: AAAA"}}
		e.do("POST", "/Patient", forged).want(t, 400).wantCode(t, "PHI-6007")
		forged["extension"] = []any{map[string]any{"url": phi.ExtMetadata, "extension": []any{map[string]any{"url": "algorithm", "valueString": "none"}}}}
		e.do("PUT", "/Patient/forged-1", withID(forged, "forged-1")).want(t, 400).wantCode(t, "PHI-6007")
		if _, err := e.store.Read(context.Background(), "Patient", "forged-1"); err == nil {
			t.Fatal("a refused write was stored")
		}
	})
}

func withID(m map[string]any, id string) map[string]any {
	c := map[string]any{}
	for k, v := range m {
		c[k] = v
	}
	c["id"] = id
	return c
}

// TestProtectMisconfiguredPolicy: a policy that would leave names in clear
// is caught by the floor check: PHI-6006 and nothing stored.
func TestProtectMisconfiguredPolicy(t *testing.T) {
	testProtector(t)
	pol, err := policy.New(policy.File{Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := suite.Lookup(suite.Intl)
	weak, err := phi.New(phi.Config{KMS: protKMS, Hospital: testHospital, Suite: s, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	st := openSQLite(t)
	e := newEnv(t, st, func(c *Config) { c.Protector = weak })
	e.do("POST", "/Patient", patient("Clear", "Name")).want(t, 422).wantCode(t, "PHI-6006")
	e.do("POST", "", bundleOf("transaction", entry("urn:uuid:1", patient("Clear", "Bundle"), "POST", "Patient"))).want(t, 422)
	if n := stored(t, st); n != 0 {
		t.Fatalf("%d versions stored by refused writes", n)
	}
}

// TestProtectTamper edits stored rows with SQL: the next read answers
// PHI-6005, writes a tamper-detected security alert, and locks the caller
// out (900 s) for every further request.
func TestProtectTamper(t *testing.T) {
	rawBackends(t, func(t *testing.T, db *rawDB) {
		tok2, _ := NewToken()
		tok3, _ := NewToken()
		a := newAuditEnvOn(t, db.st, tok2, tok3)
		id := a.do("POST", "/Patient", patient("Tamper", "Tess")).want(t, 201).str("id")
		other := a.do("POST", "/Patient", patient("Other", "Otto")).want(t, 201).str("id")
		a.do("GET", "/Patient/"+id, nil).want(t, 200)
		// gender is clear in the stored form: flip it.
		n := db.exec(t, "UPDATE resource_versions SET body = "+replaceExpr(db)+" WHERE id = "+db.param(1), id)
		if n == 0 {
			t.Fatal("tamper UPDATE changed no row")
		}
		r := a.do("GET", "/Patient/"+id, nil).want(t, 500).wantCode(t, "PHI-6005")
		if strings.Contains(string(r.body), "Tamper") {
			t.Fatal("the error answer carries PHI")
		}
		// The caller is locked out now, even for a sound resource.
		a.do("GET", "/Patient/"+other, nil).want(t, 500).wantCode(t, "PHI-6005")
		var alerts int
		for _, ev := range a.events(t) {
			if ev.Action == audit.ActionSecurityAlert && ev.Alert == audit.AlertTamper {
				alerts++
				if ev.What.ResourceType != "Patient" || ev.What.ResourceID != a.ps.Resource("Patient", id) {
					t.Fatalf("alert names %v", ev.What)
				}
			}
		}
		if alerts != 1 {
			t.Fatalf("%d tamper alerts, want 1", alerts)
		}
		// Another caller is not locked, but gets PHI-6005 on the bad row.
		if r := a.doAs(tok2, "GET", BasePath+"/Patient/"+other); r.status != 200 {
			t.Fatalf("second caller: %d", r.status)
		}
		// A valid body of another resource copied into this row: PHI-6005.
		db.exec(t, "UPDATE resource_versions SET body = (SELECT body FROM resource_versions WHERE id = "+db.param(1)+" AND version = 1) WHERE id = "+db.param(2),
			other, id)
		if r := a.doAs(tok3, "GET", BasePath+"/Patient/"+id); r.status != 500 || !strings.Contains(string(r.body), "PHI-6005") {
			t.Fatalf("swapped body: %d %s", r.status, r.body)
		}
		// verify-integrity reports the row (type, id, version; no PHI).
		var found []IntegrityFinding
		stats, err := VerifyIntegrity(context.Background(), db.st, testProtector(t), func(f IntegrityFinding) { found = append(found, f) })
		if err != nil {
			t.Fatal(err)
		}
		if stats.Bad != 1 || len(found) != 1 || found[0].Type != "Patient" || found[0].ID != id || found[0].Version != 1 ||
			!strings.Contains(found[0].Reason, "another resource") || stats.Versions != 2 {
			t.Fatalf("verify-integrity: %+v %+v", stats, found)
		}
	})
}

// replaceExpr is SQL flipping "female" to "male" in a body column.
func replaceExpr(db *rawDB) string {
	if db.name == "postgres" {
		return `convert_to(replace(convert_from(body, 'UTF8'), '"gender":"female"', '"gender":"male"'), 'UTF8')`
	}
	return `CAST(replace(CAST(body AS TEXT), '"gender":"female"', '"gender":"male"') AS BLOB)`
}

// TestProtectBlindSearch: searches on encrypted elements keep working on
// blind tokens, with correct totals, on both backends.
func TestProtectBlindSearch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		mk := func(family, given, birth, phone, email, city, postal, mrn string) string {
			p := map[string]any{
				"resourceType": "Patient",
				"name":         []any{map[string]any{"family": family, "given": []any{given}}},
				"birthDate":    birth,
				"identifier":   []any{map[string]any{"system": "urn:test:mrn", "value": mrn}},
				"telecom": []any{map[string]any{"system": "phone", "value": phone},
					map[string]any{"system": "email", "value": email}},
				"address": []any{map[string]any{"city": city, "postalCode": postal, "state": "MA"}},
			}
			return e.do("POST", "/Patient", p).want(t, 201).str("id")
		}
		zhang := mk("张", "伟", "1984-03-15", "+86 138 0013 8000", "zhang.wei@example.cn", "北京", "100000", "MRN-A")
		mk("Smithson", "Ann", "1984-07-01", "(555) 010-2000", "Ann@Example.org", "Boston", "02115", "MRN-B")
		mk("Smith", "Bob", "1990-12-31", "555-010-3000", "bob@example.org", "Cambridge", "02139", "MRN-C")
		e.do("POST", "/Observation", map[string]any{"resourceType": "Observation", "status": "final",
			"code": map[string]any{"text": "x"}, "subject": map[string]any{"reference": "Patient/" + zhang}}).want(t, 201)
		for q, n := range map[string]int{
			"family=Smith":                     2, // prefix
			"family:exact=Smith":               1,
			"family=smith":                     2, // case-insensitive
			"name=ann":                         1,
			"given=Bo":                         1,
			"family=张":                         1,
			"name=伟":                           1,
			"family:exact=张":                   1,
			"family=Jones":                     0,
			"identifier=urn:test:mrn|MRN-A":    1,
			"identifier=MRN-B":                 1,
			"identifier=MRN-D":                 0,
			"phone=5550102000":                 1,
			"phone=(555)%20010-3000":           1,
			"email=ann@example.org":            1,
			"telecom=zhang.wei@example.cn":     1,
			"birthdate=1984":                   2,
			"birthdate=1984-03":                1,
			"birthdate=1984-03-15":             1,
			"birthdate=ge1985":                 1,
			"birthdate=lt1984-07-02":           2,
			"address-city=Boston":              1,
			"address-city=北京":                  1,
			"address-postalcode=021":           2,
			"address-postalcode=02115":         1,
			"family=Smith&birthdate=1990":      1,
			"family=Smith,张":                   3,
			"_summary=count&family=Smith":      2,
			"_count=1&family=Smith":            2, // total of all pages
			"_total=accurate&address-state=MA": 3, // clear element
		} {
			r := e.do("GET", "/Patient?"+q, nil).want(t, 200)
			if r.total() != n {
				t.Errorf("%s: total %d, want %d", q, r.total(), n)
			}
		}
		if r := e.do("GET", "/Observation?subject:Patient.family=张", nil).want(t, 200); r.total() != 1 {
			t.Errorf("chained blind search: total %d", r.total())
		}
		if r := e.do("GET", "/Patient?_id="+zhang+"&_revinclude=Observation:subject", nil).want(t, 200); len(r.entries()) != 2 {
			t.Errorf("_revinclude of a sealed resource: %d entries", len(r.entries()))
		}
		// Conditional creates match on blind tokens and answer the plaintext,
		// in a batch and in a transaction.
		for _, bt := range []string{"batch", "transaction"} {
			r := e.do("POST", "", bundleOf(bt, entry("", patient("Smith", "Bob"), "POST", "Patient", "ifNoneExist", "identifier=urn:test:mrn|MRN-C")),
				"Prefer", "return=representation").want(t, 200)
			res := r.entries()[0]
			if st := res["response"].(map[string]any)["status"].(string); !strings.HasPrefix(st, "200") {
				t.Fatalf("%s conditional create: %v", bt, res["response"])
			}
			if b, _ := json.Marshal(res["resource"]); !strings.Contains(string(b), "Bob") {
				t.Fatalf("%s conditional create answer is not the plaintext: %s", bt, b)
			}
		}
		e.do("GET", "/Patient?family:contains=mit", nil).want(t, 422).wantCode(t, "PHI-6006")
		e.do("GET", "/Patient?_sort=birthdate", nil).want(t, 422).wantCode(t, "PHI-6006")
	})
}

// TestProtectErase: $erase under dual control destroys the patient's key;
// every read of their resources, history included, answers 410, and the
// raw store keeps only ciphertext that no longer opens.
func TestProtectErase(t *testing.T) {
	alice, bob := testCustodians(t)
	rawBackends(t, func(t *testing.T, db *rawDB) {
		e := newEnv(t, db.st, func(c *Config) { c.Eraser = kmsEraser{m: protKMS, hospital: testHospital} })
		p := patient("Erasable", "Eve")
		pid := e.do("POST", "/Patient", p).want(t, 201).str("id")
		p["gender"] = "male"
		e.do("PUT", "/Patient/"+pid, withID(p, pid)).want(t, 200)
		obs := e.do("POST", "/Observation", map[string]any{"resourceType": "Observation", "status": "final",
			"code": map[string]any{"text": "x"}, "subject": map[string]any{"reference": "Patient/" + pid},
			"note": []any{map[string]any{"text": "Eve said hello"}}}).want(t, 201).str("id")
		keep := e.do("POST", "/Patient", patient("Kept", "Ken")).want(t, 201).str("id")
		keyID, _ := kms.DataKeyID(testHospital, kms.KindPatient, pid)
		approval := func(c custodianKey, key string) map[string]any {
			a, err := kms.SignApproval(c.sk, c.id, kms.OpDestroyDataKey, key, 0, "", time.Now(), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(a)
			return map[string]any{"name": "approval", "valueString": string(b)}
		}
		params := func(ps ...any) map[string]any { return map[string]any{"resourceType": "Parameters", "parameter": ps} }
		// Refused: one approval; two for another patient's key; an unknown patient.
		e.do("POST", "/Patient/"+pid+"/$erase", params(approval(alice, keyID))).want(t, 403)
		otherKey, _ := kms.DataKeyID(testHospital, kms.KindPatient, keep)
		e.do("POST", "/Patient/"+pid+"/$erase", params(approval(alice, otherKey), approval(bob, otherKey))).want(t, 403).wantCode(t, string(CodeApprovals))
		e.do("POST", "/Patient/nobody/$erase", params(approval(alice, keyID), approval(bob, keyID))).want(t, 404).wantCode(t, "PHI-6015")
		e.do("GET", "/Patient/"+pid, nil).want(t, 200)

		r := e.do("POST", "/Patient/"+pid+"/$erase", params(approval(alice, keyID), approval(bob, keyID))).want(t, 200)
		if !strings.Contains(string(r.body), `"valueInteger":2`) {
			t.Fatalf("erase answer: %s", r.body)
		}
		for _, path := range []string{"/Patient/" + pid, "/Observation/" + obs, "/Patient/" + pid + "/_history/1",
			"/Patient/" + pid + "/_history/2", "/Observation/" + obs + "/_history/1", "/Patient/" + pid + "/_history", "/Observation/" + obs + "/_history"} {
			e.do("GET", path, nil).want(t, 410).wantCode(t, string(CodeErased))
		}
		if s := e.do("GET", "/Patient?family=Erasable", nil).want(t, 200); s.total() != 0 {
			t.Fatalf("search still finds the erased patient: %d", s.total())
		}
		h := e.do("GET", "/Patient/_history", nil).want(t, 200)
		gone := 0
		for _, en := range h.entries() {
			if resp, _ := en["response"].(map[string]any); strings.HasPrefix(resp["status"].(string), "410") {
				gone++
				if en["resource"] != nil {
					t.Fatal("an erased history entry carries a resource")
				}
			}
		}
		if gone != 2 {
			t.Fatalf("type history: %d erased entries, want 2", gone)
		}
		e.do("GET", "/Patient/"+keep, nil).want(t, 200)
		// Raw storage: the sealed versions are still there, still verify
		// (HMAC keys are not erased), but no longer open; no plaintext.
		for v := int64(1); v <= 2; v++ {
			rec, err := db.st.VRead(context.Background(), "Patient", pid, v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(rec.Body, []byte(phi.ExtEncrypted)) {
				t.Fatalf("version %d lost its ciphertext", v)
			}
			if _, err := testProtector(t).OpenJSON(context.Background(), rec.Body); !errors.Is(err, phi.ErrKeyDestroyed) {
				t.Fatalf("version %d still opens: %v", v, err)
			}
		}
		for _, d := range db.dump(t) {
			for _, w := range []string{"Erasable", "Eve said hello"} {
				if bytes.Contains(d, []byte(w)) {
					t.Fatal("plaintext of the erased patient in the raw database")
				}
			}
		}
	})
}

// custodianKey is a test key custodian.
type custodianKey struct {
	id string
	sk suite.SigningKey
}

var (
	custOnce     sync.Once
	custA, custB custodianKey
)

// testCustodians enrols two custodians in the shared keyring.
func testCustodians(t testing.TB) (custodianKey, custodianKey) {
	t.Helper()
	testProtector(t)
	custOnce.Do(func() {
		s, _ := suite.Lookup(suite.Intl)
		for _, c := range []*custodianKey{&custA, &custB} {
			sk, err := s.GenerateSigningKey()
			if err != nil {
				t.Fatal(err)
			}
			c.sk = sk
			c.id = map[*custodianKey]string{&custA: "alice", &custB: "bob"}[c]
			if err := protKMS.EnrollCustodian(context.Background(), c.id, "intl", sk.Public().Bytes(), nil); err != nil {
				t.Fatal(err)
			}
		}
	})
	if custA.sk == nil || custB.sk == nil {
		t.Fatal("custodians not enrolled")
	}
	return custA, custB
}

// TestProtectEncryptJob: $encrypt re-seals under the current HMAC KEK
// version as a background job with progress, for one resource and a type.
func TestProtectEncryptJob(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	var ids []string
	for i := 0; i < 7; i++ {
		ids = append(ids, e.do("POST", "/Patient", patient("Reseal", string(rune('a'+i)))).want(t, 201).str("id"))
	}
	if _, err := protKMS.Rotate(context.Background(), testHospital+"/hmac"); err != nil {
		t.Fatal(err)
	}
	cur := currentHMACVersion(t)
	wait := func(loc string) *resp {
		t.Helper()
		for i := 0; i < 200; i++ {
			r := e.do("GET", loc, nil).want(t, 200)
			if st := param(r, "status"); st != "running" {
				return r
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("job did not finish")
		return nil
	}
	one := e.do("POST", "/Patient/"+ids[0]+"/$encrypt", nil).want(t, 202)
	r := wait(one.header.Get("Content-Location"))
	if param(r, "status") != "completed" || param(r, "done") != "1" {
		t.Fatalf("instance job: %s", r.body)
	}
	all := e.do("POST", "/Patient/$encrypt", nil).want(t, 202)
	r = wait(all.header.Get("Content-Location"))
	if param(r, "status") != "completed" || param(r, "total") != "7" || param(r, "done") != "7" {
		t.Fatalf("type job: %s", r.body)
	}
	for _, id := range ids {
		rec, err := e.store.Read(context.Background(), "Patient", id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(rec.Body, []byte("/hmac#"+cur+`"`)) {
			t.Fatalf("%s not re-sealed under HMAC KEK version %s", id, cur)
		}
		e.do("GET", "/Patient/"+id, nil).want(t, 200)
	}
	// The older versions, under the old KEK version, still verify.
	e.do("GET", "/Patient/"+ids[0]+"/_history/1", nil).want(t, 200)
	e.do("POST", "/$encrypt", nil).want(t, 400)
	e.do("GET", "/$encrypt?job=nope", nil).want(t, 404)
	e.do("POST", "/Patient/nope/$encrypt", nil).want(t, 404)
}

func currentHMACVersion(t testing.TB) string {
	t.Helper()
	k, err := protKMS.PatientHMACKey(context.Background(), testHospital, "x")
	if err != nil {
		t.Fatal(err)
	}
	return itoa(k.Version)
}

// param returns a Parameters answer's value of name as text.
func param(r *resp, name string) string {
	ps, _ := r.obj["parameter"].([]any)
	for _, p := range ps {
		m, _ := p.(map[string]any)
		if m["name"] != name {
			continue
		}
		for k, v := range m {
			if strings.HasPrefix(k, "value") {
				b, _ := json.Marshal(v)
				return strings.Trim(string(b), `"`)
			}
		}
	}
	return ""
}

// newAuditEnvOn is newAuditEnv over st, with extra clinician tokens.
func newAuditEnvOn(t testing.TB, st store.Store, extra ...string) *auditEnv {
	t.Helper()
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "audit.db")
	b, err := auditsqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ps := audittest.Pseudonyms(t)
	var l *audit.Log
	e := newEnv(t, st, func(c *Config) {
		sts := c.Auth.(*StaticTokens)
		for i, tok := range extra {
			sts.digests = append(sts.digests, sha256.Sum256([]byte(tok)))
			sts.names = append(sts.names, "extra-token-"+itoa(i+1))
			sts.roles = append(sts.roles, RoleClinician)
		}
		opened, err := audit.Open(ctx, b, audit.Options{
			Origin: "test.phix/audit", Signer: audittest.SigningKey(t, suite.Intl),
			Pseudonyms: ps, Authorizer: AuditAuthorizer(c.Auth), PruneInterval: -1,
		})
		if err != nil {
			t.Fatal(err)
		}
		l = opened
		c.Audit, c.AuditPseudonyms = l, ps
	})
	t.Cleanup(func() { l.Close() })
	return &auditEnv{env: e, log: l, ps: ps, dbPath: dbPath}
}

// TestProtectEncryptJobConcurrent: reads and writes go on while a type job
// runs; resources a client updates meanwhile are skipped (their new version
// is sealed under the current keys already), the rest re-sealed, and a
// finished job resumed with ?job= stays completed.
func TestProtectEncryptJobConcurrent(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	const n = 40
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, e.do("POST", "/Patient", patient("Busy", itoa(i))).want(t, 201).str("id"))
	}
	start := e.do("POST", "/Patient/$encrypt", nil).want(t, 202)
	loc := start.header.Get("Content-Location")
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < n; i += 3 {
			p := patient("Busy", itoa(i))
			p["gender"] = "male"
			if r := e.do("PUT", "/Patient/"+ids[i], withID(p, ids[i])); r.status != 200 {
				t.Errorf("update during the job: %d", r.status)
			}
		}
	})
	wg.Go(func() {
		for i := 0; i < n; i++ {
			if r := e.do("GET", "/Patient/"+ids[i], nil); r.status != 200 {
				t.Errorf("read during the job: %d", r.status)
			}
		}
	})
	wg.Wait()
	var r *resp
	for i := 0; i < 500; i++ {
		if r = e.do("GET", loc, nil).want(t, 200); param(r, "status") != "running" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if param(r, "status") != "completed" || param(r, "total") != itoa(n) || param(r, "failed") != "0" {
		t.Fatalf("job: %s", r.body)
	}
	done, skipped := param(r, "done"), param(r, "skipped")
	if done == "0" || atoiTest(done)+atoiTest(skipped) != n {
		t.Fatalf("done %s + skipped %s != %d", done, skipped, n)
	}
	if s := e.do("GET", "/Patient?family=Busy&_summary=count", nil).want(t, 200); s.total() != n {
		t.Fatalf("search after the job: %d", s.total())
	}
	jid := param(r, "job")
	e.do("POST", "/$encrypt?job="+jid, nil).want(t, 202)
	for i := 0; i < 100; i++ {
		if r = e.do("GET", loc, nil).want(t, 200); param(r, "status") != "running" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if param(r, "status") != "completed" {
		t.Fatalf("resumed finished job: %s", r.body)
	}
}

func atoiTest(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestProtectGMNode: a node opened with the gm suite seals with SM4-GCM and
// HMAC-SM3, and the server round-trips and searches as with intl.
func TestProtectGMNode(t *testing.T) {
	var node *Node
	st := openSQLite(t)
	e := newEnv(t, st, func(c *Config) {
		n, err := OpenNode(context.Background(), NodeOptions{Dir: t.TempDir(), Hospital: "gm-hospital", Suite: "gm", Auth: c.Auth})
		if err != nil {
			t.Fatal(err)
		}
		node = n
		c.Protector, c.Eraser = n.Protector, n.Eraser
	})
	t.Cleanup(func() { node.Close() })
	id := e.do("POST", "/Patient", patient("王", "芳")).want(t, 201).str("id")
	if r := e.do("GET", "/Patient/"+id, nil).want(t, 200); !strings.Contains(string(r.body), "王") {
		t.Fatalf("read: %s", r.body)
	}
	if r := e.do("GET", "/Patient?family=王", nil).want(t, 200); r.total() != 1 {
		t.Fatalf("gm blind search: %d", r.total())
	}
	rec, err := st.Read(context.Background(), "Patient", id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(rec.Body, []byte("SM4-GCM")) || !bytes.Contains(rec.Body, []byte("HMAC-SM3")) || bytes.Contains(rec.Body, []byte("王")) {
		t.Fatalf("gm stored form: %s", rec.Body)
	}
}

func TestKeyOwner(t *testing.T) {
	cases := []struct{ res, want string }{
		{`{"resourceType":"Patient","id":"p1"}`, "p1"},
		{`{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"performer":[{"reference":"Patient/p2"}]}`, "p1"},
		{`{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"performer":[{"reference":"Patient/p2"}]}`, "p2"},
		{`{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"Group/g"}}`, "phix.Observation"},
		{`{"resourceType":"Group","id":"g","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/a"}},{"entity":{"reference":"Patient/b"}}]}`, "phix.Group"},
		{`{"resourceType":"Group","id":"g","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/a"}}]}`, "a"},
		{`{"resourceType":"Organization","id":"org","name":"x"}`, "phix.Organization"},
		{`{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/phix.Organization"}}`, "phix.Observation"},
	}
	for _, c := range cases {
		r, err := fhir.Parse([]byte(c.res), fhir.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := keyOwner(r); got != c.want {
			t.Errorf("keyOwner(%s) = %q, want %q", c.res, got, c.want)
		}
	}
}

// TestProtectEncryptJobPersists: $encrypt jobs live in the store's job
// table: a job a stopped process left running is resumed by the next
// server on the store and finishes from its cursor; a job's status is
// readable through another server; a job another process holds the lease
// of is not run twice.
func TestProtectEncryptJobPersists(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t)
	jd, ok := st.(jobDocs)
	if !ok {
		t.Fatalf("%T keeps no job table", st)
	}
	a := newEnv(t, st)
	for i := 0; i < 7; i++ {
		a.do("POST", "/Patient", patient("Restart", itoa(i))).want(t, 201)
	}
	put := func(id string, d encryptDoc) {
		t.Helper()
		d.Kind, d.ID, d.Types, d.Started = encryptKind, id, []string{"Patient"}, time.Now()
		b, _ := json.Marshal(d)
		if err := jd.PutJob(ctx, id, b); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(e *env, loc string) *resp {
		t.Helper()
		for i := 0; i < 300; i++ {
			r := e.do("GET", loc, nil).want(t, 200)
			if param(r, "status") != "running" {
				return r
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("job did not finish")
		return nil
	}
	// Interrupted after its first resource, as a killed process leaves it.
	put("job-restart", encryptDoc{Status: "running", Total: 7, Done: 1, Offset: 1, CountedTotal: true})
	b := newEnv(t, st) // the restarted server
	if r := wait(b, "/$encrypt?job=job-restart"); param(r, "status") != "completed" || param(r, "done") != "7" || param(r, "total") != "7" {
		t.Fatalf("resumed job: %s", r.body)
	}
	// A job run by a, read through b.
	loc := a.do("POST", "/Patient/$encrypt", nil).want(t, 202).header.Get("Content-Location")
	wait(a, loc)
	_, q, _ := strings.Cut(loc, "?")
	if r := b.do("GET", "/$encrypt?"+q, nil).want(t, 200); param(r, "status") != "completed" || param(r, "done") != "7" {
		t.Fatalf("job read through another server: %s", r.body)
	}
	// Held by a live process elsewhere: neither resumed nor restartable here.
	put("job-held", encryptDoc{Status: "running", Total: 7})
	if ok, err := jd.LeaseJob(ctx, "job-held", "another-process", time.Now(), time.Now().Add(time.Hour)); err != nil || !ok {
		t.Fatalf("lease: %v %v", ok, err)
	}
	c := newEnv(t, st)
	time.Sleep(200 * time.Millisecond)
	if r := c.do("GET", "/$encrypt?job=job-held", nil).want(t, 200); param(r, "status") != "running" || param(r, "done") != "0" {
		t.Fatalf("a job leased elsewhere ran here: %s", r.body)
	}
	c.do("POST", "/$encrypt?job=job-held", nil).want(t, 409)
}
