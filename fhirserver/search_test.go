package fhirserver

import (
	"net/url"
	"strings"
	"testing"
)

func TestSearchPaging(t *testing.T) {
	forEachBackend(t, testSearchPaging)
}

func testSearchPaging(t *testing.T, e *env) {
	want := map[string]bool{}
	for i := 0; i < 7; i++ {
		want[e.do("POST", "/Patient", patient("Page", string(rune('a'+i)))).want(t, 201).str("id")] = true
	}
	e.do("POST", "/Patient", patient("Other", "z")).want(t, 201)
	first := e.do("GET", "/Patient?family=Page&_count=3", nil).want(t, 200)
	if first.total() != 7 || len(first.entries()) != 3 || first.str("type") != "searchset" {
		t.Fatalf("first page: %s", first.body)
	}
	if first.link("previous") != "" || first.link("next") == "" || first.link("first") == "" {
		t.Fatalf("first page links: %v", first.obj["link"])
	}
	// the same query gives the same links (stable).
	again := e.do("GET", "/Patient?_count=3&family=Page", nil).want(t, 200)
	if again.link("self") != first.link("self") || again.link("next") != first.link("next") {
		t.Fatalf("links not stable: %s vs %s", again.link("next"), first.link("next"))
	}
	got := map[string]bool{}
	page := first
	for n := 0; ; n++ {
		if n > 5 {
			t.Fatal("paging does not end")
		}
		for _, en := range page.entries() {
			id := en["resource"].(map[string]any)["id"].(string)
			if got[id] {
				t.Fatalf("id %s on two pages", id)
			}
			got[id] = true
			if en["search"].(map[string]any)["mode"] != "match" {
				t.Fatalf("mode: %v", en["search"])
			}
		}
		next := page.link("next")
		if next == "" {
			break
		}
		page = e.do("GET", next, nil).want(t, 200)
		if page.link("previous") == "" {
			t.Fatalf("page without previous: %v", page.obj["link"])
		}
	}
	if len(got) != 7 {
		t.Fatalf("paged through %d of 7", len(got))
	}
	for id := range want {
		if !got[id] {
			t.Fatalf("missing %s", id)
		}
	}
	// _total=none still pages correctly.
	none := e.do("GET", "/Patient?family=Page&_count=5&_total=none", nil).want(t, 200)
	if none.total() != -1 || len(none.entries()) != 5 || none.link("next") == "" {
		t.Fatalf("_total=none: %s", none.body)
	}
	last := e.do("GET", none.link("next"), nil).want(t, 200)
	if len(last.entries()) != 2 || last.link("next") != "" {
		t.Fatalf("_total=none last page: %s", last.body)
	}
	// _summary=count and _count=0.
	cnt := e.do("GET", "/Patient?family=Page&_summary=count", nil).want(t, 200)
	if cnt.total() != 7 || len(cnt.entries()) != 0 {
		t.Fatalf("_summary=count: %s", cnt.body)
	}
	// POST _search with a form body equals GET.
	ps := e.do("POST", "/Patient/_search", "family=Page&_count=3", "Content-Type", "application/x-www-form-urlencoded").want(t, 200)
	if ps.total() != 7 || len(ps.entries()) != 3 {
		t.Fatalf("POST _search: %s", ps.body)
	}
	e.do("POST", "/Patient/_search", `{"family":"x"}`, "Content-Type", "application/json").want(t, 415)
	// _sort on an indexed parameter.
	if e.protected {
		// given is encrypted: its blind tokens carry no order.
		e.do("GET", "/Patient?family=Page&_sort=-given&_count=7", nil).want(t, 422).wantCode(t, "PHI-6006")
		return
	}
	sorted := e.do("GET", "/Patient?family=Page&_sort=-given&_count=7", nil).want(t, 200)
	ents := sorted.entries()
	firstGiven := ents[0]["resource"].(map[string]any)["name"].([]any)[0].(map[string]any)["given"].([]any)[0]
	if firstGiven != "g" {
		t.Fatalf("_sort=-given first is %v", firstGiven)
	}
}

func TestSearchShapingAndIncludes(t *testing.T) {
	forEachBackend(t, testSearchShaping)
}

