package fhirserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"phix/internal/testenv"
	"phix/store"
)

// The no-PHI-leaks proof (docs/no-phi-leaks.md): a server set up as
// `phix fhir` runs it (node keyring, field protection, signing, audit log),
// logging JSON at DEBUG into a buffer, imports Synthea bundles and then gets
// PHI through every input channel. Nothing of it may come back out of the
// log, an error body, a response header or the raw audit store, and neither
// may a bearer token or key material.

// leakScan holds what must never appear: PHI words (whole-word matches),
// PHI values (substrings) and secrets (substrings). Hits are reported by
// class and index, never by value.
type leakScan struct {
	words, values, secrets []string
}

func (s *leakScan) addPHI(words, values []string) {
	for _, w := range words {
		if len(w) >= 3 {
			s.words = append(s.words, w)
		}
	}
	for _, v := range values {
		if len(v) >= 6 {
			s.values = append(s.values, v)
		}
	}
}

func (s *leakScan) addSecret(v ...string) {
	for _, x := range v {
		if len(x) >= 8 {
			s.secrets = append(s.secrets, x)
		}
	}
}

// find returns a description of each needle in data, naming channel, with
// the text around it redacted (every needle replaced by its class and
// index), so a failure says where the leak is without printing PHI.
func (s *leakScan) find(channel string, data []byte) []string {
	str := string(data)
	var hits []string
	hit := func(kind string, i, at, n int) {
		from, to := max(0, at-60), min(len(str), at+n+60)
		hits = append(hits, fmt.Sprintf("%s: %s #%d in %q", channel, kind, i, s.redact(str[from:to])))
	}
	for i, w := range s.words {
		if testenv.ContainsWord(str, w) {
			hit("PHI word", i, strings.Index(str, w), len(w))
		}
	}
	for i, v := range s.values {
		if at := strings.Index(str, v); at >= 0 {
			hit("PHI value", i, at, len(v))
		}
	}
	for i, v := range s.secrets {
		if at := strings.Index(str, v); at >= 0 {
			hit("secret", i, at, len(v))
		}
	}
	return hits
}

// redact replaces every needle in s by its class and index.
func (s *leakScan) redact(str string) string {
	for i, v := range s.secrets {
		str = strings.ReplaceAll(str, v, fmt.Sprintf("<secret#%d>", i))
	}
	for i, v := range s.values {
		str = strings.ReplaceAll(str, v, fmt.Sprintf("<value#%d>", i))
	}
	for i, w := range s.words {
		str = strings.ReplaceAll(str, w, fmt.Sprintf("<word#%d>", i))
	}
	return str
}

// leakEnv is a server wired as cmd/phix/fhir.go wires it.
type leakEnv struct {
	*env
	node    *Node
	dir     string
	auditor string
	// exchanges are the requests sent and the answers got, for the scan.
	exchanges []exchange
}

type exchange struct {
	name string
	r    *resp
}

// leakMaxBody is the --max-body of the test server: small, so the
// oversized-body request stays cheap under -race.
const leakMaxBody = 4 << 20

