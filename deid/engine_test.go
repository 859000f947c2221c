package deid

import (
	"context"
	"strings"
	"testing"

	"phix/suite"
)

const obsTmpl = `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},
 "subject":{"reference":"Patient/PID"},"effectiveDateTime":"2020-03-04T10:11:12+08:00","issued":"2020-03-04T10:11:12.000Z"}`

func TestDateShiftConsistentPerPatient(t *testing.T) {
	e := engine(t, "expert", testKeys(t, suite.Intl, 1))
	shift := func(pid string) string {
		r, err := e.Resource(context.Background(), mustParse(t, strings.ReplaceAll(obsTmpl, "PID", pid)))
		if err != nil {
			t.Fatal(err)
		}
		return r.Object["effectiveDateTime"].(string)
	}
	a1, a2, b := shift("a"), shift("a"), shift("b")
	if a1 != a2 {
		t.Fatal("same patient, different shift")
	}
	if a1 == b {
		t.Fatal("different patients, same shifted date (keyed offsets should differ)")
	}
	if !strings.HasSuffix(a1, "T10:11:12+08:00") {
		t.Fatal("time and zone not kept")
	}
	ps := e.Pseudonymizer()
	if d := ps.DateShiftDays("a"); d == 0 || d < -180 || d > 180 {
		t.Fatalf("offset %d outside the profile range", d)
	}
}

func TestShiftAndTruncatePrecision(t *testing.T) {
	cases := []struct{ in, shifted, year string }{
		{"1980", "1980", "1980"},
		{"1980-05", "1980-05", "1980"},
		{"1980-05-17", "1980-05-27", "1980"},
		{"1980-12-30T23:59:59Z", "1981-01-09T23:59:59Z", "1980"},
	}
	for _, c := range cases {
		if got, _ := shiftDate(c.in, 10); got != c.shifted {
			t.Errorf("shift %s: %s want %s", c.in, got, c.shifted)
		}
		if got, _ := truncateDate(c.in, false, false); got != c.year {
			t.Errorf("year %s: %s", c.in, got)
		}
	}
	if got, _ := truncateDate("2020-03-04T10:11:12.000Z", false, true); got != "2020-01-01T00:00:00Z" {
		t.Errorf("instant year: %s", got)
	}
	if _, ok := shiftDate("20x0-01-01", 1); ok {
		t.Error("malformed date accepted")
	}
}

func TestPseudonymsStableAndKeyed(t *testing.T) {
	k1, k2 := testKeys(t, suite.Intl, 1), testKeys(t, suite.Intl, 2)
	p1, _ := NewPseudonymizer(k1, DateShiftRange{})
	p1b, _ := NewPseudonymizer(testKeys(t, suite.Intl, 1), DateShiftRange{})
	p2, _ := NewPseudonymizer(k2, DateShiftRange{})
	pg, _ := NewPseudonymizer(testKeys(t, suite.GM, 1), DateShiftRange{})
	if p1.ID("x") != p1b.ID("x") || p1.Hash("x", "hex") != p1b.Hash("x", "hex") || p1.UID("1.2.3") != p1b.UID("1.2.3") {
		t.Fatal("not stable under the same key")
	}
	if p1.ID("x") == p2.ID("x") || p1.Hash("x", "hex") == p2.Hash("x", "hex") || p1.Hash("x", "hex") == pg.Hash("x", "hex") {
		t.Fatal("not keyed")
	}
	if !strings.HasPrefix(p1.UID("1.2.3"), "2.25.") {
		t.Fatal("UID not a 2.25 OID")
	}
}