func testSearchShaping(t *testing.T, e *env) {
	pid := e.do("POST", "/Patient", map[string]any{
		"resourceType": "Patient", "name": []any{map[string]any{"family": "Shape"}}, "gender": "male",
		"text":      map[string]any{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml">Shape</div>`},
		"telecom":   []any{map[string]any{"system": "phone", "value": "555-0100"}},
		"birthDate": "1980-02-03",
	}).want(t, 201).str("id")
	oid := e.do("POST", "/Observation", map[string]any{
		"resourceType": "Observation", "status": "final", "code": map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8302-2"}}},
		"subject": map[string]any{"reference": "Patient/" + pid},
	}).want(t, 201).str("id")
	// _elements keeps what was asked (plus id/meta) and tags SUBSETTED.
	el := e.do("GET", "/Patient?_id="+pid+"&_elements=gender", nil).want(t, 200)
	res := el.entries()[0]["resource"].(map[string]any)
	if res["gender"] != "male" || res["name"] != nil || res["birthDate"] != nil || !subsetted(res) {
		t.Fatalf("_elements: %v", res)
	}
	// _summary=true keeps summary elements only (name yes, text no).
	sm := e.do("GET", "/Patient?_id="+pid+"&_summary=true", nil).want(t, 200).entries()[0]["resource"].(map[string]any)
	if sm["name"] == nil || sm["text"] != nil || !subsetted(sm) {
		t.Fatalf("_summary=true: %v", sm)
	}
	tx := e.do("GET", "/Patient?_id="+pid+"&_summary=text", nil).want(t, 200).entries()[0]["resource"].(map[string]any)
	if tx["text"] == nil || tx["name"] != nil {
		t.Fatalf("_summary=text: %v", tx)
	}
	dt := e.do("GET", "/Patient?_id="+pid+"&_summary=data", nil).want(t, 200).entries()[0]["resource"].(map[string]any)
	if dt["text"] != nil || dt["telecom"] == nil {
		t.Fatalf("_summary=data: %v", dt)
	}
	// _summary on read.
	rd := e.do("GET", "/Patient/"+pid+"?_elements=birthDate", nil).want(t, 200)
	if rd.obj["gender"] != nil || rd.obj["birthDate"] == nil {
		t.Fatalf("read _elements: %s", rd.body)
	}
	// _include and _revinclude.
	inc := e.do("GET", "/Observation?_id="+oid+"&_include=Observation:subject", nil).want(t, 200)
	modes := map[string]string{}
	for _, en := range inc.entries() {
		r := en["resource"].(map[string]any)
		modes[r["resourceType"].(string)] = en["search"].(map[string]any)["mode"].(string)
	}
	if modes["Observation"] != "match" || modes["Patient"] != "include" || inc.total() != 1 {
		t.Fatalf("_include: %s", inc.body)
	}
	rev := e.do("GET", "/Patient?_id="+pid+"&_revinclude=Observation:subject", nil).want(t, 200)
	if len(rev.entries()) != 2 || rev.total() != 1 {
		t.Fatalf("_revinclude: %s", rev.body)
	}
	// :iterate: from one Observation to its Patient, then (iterating) to
	// the Patient's other Observations, each resource once.
	oid2 := e.do("POST", "/Observation", map[string]any{
		"resourceType": "Observation", "status": "final", "code": map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "8867-4"}}},
		"subject": map[string]any{"reference": "Patient/" + pid},
	}).want(t, 201).str("id")
	it := e.do("GET", "/Observation?_id="+oid+"&_include=Observation:subject&_revinclude:iterate=Observation:subject", nil,
		"Prefer", "handling=strict").want(t, 200)
	got := map[string]string{}
	for _, en := range it.entries() {
		r := en["resource"].(map[string]any)
		got[r["resourceType"].(string)+"/"+r["id"].(string)] = en["search"].(map[string]any)["mode"].(string)
	}
	if len(got) != 3 || len(it.entries()) != 3 || got["Observation/"+oid] != "match" || got["Patient/"+pid] != "include" ||
		got["Observation/"+oid2] != "include" || it.total() != 1 {
		t.Fatalf(":iterate: %s", it.body)
	}
	e.do("DELETE", "/Observation/"+oid2, nil).want(t, 204)
	// Chained and reverse-chained parameters reach the store unchanged.
	ch := e.do("GET", "/Observation?subject:Patient.birthdate=1980-02-03&_id="+oid, nil, "Prefer", "handling=strict").want(t, 200)
	if ch.total() != 1 {
		t.Fatalf("chain: %s", ch.body)
	}
	hs := e.do("GET", "/Patient?_has:Observation:subject:code=http://loinc.org|8302-2", nil, "Prefer", "handling=strict").want(t, 200)
	if hs.total() != 1 || hs.entries()[0]["resource"].(map[string]any)["id"] != pid {
		t.Fatalf("_has: %s", hs.body)
	}
	// lenient: unknown parameter ignored with a warning entry.
	lr := e.do("GET", "/Patient?_id="+pid+"&shoe=12", nil).want(t, 200)
	ents := lr.entries()
	last := ents[lr.total()]
	if last["search"].(map[string]any)["mode"] != "outcome" || last["resource"].(map[string]any)["resourceType"] != "OperationOutcome" {
		t.Fatalf("lenient warning entry: %s", lr.body)
	}
	if lr.total() != 1 {
		t.Fatalf("lenient total %d", lr.total())
	}
	// self link does not carry the value-less server params but does carry the query.
	self, _ := url.Parse(lr.link("self"))
	if self.Query().Get("_id") != pid {
		t.Fatalf("self link %s", lr.link("self"))
	}
	// system-level search by _type.
	sys := e.do("GET", "?_type=Patient,Observation&_count=10", nil).want(t, 200)
	if sys.total() != 2 {
		t.Fatalf("system search: %s", sys.body)
	}
	if all := e.do("GET", "?_count=1", nil).want(t, 200); all.total() != 2 || all.link("next") == "" {
		t.Fatalf("system search without _type: %s", all.body)
	}
	e.do("GET", "/_search?_type=Patient", nil).want(t, 405)
	if ps := e.do("POST", "/_search", "_type=Patient", "Content-Type", "application/x-www-form-urlencoded").want(t, 200); ps.total() != 1 {
		t.Fatalf("POST system _search: %s", ps.body)
	}
	// modifiers and prefixes through HTTP.
	for q, n := range map[string]int{
		"/Patient?birthdate=1980":                   1,
		"/Patient?birthdate=gt1980-02-03":           0,
		"/Patient?birthdate=ge1980-02-03":           1,
		"/Patient?birthdate=lt1980":                 0,
		"/Patient?family:exact=shape":               0,
		"/Patient?family:exact=Shape":               1,
		"/Patient?gender:not=male&_id=" + pid:       0,
		"/Patient?email:missing=true&_id=" + pid:    1,
		"/Patient?gender=male,female&_id=" + pid:    1,
		"/Patient?family=Shape&gender=female":       0,
		"/Observation?subject:identifier=a|b":       0,
		"/Observation?subject=Patient/" + pid:       1,
		"/Observation?code=http://loinc.org|8302-2": 1,
		"/Patient?_lastUpdated=gt2000-01-01":        1,
	} {
		if r := e.do("GET", q, nil).want(t, 200); r.total() != n {
			t.Errorf("%s: total %d, want %d", q, r.total(), n)
		}
	}
	if e.protected {
		// :contains cannot run on blind tokens (docs/searchable-encryption.md).
		e.do("GET", "/Patient?family:contains=hap", nil).want(t, 422).wantCode(t, "PHI-6006")
	} else if r := e.do("GET", "/Patient?family:contains=hap", nil).want(t, 200); r.total() != 1 {
		t.Errorf("family:contains: total %d", r.total())
	}
}