func newLeakEnv(t *testing.T, st store.Store) *leakEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	auditorTok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := NewStaticTokens(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.AddAuditorTokens(auditorTok); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	node, err := OpenNode(ctx, NodeOptions{Dir: dir, Hospital: "leak-hospital", Auth: auth, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	cfg := Config{Store: st, Auth: auth, Logger: logger, MaxBodyBytes: leakMaxBody,
		Audit: node.Audit, AuditPseudonyms: node.Pseudonyms, DeidKeys: node.DeidKeys,
		Protector: node.Protector, Eraser: node.Eraser, Signing: node.Signing}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	e := &env{t: t, srv: hs, base: hs.URL + BasePath, token: tok, store: st, logs: logs, protected: true}
	return &leakEnv{env: e, node: node, dir: dir, auditor: auditorTok}
}

// send is env.do that keeps the exchange for the scan and refuses a 5xx:
// every request of the battery is a client's doing.
func (l *leakEnv) send(t *testing.T, name, method, path string, body any, hdr ...string) *resp {
	t.Helper()
	r := l.do(method, path, body, hdr...)
	l.exchanges = append(l.exchanges, exchange{name: name, r: r})
	if r.status >= 500 {
		t.Errorf("%s: status %d (a client mistake must not be a 5xx), code %s", name, r.status, r.errCode())
	}
	return r
}

// secrets returns the key material of the node: the master key file in
// every encoding it could be printed in, and a derived blind-index key.
func (l *leakEnv) secrets(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(l.dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	b64 := strings.TrimSpace(string(raw))
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{b64, hex.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key), string(key)}
	dk, err := l.node.Keys.DeriveBlindIndexKey(context.Background(), "leak-hospital", 1, "Patient", "family")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, hex.EncodeToString(dk.Key), base64.StdEncoding.EncodeToString(dk.Key), base64.RawURLEncoding.EncodeToString(dk.Key))
}

// auditRaw syncs the audit log and returns every byte of its SQLite files.
func (l *leakEnv) auditRaw(t *testing.T) [][]byte {
	t.Helper()
	if _, err := l.node.Audit.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	ents, err := filepath.Glob(filepath.Join(l.dir, "audit.db*"))
	if err != nil || len(ents) == 0 {
		t.Fatalf("no audit files (%v)", err)
	}
	for _, f := range ents {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// leakPatient is one imported Synthea patient's PHI, used as request input.
type leakPatient struct {
	id, family, given, identifier, phone, line, city, birthDate string
}

func syntheaPatient(t *testing.T, bundle []byte) leakPatient {
	t.Helper()
	for _, r := range testenv.SyntheaPatients(t, bundle) {
		if len(r.Name) == 0 || len(r.Name[0].Given) == 0 || len(r.Identifier) == 0 || len(r.Telecom) == 0 || len(r.Address) == 0 || len(r.Address[0].Line) == 0 {
			continue
		}
		p := leakPatient{family: r.Name[0].Family, given: r.Name[0].Given[0], phone: r.Telecom[0].Value,
			line: r.Address[0].Line[0], city: r.Address[0].City, birthDate: r.BirthDate}
		// The last identifier (Synthea's passport or SSN-like one).
		p.identifier = r.Identifier[len(r.Identifier)-1].Value
		return p
	}
	t.Fatal("no complete Patient in the bundle")
	return leakPatient{}
}

// leakBundles are the smallest Synthea bundles (fewer under -race).
func leakBundles(t *testing.T) []testenv.Bundle {
	all := append([]testenv.Bundle(nil), testenv.SyntheaBundles(t)...)
	sort.Slice(all, func(i, j int) bool { return len(all[i].Data) < len(all[j].Data) })
	n := 3
	if testing.Short() || raceEnabled {
		n = 2
	}
	return all[:min(n, len(all))]
}

func TestNoPHILeaks(t *testing.T) {
	bundles := leakBundles(t)
	names := make([]string, 0, len(backends))
	for n := range backends {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) { testNoPHILeaks(t, newLeakEnv(t, backends[name](t)), bundles) })
	}
}

func testNoPHILeaks(t *testing.T, l *leakEnv, bundles []testenv.Bundle) {
	scan := &leakScan{}
	for _, b := range bundles {
		phi := testenv.SyntheaPHI(t, b.Data)
		scan.addPHI(phi.Words, phi.Values)
		l.send(t, "import "+b.Name, "POST", "", b.Data).want(t, 200)
	}
	p := syntheaPatient(t, bundles[0].Data)
	q := syntheaPatient(t, bundles[1].Data)
	sr := l.send(t, "find the patient", "GET", "/Patient?family="+url.QueryEscape(p.family)+"&given="+url.QueryEscape(p.given), nil).want(t, 200)
	if len(sr.entries()) == 0 {
		t.Fatal("the imported patient is not found by name")
	}
	res, _ := sr.entries()[0]["resource"].(map[string]any)
	p.id, _ = res["id"].(string)
	// Literals the battery adds beside the Synthea values.
	email := strings.ToLower(p.given) + ".leakmail@example.org"
	literal := "Zyxwleakname"
	scan.addPHI([]string{literal, p.birthDate}, []string{email, "555-0142-7788"})
	forged := []string{
		"forged-token-value-" + literal,
		"eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"`+p.family+`"}`)) + ".c2lnbmF0dXJl",
		"phixtok_" + strings.Repeat("A", 40),
	}
	scan.addSecret(l.token, l.auditor)
	scan.addSecret(forged...)
	scan.addSecret(l.secrets(t)...)

	qe := url.QueryEscape
	fam, giv := p.family, p.given
	pid := p.id
	// Searches by every PHI parameter, valid and malformed.
	for i, path := range []string{
		"/Patient?family=" + qe(fam),
		"/Patient?given=" + qe(giv),
		"/Patient?name=" + qe(fam+" "+giv),
		"/Patient?identifier=" + qe(p.identifier),
		"/Patient?identifier=" + qe("urn:bad|"+p.identifier+"|x"),
		"/Patient?phone=" + qe(p.phone),
		"/Patient?telecom=" + qe("phone|"+p.phone),
		"/Patient?email=" + qe(email),
		"/Patient?address=" + qe(p.line),
		"/Patient?address-city=" + qe(p.city),
		"/Patient?birthdate=" + qe(p.birthDate),
		"/Patient?family:bogus=" + qe(fam),
		"/Patient?birthdate=" + qe(fam),
		"/Patient?birthdate=ge" + qe(giv),
		"/Patient?family:exact=" + qe(fam) + "&_sort=" + qe(fam),
		"/Patient?" + qe(fam) + "=" + qe(giv),
		"/Patient?_count=" + qe(fam),
		"/Patient?_id=" + qe(fam),
		"/Patient?name:contains=" + qe(fam),
		"/Patient?family=" + qe(fam) + "&_include=" + qe("Patient:"+giv),
		"/Patient?_text=" + qe(fam),
		"/Patient?_content=" + qe(fam+" "+giv),
		"/Patient?_content=" + qe(fam+"*"),
		"/Observation?_content=" + qe(p.city),
		"/Observation?subject:Patient.family=" + qe(fam),
		"/Observation?subject.name=" + qe(giv),
		"/Observation?subject:Patient." + qe(fam) + "=x",
		"/Observation?subject:" + qe(fam) + ".family=x",
		"/Patient?_has:Observation:subject:code=" + qe(fam),
		"/Patient?_has:Observation:" + qe(fam) + ":code=x",
		"/Patient?_has:" + qe(giv) + ":subject:code=x",
		"/?_type=Patient&family=" + qe(fam),
		"/?_type=" + qe(fam),
		"/Patient?family=" + qe(fam) + "&_format=" + qe(giv),
		"/Patient?_elements=" + qe(fam) + "&_summary=" + qe(giv) + "&_total=" + qe(fam),
		"/Patient?_revinclude=" + qe(fam+":subject"),
		"/Patient?_lastUpdated=" + qe(fam) + "&_id:" + qe(giv) + "=x",
		"/Patient?organization.name=" + qe(fam) + "&general-practitioner:Practitioner.family=" + qe(giv),
		"/Observation?value-quantity=" + qe("1e400|"+fam+"|"+giv),
		"/Observation?value-quantity=" + qe("ap-1e-400||"+fam),
		"/RiskAssessment?probability=" + qe("9"+strings.Repeat("9", 400)),
		"/Patient?birthdate=" + qe("9999-12-31T23:59:59+14:00") + "&family=" + qe(fam),
		"/Patient?birthdate=" + qe("0001-01-01") + "&given:exact=" + qe(giv),
		"/Observation?code=" + qe(fam+"|"+giv) + "&subject=" + qe("Patient/"+fam),
		"/Observation?subject:identifier=" + qe("urn:x|"+p.identifier) + "&patient=" + qe(p.phone),
		"/Patient?telecom:not=" + qe(p.phone) + "&identifier:of-type=" + qe("x|y|"+fam),
	} {
		l.send(t, fmt.Sprintf("search #%d", i), "GET", path, nil)
		l.send(t, fmt.Sprintf("strict search #%d", i), "GET", path, nil, "Prefer", "handling=strict")
	}
	l.send(t, "POST _search", "POST", "/Patient/_search", "family="+qe(fam)+"&birthdate="+qe(giv), "Content-Type", "application/x-www-form-urlencoded")

	// Reads, history and 404s with PHI in the id.
	for i, path := range []string{
		"/Patient/" + pid,
		"/Patient/" + qe(fam),
		"/Patient/" + qe(p.phone),
		"/" + qe(fam) + "/" + pid,
		"/Patient/" + pid + "/_history",
		"/Patient/" + pid + "/_history/" + qe(giv),
		"/Patient/" + qe(fam) + "/_history",
		"/Patient/_history?_since=" + qe(fam),
		"/_history?_count=" + qe(giv),
		"/Patient/" + qe(fam) + "/$verify",
	} {
		l.send(t, fmt.Sprintf("read #%d", i), "GET", path, nil)
	}

	// PATCH: JSON Patch and FHIRPath Patch, valid and invalid.
	pp := "/Patient/" + pid
	for i, c := range []struct {
		body, ct string
	}{
		{`[{"op":"replace","path":"/name/0/family","value":"` + fam + `"}]`, jsonPatchCT},
		{`[{"op":"test","path":"/name/0/family","value":"` + literal + `"}]`, jsonPatchCT},
		{`[{"op":"replace","path":"/name/` + fam + `/family","value":"x"}]`, jsonPatchCT},
		{`[{"op":"` + giv + `","path":"/gender","value":"x"}]`, jsonPatchCT},
		{`[{"op":"replace","path":"/birthDate","value":"` + fam + `"}]`, jsonPatchCT},
		{`[{"op":"add","path":"/telecom/0/value","value":"` + p.phone + `"]`, jsonPatchCT},
		{fpPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.name.where(family='` + fam + `').given"},{"name":"value","valueString":"` + giv + `"}`), "application/fhir+json"},
		{fpPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.name.where(family='` + fam + `'"},{"name":"value","valueString":"x"}`), "application/fhir+json"},
		{fpPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.` + giv + `"},{"name":"value","valueString":"` + literal + `"}`), "application/fhir+json"},
		{fpPatch(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueString":"` + fam + `"}`), "application/fhir+json"},
		{fpPatch(`{"name":"type","valueCode":"` + literal + `"},{"name":"path","valueString":"Patient.active"}`), "application/fhir+json"},
	} {
		l.send(t, fmt.Sprintf("patch #%d", i), "PATCH", pp, c.body, "Content-Type", c.ct)
	}
	l.send(t, "conditional patch", "PATCH", "/Patient?identifier="+qe(literal), `[]`, "Content-Type", jsonPatchCT)

	// Invalid resources whose bad fields hold names and phone numbers.
	for i, body := range []string{
		`{"resourceType":"Patient","birthDate":"` + fam + `"}`,
		`{"resourceType":"Patient","gender":"` + giv + `"}`,
		`{"resourceType":"Patient","name":"` + fam + ` ` + giv + `"}`,
		`{"resourceType":"Patient","name":[{"family":["` + fam + `"]}]}`,
		`{"resourceType":"Patient","telecom":[{"system":"` + p.phone + `","value":"` + p.phone + `"}]}`,
		`{"resourceType":"Patient","` + fam + `":"` + giv + `"}`,
		`{"resourceType":"` + fam + `"}`,
		`{"resourceType":"Patient","id":"` + fam + ` ` + giv + `"}`,
		`{"resourceType":"Patient","name":[{"family":"` + fam + `"}],"managingOrganization":{"reference":"Organization/` + giv + ` x"}}`,
		`{"resourceType":"Patient","address":[{"line":["` + p.line + `"],"use":"` + p.line + `"}]}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + qe(fam) + `"}}`,
		`{"resourceType":"Patient","birthDate":"` + p.birthDate + `","deceasedBoolean":"` + fam + `"}`,
	} {
		l.send(t, fmt.Sprintf("create #%d", i), "POST", "/Patient", body)
		l.send(t, fmt.Sprintf("update #%d", i), "PUT", pp, body)
		l.send(t, fmt.Sprintf("validate #%d", i), "POST", "/Patient/$validate", body)
	}
	l.send(t, "put id mismatch", "PUT", pp, `{"resourceType":"Patient","id":"`+literal+`"}`)
	clientID := fam
	l.send(t, "put PHI id", "PUT", "/Patient/"+qe(clientID), `{"resourceType":"Patient","id":"`+clientID+`"}`)
	l.send(t, "validate valid", "POST", "/Patient/$validate", patient(fam, giv))
	l.send(t, "validate instance", "POST", "/Patient/"+pid+"/$validate", `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient","gender":"`+fam+`"}},{"name":"mode","valueCode":"`+giv+`"}]}`)

	// Conditional create/update/delete on identifier criteria.
	np := patient(literal, giv)
	l.send(t, "conditional create match", "POST", "/Patient", np, "If-None-Exist", "identifier="+qe(p.identifier))
	l.send(t, "conditional create bad", "POST", "/Patient", np, "If-None-Exist", "family:bogus="+qe(fam)+"&birthdate="+qe(giv))
	l.send(t, "conditional create many", "POST", "/Patient", np, "If-None-Exist", "birthdate=ge1900-01-01")
	l.send(t, "conditional update", "PUT", "/Patient?identifier="+qe(q.identifier), `{"resourceType":"Patient","name":[{"family":"`+q.family+`"}],"birthDate":"`+q.family+`"}`)
	l.send(t, "conditional update many", "PUT", "/Patient?birthdate=ge1900-01-01", patient(fam, giv))
	l.send(t, "conditional update bad", "PUT", "/Patient?"+qe(fam)+"="+qe(giv), patient(fam, giv))
	l.send(t, "If-Match PHI", "PUT", pp, patient(fam, giv), "If-Match", `W/"`+fam+`"`)

	// Bundles with bad references and bad entries that hold names.
	for i, entries := range [][]string{
		{`{"fullUrl":"urn:uuid:` + fam + `","resource":{"resourceType":"Patient","name":[{"family":"` + fam + `"}]},"request":{"method":"POST","url":"Patient"}}`},
		{`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:` + giv + `"}},"request":{"method":"POST","url":"Observation"}}`},
		{`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + fam + `"}},"request":{"method":"POST","url":"Observation"}}`},
		{`{"request":{"method":"GET","url":"Patient?family:bogus=` + qe(fam) + `"}}`},
		{`{"request":{"method":"` + giv + `","url":"Patient"}}`},
		{`{"request":{"method":"DELETE","url":"Patient?identifier=` + qe(q.identifier) + `"}}`, `{"request":{"method":"DELETE","url":"Patient?identifier=` + qe(q.identifier) + `"}}`},
		{`{"resource":{"resourceType":"Patient","birthDate":"` + fam + `"},"request":{"method":"PUT","url":"Patient/` + pid + `"}}`},
		{`{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=` + qe(p.identifier) + `&` + qe(fam) + `=x"}}`},
	} {
		for _, typ := range []string{"transaction", "batch"} {
			body := `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
			l.send(t, fmt.Sprintf("%s #%d", typ, i), "POST", "", body)
		}
	}
	l.send(t, "bundle bad type", "POST", "", `{"resourceType":"Bundle","type":"`+fam+`"}`)

	// Operations.
	l.send(t, "de-identify", "POST", "/Patient/"+pid+"/$de-identify", levelParams("safe-harbor"))
	l.send(t, "de-identify bad level", "POST", "/Patient/"+pid+"/$de-identify", levelParams(fam))
	l.send(t, "de-identify risk", "POST", "/Patient/"+pid+"/$de-identify", levelParams("expert"))
	l.send(t, "de-identify bad resource", "POST", "/$de-identify", levelParams("safe-harbor", map[string]any{"name": "resource", "resource": map[string]any{"resourceType": "Bundle", "type": fam}}))
	l.send(t, "de-identify PHI id", "POST", "/Patient/"+qe(fam)+"/$de-identify", levelParams("safe-harbor"))
	l.send(t, "sign", "POST", "/Patient/"+pid+"/$sign", `{"resourceType":"Parameters"}`)
	l.send(t, "sign bad body", "POST", "/Patient/"+pid+"/$sign", `{"resourceType":"Parameters","parameter":[{"name":"`+fam+`","valueString":"`+giv+`"}]}`)
	l.send(t, "sign PHI id", "POST", "/Patient/"+qe(fam)+"/$sign", `{"resourceType":"Parameters"}`)
	l.send(t, "verify", "GET", "/Patient/"+pid+"/$verify", nil)
	l.send(t, "verify bad body", "POST", "/Patient/"+pid+"/$verify", `{"resourceType":"Parameters","parameter":[{"name":"signature","valueString":"`+fam+`"}]}`)
	l.send(t, "verify PHI version", "GET", "/Patient/"+pid+"/_history/"+qe(giv)+"/$verify", nil)

	// Malformed and oversized JSON, odd headers.
	big := `{"resourceType":"Patient","name":[{"family":"` + fam + `","given":["` + strings.Repeat(giv+" ", leakMaxBody/len(giv)) + `"]}]}`
	for i, c := range []struct {
		body string
		hdr  []string
	}{
		{big, nil},
		{`{"resourceType":"Patient","name":[{"family":"` + fam + `"`, nil},
		{`{"resourceType":"Patient","name":[{"family":"` + fam + `"}]}}`, nil},
		{`{"resourceType":"Patient","name":[{"family":"` + fam + "\xff\xfe" + `"}]}`, nil},
		{`{"resourceType":"Patient","name":[{"family":"` + fam + `"}],"name":[{"family":"` + giv + `"}]}`, nil},
		{`{"resourceType":"Patient","birthDate":` + p.phone + `}`, nil},
		{fam + " " + giv, nil},
		{`{"resourceType":"Patient"}`, []string{"Content-Type", "application/" + fam}},
		{`{"resourceType":"Patient"}`, []string{"Accept", "text/" + fam}},
		{`{"resourceType":"Patient"}`, []string{"Prefer", "return=" + fam}},
		{`{"resourceType":"Patient"}`, []string{"X-Request-Id", fam}},
	} {
		l.send(t, fmt.Sprintf("malformed #%d", i), "POST", "/Patient", c.body, c.hdr...)
	}

	// Forged and malformed credentials: neither the token nor PHI in it
	// may be logged or echoed.
	for i, h := range []string{"Bearer " + forged[0], "Bearer " + forged[1], "Bearer " + forged[2], "Basic " + base64.StdEncoding.EncodeToString([]byte(fam+":"+forged[0])), forged[0]} {
		r := l.send(t, fmt.Sprintf("forged token #%d", i), "GET", "/Patient?family="+qe(fam), nil, "Authorization", h)
		if r.status != http.StatusUnauthorized {
			t.Errorf("forged token #%d: status %d, want 401", i, r.status)
		}
	}
	// The auditor's token on clinical data, and on the audit API.
	l.send(t, "auditor on clinical", "GET", "/Patient?family="+qe(fam), nil, "Authorization", "Bearer "+l.auditor)
	l.send(t, "auditor search", "GET", l.srv.URL+"/fhir/r4/AuditEvent?entity="+qe(fam), nil, "Authorization", "Bearer "+l.auditor)
	for i, path := range []string{
		"/AuditEvent?patient=" + qe(fam), "/AuditEvent?" + qe(giv) + "=x", "/AuditEvent/" + qe(fam),
		"/audit/events?after=" + qe(fam) + "&limit=" + qe(giv), "/audit/checkpoint?size=" + qe(fam),
		"/audit/proof/inclusion?index=" + qe(fam) + "&size=" + qe(p.phone), "/audit/proof/consistency?old=" + qe(giv) + "&new=1",
		"/audit/" + qe(fam),
	} {
		u := l.base + path
		if strings.HasPrefix(path, "/audit") {
			u = l.srv.URL + path
		}
		l.send(t, fmt.Sprintf("auditor #%d", i), "GET", u, nil, "Authorization", "Bearer "+l.auditor)
	}
	l.send(t, "metrics", "GET", l.srv.URL+"/metrics", nil)

	// Erasure paths are exercised by their own tests; delete one patient
	// here so deletion errors are covered too.
	l.send(t, "delete", "DELETE", "/Patient/"+pid, nil)
	l.send(t, "read deleted", "GET", "/Patient/"+pid, nil)
	l.send(t, "delete PHI id", "DELETE", "/Patient/"+qe(giv), nil)
	l.send(t, "conditional delete none", "DELETE", "/Patient?identifier="+qe(literal), nil)
	l.send(t, "conditional delete bad", "DELETE", "/Patient?birthdate="+qe(fam), nil)
	l.send(t, "conditional delete many", "DELETE", "/Patient?birthdate=ge1900-01-01", nil)

	// The scan.
	var hits []string
	for _, x := range l.exchanges {
		var hdr bytes.Buffer
		for k, vs := range x.r.header {
			for _, v := range vs {
				// A logical id the client chose itself (update-as-create)
				// comes back in its Location: ids are keys, not protected
				// fields (docs/no-phi-leaks.md), and this one is the
				// client's own input.
				v = strings.ReplaceAll(v, "/Patient/"+clientID+"/", "/Patient/<client-id>/")
				fmt.Fprintf(&hdr, "%s: %s\n", k, v)
			}
		}
		hits = append(hits, scan.find(x.name+" headers", hdr.Bytes())...)
		// A $de-identify answer is meant to hold no PHI at all.
		if x.r.status >= 400 || x.r.obj["resourceType"] == "OperationOutcome" || strings.HasPrefix(x.name, "de-identify") {
			hits = append(hits, scan.find(x.name+" error body", x.r.body)...)
		} else {
			// A success answer carries the records the caller may read:
			// only secrets must be absent from it, and PHI from the
			// OperationOutcomes inside it (search warnings, batch entries).
			only := &leakScan{secrets: scan.secrets}
			hits = append(hits, only.find(x.name+" body", x.r.body)...)
			for _, oo := range outcomesIn(x.r.obj) {
				hits = append(hits, scan.find(x.name+" nested outcome", oo)...)
			}
		}
	}
	logs := l.logs.String()
	if !strings.Contains(logs, `"level":"DEBUG"`) && !strings.Contains(logs, `"msg":"request"`) {
		t.Fatal("the server logged nothing: the scan would prove nothing")
	}
	hits = append(hits, scan.find("server log", []byte(logs))...)
	for i, b := range l.auditRaw(t) {
		hits = append(hits, scan.find(fmt.Sprintf("audit file %d", i), b)...)
	}
	if len(hits) > 0 {
		t.Fatalf("%d leaks (values not printed):\n%s", len(hits), strings.Join(hits, "\n"))
	}
	codes := map[string]int{}
	for _, x := range l.exchanges {
		codes[fmt.Sprintf("%d %s", x.r.status, x.r.errCode())]++
	}
	t.Logf("answers by status and code: %v", codes)
	t.Logf("%d exchanges, %d log bytes scanned, %d PHI words, %d PHI values, %d secrets", len(l.exchanges), len(logs), len(scan.words), len(scan.values), len(scan.secrets))
}

// TestNoPHILeaksRecover: a handler panic whose value holds PHI and a token
// reaches neither the client nor the log.
func TestNoPHILeaksRecover(t *testing.T) {
	l := newLeakEnv(t, openSQLite(t))
	s, err := New(Config{Store: l.store, Auth: mustStatic(t, l.token), Logger: slog.New(slog.NewJSONHandler(l.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	const name, phone = "Panicfamily", "555-314-1592"
	mux := http.NewServeMux()
	mux.HandleFunc("/fhir/r4/Patient", func(http.ResponseWriter, *http.Request) {
		panic("patient " + name + " phone " + phone + " token " + l.token)
	})
	mux.HandleFunc("/fhir/r4/Observation", func(http.ResponseWriter, *http.Request) {
		panic(fmt.Errorf("decode: %w", errors.New(name)))
	})
	hs := httptest.NewServer(s.middleware(mux))
	t.Cleanup(hs.Close)
	l.srv, l.base = hs, hs.URL+BasePath
	scan := &leakScan{}
	scan.addPHI([]string{name}, []string{phone})
	scan.addSecret(l.token)
	var hits []string
	for _, path := range []string{"/Patient", "/Observation"} {
		r := l.do("GET", path, nil).want(t, 500).wantCode(t, string(CodeInternal))
		hits = append(hits, scan.find(path+" body", r.body)...)
	}
	logs := l.logs.String()
	if !strings.Contains(logs, "panic in handler") {
		t.Fatal("the panic was not logged")
	}
	hits = append(hits, scan.find("log", []byte(logs))...)
	if len(hits) > 0 {
		t.Fatalf("leaks: %v", hits)
	}
}

func mustStatic(t *testing.T, tok string) *StaticTokens {
	a, err := NewStaticTokens(tok)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestNoPHILeaksScanControl: the scan finds what a leaky server would
// write, in each form the battery checks, so TestNoPHILeaks can fail.
func TestNoPHILeaksScanControl(t *testing.T) {
	b := leakBundles(t)[0]
	phi := testenv.SyntheaPHI(t, b.Data)
	scan := &leakScan{}
	scan.addPHI(phi.Words, phi.Values)
	scan.addSecret("bearer-secret-0123456789")
	p := syntheaPatient(t, b.Data)
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cases := map[string][]byte{}
	log.Debug("search", "query", "family="+p.family)
	cases["log name"] = []byte(buf.String())
	cases["outcome phone"] = outcomeJSON([]Issue{{Severity: "error", Code: CodeValidation, Diagnostics: "bad telecom " + p.phone}})
	cases["header token"] = []byte("Www-Authenticate: Bearer error=\"bearer-secret-0123456789\"\n")
	cases["address line"] = []byte(`{"line":"` + p.line + `"}`)
	for name, data := range cases {
		if len(scan.find(name, data)) == 0 {
			t.Errorf("%s: the scan finds nothing in a leaky output", name)
		}
	}
	// And it is not trivially positive.
	if hits := scan.find("clean", []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"Patient.birthDate: not a date (PHI-6001)"}]}`)); len(hits) > 0 {
		t.Fatalf("clean text flagged: %v", hits)
	}
}

// outcomesIn returns every OperationOutcome nested in a JSON answer, encoded.
func outcomesIn(v any) [][]byte {
	var out [][]byte
	var walk func(v any, top bool)
	walk = func(v any, top bool) {
		switch x := v.(type) {
		case map[string]any:
			if !top && x["resourceType"] == "OperationOutcome" {
				b, _ := json.Marshal(x)
				out = append(out, b)
				return
			}
			for _, c := range x {
				walk(c, false)
			}
		case []any:
			for _, c := range x {
				walk(c, false)
			}
		}
	}
	if m, ok := v.(map[string]any); ok {
		walk(m, true)
	}
	return out
}
