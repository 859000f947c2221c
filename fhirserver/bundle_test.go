package fhirserver

import (
	"strings"
	"testing"
)

func entry(fullURL string, res map[string]any, method, url string, extra ...string) map[string]any {
	req := map[string]any{"method": method, "url": url}
	for i := 0; i+1 < len(extra); i += 2 {
		req[extra[i]] = extra[i+1]
	}
	e := map[string]any{"request": req}
	if fullURL != "" {
		e["fullUrl"] = fullURL
	}
	if res != nil {
		e["resource"] = res
	}
	return e
}

func bundleOf(typ string, entries ...map[string]any) map[string]any {
	es := make([]any, len(entries))
	for i, e := range entries {
		es[i] = e
	}
	return map[string]any{"resourceType": "Bundle", "type": typ, "entry": es}
}

func responseOf(t *testing.T, r *resp, i int) map[string]any {
	t.Helper()
	ents := r.entries()
	if i >= len(ents) {
		t.Fatalf("no entry %d: %s", i, r.body)
	}
	return ents[i]["response"].(map[string]any)
}

func TestTransaction(t *testing.T) {
	forEachBackend(t, testTransaction)
}

func testTransaction(t *testing.T, e *env) {
	org := map[string]any{"resourceType": "Organization", "name": "Clinic", "identifier": []any{map[string]any{"system": "urn:org", "value": "o1"}}}
	e.do("POST", "/Organization", org).want(t, 201)
	pat := patient("Txn", "Ref")
	pat["managingOrganization"] = map[string]any{"reference": "Organization?identifier=urn:org|o1"}
	obs := map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "t"},
		"subject": map[string]any{"reference": "urn:uuid:9b1c7f0e-1111-4222-8333-444455556666"}}
	obs2 := map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "u"},
		"subject": map[string]any{"reference": "urn:oid:1.2.3.4"}}
	pat2 := patient("Txn", "Oid")
	r := e.do("POST", "", bundleOf("transaction",
		entry("", obs, "POST", "Observation"),
		entry("urn:uuid:9b1c7f0e-1111-4222-8333-444455556666", pat, "POST", "Patient"),
		entry("urn:oid:1.2.3.4", pat2, "POST", "Patient"),
		entry("", obs2, "POST", "Observation"),
	)).want(t, 200)
	if r.str("type") != "transaction-response" || len(r.entries()) != 4 {
		t.Fatalf("response: %s", r.body)
	}
	// responses are in request order, each with status, location, etag, lastModified.
	loc := map[int]string{}
	for i := range 4 {
		resp := responseOf(t, r, i)
		if !strings.HasPrefix(resp["status"].(string), "201") || resp["etag"] != `W/"1"` || resp["lastModified"] == nil {
			t.Fatalf("entry %d response %v", i, resp)
		}
		loc[i] = resp["location"].(string)
	}
	if !strings.HasPrefix(loc[0], "Observation/") || !strings.HasPrefix(loc[1], "Patient/") {
		t.Fatalf("locations %v", loc)
	}
	patID := strings.Split(loc[1], "/")[1]
	got := e.do("GET", "/"+strings.TrimSuffix(loc[0], "/_history/1"), nil).want(t, 200)
	if ref := got.obj["subject"].(map[string]any)["reference"]; ref != "Patient/"+patID {
		t.Fatalf("urn:uuid not resolved: %v", ref)
	}
	got2 := e.do("GET", "/"+strings.TrimSuffix(loc[3], "/_history/1"), nil).want(t, 200)
	if ref := got2.obj["subject"].(map[string]any)["reference"]; !strings.HasPrefix(ref.(string), "Patient/") || ref == "Patient/"+patID {
		t.Fatalf("urn:oid not resolved: %v", ref)
	}
	gp := e.do("GET", "/Patient/"+patID, nil).want(t, 200)
	if ref := gp.obj["managingOrganization"].(map[string]any)["reference"].(string); !strings.HasPrefix(ref, "Organization/") {
		t.Fatalf("conditional reference not resolved: %v", ref)
	}

	// Unresolvable urn:uuid and conditional references fail the whole Bundle.
	bad := map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "t"},
		"subject": map[string]any{"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}}
	before := stored(t, e.store)
	e.do("POST", "", bundleOf("transaction", entry("", patient("Z", "Z"), "POST", "Patient"), entry("", bad, "POST", "Observation"))).want(t, 400)
	pat3 := patient("Txn", "Cond")
	pat3["managingOrganization"] = map[string]any{"reference": "Organization?identifier=urn:org|missing"}
	e.do("POST", "", bundleOf("transaction", entry("", pat3, "POST", "Patient"))).want(t, 400)
	e.do("POST", "/Organization", org).want(t, 201) // now two match
	pat3["managingOrganization"] = map[string]any{"reference": "Organization?identifier=urn:org|o1"}
	e.do("POST", "", bundleOf("transaction", entry("", pat3, "POST", "Patient"))).want(t, 412)
	if after := stored(t, e.store); after != before+1 {
		t.Fatalf("failed transactions stored %d versions", after-before-1)
	}
}