func subsetted(res map[string]any) bool {
	meta, _ := res["meta"].(map[string]any)
	tags, _ := meta["tag"].([]any)
	for _, t := range tags {
		if t.(map[string]any)["code"] == "SUBSETTED" {
			return true
		}
	}
	return false
}

func TestHistory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		id := e.do("POST", "/Patient", patient("Hist", "A")).want(t, 201).str("id")
		p := patient("Hist", "B")
		p["id"] = id
		u := e.do("PUT", "/Patient/"+id, p).want(t, 200)
		mid := u.str("meta", "lastUpdated")
		e.do("POST", "/Observation", map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"}}).want(t, 201)
		e.do("DELETE", "/Patient/"+id, nil).want(t, 204)

		sys := e.do("GET", "/_history", nil).want(t, 200)
		if sys.str("type") != "history" || sys.total() != 4 {
			t.Fatalf("system history: %s", sys.body)
		}
		typ := e.do("GET", "/Patient/_history", nil).want(t, 200)
		if typ.total() != 3 {
			t.Fatalf("type history total %d", typ.total())
		}
		// _since is inclusive of versions at or after the instant.
		since := e.do("GET", "/Patient/_history?_since="+url.QueryEscape(mid), nil).want(t, 200)
		if since.total() != 2 {
			t.Fatalf("_since: %s", since.body)
		}
		// _at gives the version current at that instant.
		at := e.do("GET", "/Patient/"+id+"/_history?_at="+url.QueryEscape(mid), nil).want(t, 200)
		if at.total() < 1 || at.entries()[0]["resource"].(map[string]any)["meta"].(map[string]any)["versionId"] != "2" {
			t.Fatalf("_at: %s", at.body)
		}
		// _count pages with links.
		pg := e.do("GET", "/_history?_count=3", nil).want(t, 200)
		if len(pg.entries()) != 3 || pg.link("next") == "" {
			t.Fatalf("history paging: %s", pg.body)
		}
		nx := e.do("GET", pg.link("next"), nil).want(t, 200)
		if len(nx.entries()) != 1 || nx.link("next") != "" || nx.link("previous") == "" {
			t.Fatalf("history page 2: %s", nx.body)
		}
		en := sys.entries()[0]
		resp := en["response"].(map[string]any)
		if !strings.HasPrefix(resp["etag"].(string), `W/"`) || en["request"].(map[string]any)["method"] != "DELETE" {
			t.Fatalf("history entry: %v", en)
		}
	})
}

// TestSearchUnprotected runs the search tests with protection off (the
// benchmarks' baseline): the features blind tokens cannot offer (:contains,
// _sort on encrypted parameters) work on clear values.
func TestSearchUnprotected(t *testing.T) {
	for name, fn := range map[string]func(*testing.T, *env){"paging": testSearchPaging, "shaping": testSearchShaping} {
		t.Run(name, func(t *testing.T) { fn(t, newEnv(t, openSQLite(t), noProtect)) })
	}
}