func TestMethods(t *testing.T) {
	pat := `{"resourceType":"Patient","id":"p1","birthDate":"1930-06-01","gender":"female",
	 "name":[{"family":"Zhang","given":["Wei"]}],
	 "identifier":[{"system":"urn:oid:2.16.156.10011.1.1","value":"11010519491231002X"},{"system":"urn:mrn","value":"MRN-123456"}],
	 "telecom":[{"system":"phone","value":"13800138000"}],
	 "address":[{"line":["朝阳路1号"],"city":"北京市","district":"朝阳区","state":"北京","postalCode":"100020"}],
	 "text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Zhang Wei, phone 13800138000</div>"}}`
	cases := []struct {
		profile string
		check   func(t *testing.T, out map[string]any, text string)
	}{
		{"china", func(t *testing.T, out map[string]any, text string) {
			ids := out["identifier"].([]any)
			rid := ids[0].(map[string]any)["value"].(string)
			if len(rid) != 18 || !ValidResidentID(rid) || rid == "11010519491231002X" {
				t.Error("resident ID not FF1-encrypted with a valid check digit")
			}
			if strings.Contains(text, "朝阳路") || strings.Contains(text, "100020") || !strings.Contains(text, "朝阳区") {
				t.Error("address not cut at district level")
			}
			if strings.Contains(text, "Zhang") || strings.Contains(text, "13800138000") {
				t.Error("name or phone left (narrative included)")
			}
			if out["birthDate"] != "1936" { // 1930 is over 89 in 2026: top-coded
				t.Errorf("birth year %v", out["birthDate"])
			}
		}},
		{"safe-harbor", func(t *testing.T, out map[string]any, text string) {
			if out["birthDate"] != "1936" {
				t.Errorf("age over 89 not aggregated: %v", out["birthDate"])
			}
			if _, ok := out["identifier"]; ok {
				t.Error("identifiers kept")
			}
			if !strings.Contains(text, "[NAME]") {
				t.Error("narrative findings not replaced")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.profile, func(t *testing.T) {
			e := engine(t, c.profile, testKeys(t, suite.GM, 3))
			out, err := e.Resource(context.Background(), mustParse(t, pat))
			if err != nil {
				t.Fatal(err)
			}
			data, _ := jsonText(out)
			c.check(t, out.Object, data)
		})
	}
}

func TestRuleMethodsTable(t *testing.T) {
	obs := `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"c"},
	 "valueQuantity":{"value":120.5,"unit":"mmHg"},"note":[{"text":"call 617-253-1000 today"}]}`
	one := func(rule string) map[string]any {
		p, err := ParseProfile([]byte(`{"name":"t","rules":[` + rule + `]}`))
		if err != nil {
			t.Fatal(err)
		}
		e, err := New(p, testKeys(t, suite.Intl, 1), Options{Now: fixedNow})
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.Resource(context.Background(), mustParse(t, obs))
		if err != nil {
			t.Fatal(err)
		}
		return out.Object
	}
	vq := func(o map[string]any) any { return o["valueQuantity"].(map[string]any)["value"] }
	note := func(o map[string]any) any { return o["note"].([]any)[0].(map[string]any)["text"] }
	if v := vq(one(`{"path":"Observation.value.value","method":"perturb","range":5}`)); v == "120.5" {
		t.Error("perturb left the value")
	} else if a, b := vq(one(`{"path":"Observation.value.value","method":"perturb","range":5}`)), v; a != b {
		t.Error("perturb not deterministic")
	}
	if v := vq(one(`{"path":"Observation.value.value","method":"generalize","to":"ageBand","band":10}`)); string(v.(jsonNumber)) != "90" { // above the default top code
		t.Errorf("ageBand: %v", v)
	}
	if n := note(one(`{"type":"Annotation","method":"redact","scan":true}`)); n != "call [PHONE] today" {
		t.Errorf("scan: %v", n)
	}
	if n := note(one(`{"path":"Observation.note.text","method":"substitute","value":"x"}`)); n != "x" {
		t.Errorf("substitute: %v", n)
	}
	if n := note(one(`{"path":"Observation.note.text","method":"cryptoHash"}`)); len(n.(string)) != 64 {
		t.Errorf("cryptoHash: %v", n)
	}
	if n := note(one(`{"path":"Observation.note.text","method":"encrypt"}`)); !strings.HasPrefix(n.(string), "enc:intl:") {
		t.Errorf("encrypt: %v", n)
	}
	if _, ok := one(`{"path":"Observation.note","method":"redact"}`)["note"]; ok {
		t.Error("redact left the note")
	}
	if got := one(`{"path":"Observation.status","method":"redact"}`); got["_status"] == nil {
		t.Error("required element removed without data-absent-reason")
	}
	p, _ := ParseProfile([]byte(`{"name":"t","rules":[{"path":"Observation.where(status='final')","method":"suppress"}]}`))
	e, _ := New(p, testKeys(t, suite.Intl, 1), Options{})
	if out, err := e.Resource(context.Background(), mustParse(t, obs)); err != nil || out != nil {
		t.Error("suppress did not drop the resource")
	}
	for _, z := range [][2]string{{"02139", "021"}, {"03601", "000"}, {"89301-1234", "000"}} {
		if got, _ := ZIP3(z[0]); got != z[1] {
			t.Errorf("ZIP3(%s)=%s", z[0], got)
		}
	}
}

func TestBadRulesHavePositions(t *testing.T) {
	cases := []struct {
		src       string
		rule, ln  int
		substring string
	}{
		{"{\"name\":\"t\",\n\"rules\":[\n{\"path\":\"Patient.name\",\"method\":\"keep\"},\n{\"path\":\"Patient.name.where(\",\"method\":\"redact\"}]}", 1, 4, "FHIRPath"},
		{"{\"name\":\"t\",\"rules\":[\n{\"path\":\"Patient.name\",\"method\":\"scramble\"}]}", 0, 2, "unknown method"},
		{"{\"name\":\"t\",\"rules\":[{\"path\":\"Patient.name\",\"method\":\"generalize\",\"to\":\"decade\"}]}", 0, 1, "year"},
		{"{\"name\":\"t\",\"rules\":[{\"path\":\"Patient.name\",\"method\":\"redact\",\"band\":3}]}", 0, 1, "not valid"},
		{"{\"name\":\"t\",\"rules\":[\n{\"path\":\"a\",\"method\":\"keep\",\"bogus\":1}]}", -1, 0, "unknown field"},
	}
	for i, c := range cases {
		_, err := ParseProfile([]byte(c.src))
		de, ok := AsError(err)
		if !ok || de.Code != CodeRuleInvalid || de.Rule != c.rule || de.Line != c.ln || !strings.Contains(de.Error(), c.substring) {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

func TestFailureIsPHI6008WithoutContent(t *testing.T) {
	p, _ := ParseProfile([]byte(`{"name":"t","rules":[{"type":"dateTime","method":"dateShift"}]}`))
	e, _ := New(p, testKeys(t, suite.Intl, 1), Options{})
	bad := `{"resourceType":"Observation","id":"secret-id-4711","status":"final","code":{"text":"Jane Secret"},"effectiveDateTime":"20x1-Jane-Secret"}`
	out, err := e.Resource(context.Background(), mustParse(t, bad))
	de, ok := AsError(err)
	if out != nil || !ok || de.Code != CodeDeidFailed {
		t.Fatalf("want PHI-6008, got %v", err)
	}
	for _, s := range []string{"Jane", "Secret", "4711", "20x1"} {
		if strings.Contains(err.Error(), s) {
			t.Fatal("error text contains resource content")
		}
	}
}

func TestRiskReport(t *testing.T) {
	rec := func(y, g, z, c string) RiskRecord {
		return RiskRecord{QI: map[string]string{"birthYear": y, "gender": g, "region": z}, Sensitive: map[string]string{"condition": c}}
	}
	var big []RiskRecord
	for i := 0; i < 10; i++ {
		big = append(big, rec("1980", "female", "021", string(rune('a'+i%3))))
	}
	qis := []string{"birthYear", "gender", "region"}
	r := Assess(big, qis, []string{"condition"}, 5)
	if r.K != 10 || r.Check(2) != nil || r.L["condition"] != 3 {
		t.Fatalf("k=%d l=%v", r.K, r.L)
	}
	small := append(append([]RiskRecord(nil), big...), rec("1980", "female", "999", "a"))
	r = Assess(small, qis, nil, 5)
	err := r.Check(0)
	de, ok := AsError(err)
	if !ok || de.Code != CodeRiskHigh || r.K != 1 || r.ProsecutorMax != 1 {
		t.Fatalf("want PHI-6009, got %v (k=%d)", err, r.K)
	}
	if r.Drivers[0].QuasiIdentifier != "region" || r.Drivers[0].KWithout != 11 || !strings.Contains(err.Error(), "region") {
		t.Fatalf("driver not named: %+v", r.Drivers)
	}
}

func TestExpertBlocksSmallBatch(t *testing.T) {
	e := engine(t, "expert", testKeys(t, suite.Intl, 1))
	b := `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"a","gender":"male","birthDate":"1970-01-02"}}]}`
	_, err := e.Bundle(context.Background(), mustParse(t, b))
	if de, ok := AsError(err); !ok || de.Code != CodeRiskHigh || de.Report == nil {
		t.Fatalf("want PHI-6009, got %v", err)
	}
}

type recAuditor struct{ events []ReidEvent }

func (a *recAuditor) Reidentified(_ context.Context, ev ReidEvent) error {
	a.events = append(a.events, ev)
	return nil
}

func TestReidentification(t *testing.T) {
	key := make([]byte, 32)
	key[0] = 9
	tab, err := NewReidTable(suite.Intl, key)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := LoadProfile("expert")
	e, _ := New(p, testKeys(t, suite.Intl, 1), Options{Reid: tab})
	out, err := e.Resource(context.Background(), mustParse(t, `{"resourceType":"Patient","id":"p","identifier":[{"system":"urn:mrn","value":"MRN-77"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ps := out.Object["identifier"].([]any)[0].(map[string]any)["value"].(string)
	data, _ := tab.MarshalJSON()
	if strings.Contains(string(data), "MRN-77") {
		t.Fatal("table holds the original in clear")
	}
	if _, err := OpenReidTable(data, key, nil); err == nil {
		t.Fatal("nil auditor accepted")
	}
	a := &recAuditor{}
	r, _ := OpenReidTable(data, key, a)
	if got, err := r.Reidentify(context.Background(), "dr-a", "TREAT", ps); err != nil || got != "MRN-77" {
		t.Fatalf("reidentify: %v", err)
	}
	if len(a.events) != 1 || a.events[0].Pseudonym != ps {
		t.Fatal("not audited")
	}
	wrong := make([]byte, 32)
	r2, _ := OpenReidTable(data, wrong, a)
	if _, err := r2.Reidentify(context.Background(), "dr-a", "TREAT", ps); err == nil {
		t.Fatal("wrong key opened the table")
	}
}