// TestTransactionOrder checks R4's processing order: DELETE, POST, PUT, GET,
// whatever the order of the entries.
func TestTransactionOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		old := patient("Order", "Old")
		old["id"] = "order-old"
		e.do("PUT", "/Patient/order-old", old).want(t, 201)
		upd := patient("Order", "Put")
		upd["id"] = "order-put"
		r := e.do("POST", "", bundleOf("transaction",
			entry("", nil, "GET", "Patient?family=Order&_count=10"),
			entry("", upd, "PUT", "Patient/order-put"),
			entry("", patient("Order", "Post"), "POST", "Patient", "ifNoneExist", "identifier=urn:test:mrn|Order-Post"),
			entry("", nil, "DELETE", "Patient/order-old"),
		)).want(t, 200)
		// the GET ran last: it sees the PUT and the POST, not the deleted one.
		search := r.entries()[0]["resource"].(map[string]any)
		if search["total"].(float64) != 2 {
			t.Fatalf("GET did not run last: %v", search)
		}
		if s := responseOf(t, r, 3)["status"].(string); !strings.HasPrefix(s, "204") {
			t.Fatalf("delete status %s", s)
		}
		// a read of a missing resource, or an invalid search, fails the transaction.
		before := stored(t, e.store)
		e.do("POST", "", bundleOf("transaction", entry("", patient("Order", "Lost"), "POST", "Patient"), entry("", nil, "GET", "Patient/no-such"))).want(t, 404)
		e.do("POST", "", bundleOf("transaction", entry("", patient("Order", "Lost"), "POST", "Patient"), entry("", nil, "GET", "Patient?birthdate=notadate"))).want(t, 400)
		if after := stored(t, e.store); after != before {
			t.Fatal("a failed transaction stored something")
		}
		// a read entry sees the transaction's own write.
		rd := e.do("POST", "", bundleOf("transaction", entry("", nil, "GET", "Patient/order-put"), entry("", upd, "PUT", "Patient/order-put"))).want(t, 200)
		if v := rd.entries()[0]["resource"].(map[string]any)["meta"].(map[string]any)["versionId"]; v != "2" {
			t.Fatalf("read entry saw version %v", v)
		}
		// ifNoneExist matches on a second run; ifMatch is checked.
		r2 := e.do("POST", "", bundleOf("transaction",
			entry("", patient("Order", "Post"), "POST", "Patient", "ifNoneExist", "identifier=urn:test:mrn|Order-Post"),
			entry("", upd, "PUT", "Patient/order-put", "ifMatch", `W/"2"`),
		)).want(t, 200)
		if s := responseOf(t, r2, 0)["status"].(string); !strings.HasPrefix(s, "200") {
			t.Fatalf("ifNoneExist status %s", s)
		}
		if s := responseOf(t, r2, 1)["etag"]; s != `W/"3"` {
			t.Fatalf("ifMatch update etag %v", s)
		}
		e.do("POST", "", bundleOf("transaction", entry("", upd, "PUT", "Patient/order-put", "ifMatch", `W/"1"`))).want(t, 412)
		// the same resource twice in one transaction is refused.
		e.do("POST", "", bundleOf("transaction", entry("", upd, "PUT", "Patient/order-put"), entry("", nil, "DELETE", "Patient/order-put"))).want(t, 400)
		// Prefer: return=representation puts the resources in the response.
		rep := e.do("POST", "", bundleOf("transaction", entry("", patient("Order", "Rep"), "POST", "Patient")), "Prefer", "return=representation").want(t, 200)
		if rep.entries()[0]["resource"] == nil {
			t.Fatalf("representation: %s", rep.body)
		}
	})
}

func TestBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		good := patient("Batch", "Good")
		r := e.do("POST", "", bundleOf("batch",
			entry("", good, "POST", "Patient"),
			entry("", map[string]any{"resourceType": "Patient", "gender": "robot"}, "POST", "Patient"),
			entry("", nil, "GET", "Patient/does-not-exist"),
			entry("", nil, "DELETE", "Patient?nosuch=1"),
			entry("", nil, "GET", "Patient?family=Batch"),
		)).want(t, 200)
		if r.str("type") != "batch-response" {
			t.Fatalf("type %s", r.str("type"))
		}
		want := []string{"201", "400", "404", "400", "200"}
		for i, w := range want {
			if s := responseOf(t, r, i)["status"].(string); !strings.HasPrefix(s, w) {
				t.Fatalf("entry %d status %s, want %s: %s", i, s, w, r.body)
			}
		}
		if responseOf(t, r, 1)["outcome"] == nil {
			t.Fatal("failed batch entry without an outcome")
		}
		if tot := r.entries()[4]["resource"].(map[string]any)["total"].(float64); tot != 1 {
			t.Fatalf("batch search total %v", tot)
		}
	})
}

func TestBundleLimits(t *testing.T) {
	e := newEnv(t, openSQLite(t), func(c *Config) { c.MaxBundleEntries = 10000 })
	entries := make([]map[string]any, 10001)
	for i := range entries {
		entries[i] = entry("", nil, "GET", "Patient/x")
	}
	if got := e.do("POST", "", bundleOf("batch", entries...)).want(t, 413).errCode(); got != string(CodeTooManyEntries) {
		t.Fatalf("code %q", got)
	}
	if _, err := New(Config{Store: e.store, Auth: &StaticTokens{}, MaxBundleEntries: 500}); err == nil {
		t.Fatal("a bundle cap below 10,000 was accepted")
	}
	// 10,000 entries are accepted.
	big := make([]map[string]any, 10000)
	for i := range big {
		big[i] = entry("", map[string]any{"resourceType": "Basic", "code": map[string]any{"text": "b"}}, "POST", "Basic")
	}
	r := e.do("POST", "", bundleOf("transaction", big...)).want(t, 200)
	if len(r.entries()) != 10000 {
		t.Fatalf("%d entries", len(r.entries()))
	}
}

// TestTransactionConditionalCreateTwice: two entries whose ifNoneExist match
// the same stored resource write nothing, so they do not clash.
func TestTransactionConditionalCreateTwice(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	org := map[string]any{"resourceType": "Organization", "name": "Shared", "identifier": []any{map[string]any{"system": "urn:org", "value": "shared"}}}
	id := e.do("POST", "/Organization", org).want(t, 201).str("id")
	r := e.do("POST", "", bundleOf("transaction",
		entry("urn:uuid:a", org, "POST", "Organization", "ifNoneExist", "identifier=urn:org|shared"),
		entry("urn:uuid:b", org, "POST", "Organization", "ifNoneExist", "identifier=urn:org|shared"),
	)).want(t, 200)
	for i := range 2 {
		resp := responseOf(t, r, i)
		if !strings.HasPrefix(resp["status"].(string), "200") || !strings.Contains(resp["location"].(string), id) {
			t.Fatalf("entry %d: %v", i, resp)
		}
	}
}
