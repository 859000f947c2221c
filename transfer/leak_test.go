package transfer_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"phix/internal/testenv"
	"phix/transfer"
)

// The coordinator half of docs/no-phi-leaks.md: requests carry a patient
// pseudonym, consent ids and file names built from a Synthea patient's name,
// and forged capability and admin tokens. None of it, nor a real capability
// token, may reach the coordinator's log (DEBUG), a problem+json body, a
// response header or /metrics.

// needles is what the coordinator must not repeat: words (whole-word) and
// values and secrets (substrings). Hits name the class and index only.
type needles struct {
	words, values, secrets []string
}

func (n *needles) find(channel string, data []byte) []string {
	s := string(data)
	var hits []string
	for i, w := range n.words {
		if len(w) >= 3 && testenv.ContainsWord(s, w) {
			hits = append(hits, fmt.Sprintf("%s: word #%d", channel, i))
		}
	}
	for i, v := range n.values {
		if len(v) >= 6 && strings.Contains(s, v) {
			hits = append(hits, fmt.Sprintf("%s: value #%d", channel, i))
		}
	}
	for i, v := range n.secrets {
		if len(v) >= 8 && strings.Contains(s, v) {
			hits = append(hits, fmt.Sprintf("%s: secret #%d", channel, i))
		}
	}
	return hits
}

// syncBuf is a log sink safe for the server's goroutines.
type syncBuf struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newSyncBuf() *syncBuf { return &syncBuf{mu: make(chan struct{}, 1)} }

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

// leakNames returns a family and a given name of the first Synthea patient.
func leakNames(t *testing.T) (family, given string, phi testenv.PatientPHI) {
	t.Helper()
	bs := append([]testenv.Bundle(nil), testenv.SyntheaBundles(t)...)
	sort.Slice(bs, func(i, j int) bool { return len(bs[i].Data) < len(bs[j].Data) })
	phi = testenv.SyntheaPHI(t, bs[0].Data)
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bs[0].Data, &b); err != nil {
		t.Fatal(err)
	}
	for _, e := range b.Entry {
		var p struct {
			ResourceType string
			Name         []struct {
				Family string
				Given  []string
			}
		}
		if json.Unmarshal(e.Resource, &p) == nil && p.ResourceType == "Patient" && len(p.Name) > 0 && len(p.Name[0].Given) > 0 {
			return p.Name[0].Family, p.Name[0].Given[0], phi
		}
	}
	t.Fatal("no Patient name in the bundle")
	return "", "", phi
}

type exch struct {
	name   string
	status int
	header http.Header
	body   []byte
}

func TestCoordinatorNoLeaks(t *testing.T) {
	fam, giv, phi := leakNames(t)
	logs := newSyncBuf()
	e := newEnv(t, "", func(c *transfer.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	pseudonym := "pseud-" + fam + "-" + giv
	consentID := "consent-" + fam
	fileName := fam + "_" + giv + "_MRI.dcm"
	scan := &needles{words: append([]string{fam, giv}, phi.Words...), values: append([]string{pseudonym, consentID, fileName}, phi.Values...)}
	forgedCap := "Zm9yZ2VkLWNhcGFiaWxpdHktdG9rZW4tdmFsdWUtMDAwMQ"
	forgedAdmin := "forged-admin-token-" + fam
	scan.secrets = []string{forgedCap, forgedAdmin, "admin-secret-token"}

	var ex []exch
	send := func(name string, p *party, method, path string, body []byte, hdr map[string]string) exch {
		t.Helper()
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		res := e.do(p, method, path, rd, hdr)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		x := exch{name: name, status: res.StatusCode, header: res.Header, body: b}
		ex = append(ex, x)
		if x.status >= 500 {
			t.Errorf("%s: status %d for a client mistake", name, x.status)
		}
		return x
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	jsonHdr := map[string]string{"Content-Type": "application/json"}
	data := []byte("encrypted bytes of " + fileName)
	files := map[string][]byte{fileName: data}
	withIDs := func(r *transfer.Request, cs *transfer.ConsentStatement) {
		r.Patient, cs.Patient = pseudonym, pseudonym
		r.ConsentID, cs.ConsentID = consentID, consentID
	}

	// A transfer that goes through, carrying the pseudonym, the consent id
	// and a name-like file name.
	v := e.create(e.a, e.request(e.a, e.b, files, withIDs))
	upload := v.Files[0].UploadURL
	realCap := strings.TrimPrefix(upload, "/v1/uploads/")
	scan.secrets = append(scan.secrets, realCap)
	e.upload(e.a, e.ts.URL+upload, data, 0, 16)
	send("complete", e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, nil)
	send("inbox", e.b, "GET", "/v1/inbox", nil, nil)
	var rv transfer.TransferView
	got := send("receiver get", e.b, "GET", "/v1/transfers/"+v.ID, nil, nil)
	if err := json.Unmarshal(got.body, &rv); err != nil || len(rv.Files) == 0 || rv.Files[0].DownloadURL == "" {
		t.Fatalf("receiver view: %d", got.status)
	}
	dlCap := strings.TrimPrefix(rv.Files[0].DownloadURL, "/v1/downloads/")
	scan.secrets = append(scan.secrets, dlCap)
	send("download", e.b, "GET", rv.Files[0].DownloadURL, nil, nil)
	send("download ranged bad", e.b, "GET", rv.Files[0].DownloadURL, nil, map[string]string{"Range": "bytes=" + fam})

	// Used and forged capabilities.
	tus := map[string]string{"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
	send("patch used cap", e.a, "PATCH", upload, data, tus)
	send("patch cap of other", e.b, "PATCH", upload, data, tus)
	send("download cap of other", e.a, "GET", rv.Files[0].DownloadURL, nil, nil)
	for i, tok := range []string{forgedCap, url.PathEscape(fam + " " + giv), url.PathEscape(pseudonym)} {
		send(fmt.Sprintf("forged upload %d", i), e.a, "PATCH", "/v1/uploads/"+tok, data, tus)
		send(fmt.Sprintf("forged head %d", i), e.a, "HEAD", "/v1/uploads/"+tok, nil, map[string]string{"Tus-Resumable": "1.0.0"})
		send(fmt.Sprintf("forged create %d", i), e.a, "POST", "/v1/uploads/"+tok, nil, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": "10", "Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte(fileName))})
		send(fmt.Sprintf("forged download %d", i), e.b, "GET", "/v1/downloads/"+tok, nil, nil)
		send(fmt.Sprintf("forged delete %d", i), e.a, "DELETE", "/v1/uploads/"+tok, nil, map[string]string{"Tus-Resumable": "1.0.0"})
	}
	// Bad tus headers on a live upload.
	v2 := e.create(e.a, e.request(e.a, e.b, files, withIDs))
	up2 := v2.Files[0].UploadURL
	scan.secrets = append(scan.secrets, strings.TrimPrefix(up2, "/v1/uploads/"))
	for i, h := range []map[string]string{
		{"Tus-Resumable": fam, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
		{"Tus-Resumable": "1.0.0", "Content-Type": "application/" + fam, "Upload-Offset": "0"},
		{"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Offset": giv},
		{"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0", "Upload-Checksum": "sha256 " + fam},
		{"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0", "Upload-Checksum": fam + " " + giv},
		{"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0", "Upload-Checksum": "sha256 " + base64.StdEncoding.EncodeToString([]byte(fam))},
	} {
		send(fmt.Sprintf("bad tus %d", i), e.a, "PATCH", up2, data, h)
	}
	send("bad tus length", e.a, "POST", up2, nil, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": fam})
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte(fileName)) + ",patient " + base64.StdEncoding.EncodeToString([]byte(pseudonym)) + "," + fam + " " + giv
	send("tus create metadata", e.a, "POST", up2, nil, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": fmt.Sprint(len(data)), "Upload-Metadata": meta})
	send("tus options", e.a, "OPTIONS", up2, nil, map[string]string{"Tus-Resumable": fam})

	// Invalid requests whose bad fields hold the PHI.
	base := e.request(e.a, e.b, files, withIDs)
	mutate := func(f func(r *transfer.Request)) []byte {
		r := base
		r.Files = append([]transfer.FileSpec(nil), base.Files...)
		f(&r)
		return js(r)
	}
	for i, body := range [][]byte{
		mutate(func(r *transfer.Request) { r.Patient = fam + " " + giv }),
		mutate(func(r *transfer.Request) { r.ConsentID = fam + " " + giv }),
		mutate(func(r *transfer.Request) { r.Files[0].Name = "../" + fileName }),
		mutate(func(r *transfer.Request) { r.Files[0].Name = fam + "/" + giv + ".dcm" }),
		mutate(func(r *transfer.Request) { r.Files = append(r.Files, r.Files[0]) }),
		mutate(func(r *transfer.Request) { r.Files[0].Hash = fam }),
		mutate(func(r *transfer.Request) { r.Files[0].HashAlg = giv }),
		mutate(func(r *transfer.Request) { r.Files[0].Sensitive = []string{fam} }),
		mutate(func(r *transfer.Request) { r.Purpose = fam }),
		mutate(func(r *transfer.Request) { r.DataClass = giv }),
		mutate(func(r *transfer.Request) { r.Receiver = fam }),
		mutate(func(r *transfer.Request) { r.Receiver = "hospital-us" }),
		mutate(func(r *transfer.Request) { r.Signature = base64.StdEncoding.EncodeToString([]byte(fam)) }),
		mutate(func(r *transfer.Request) {
			r.ConsentProof.Statement = base64.StdEncoding.EncodeToString([]byte(`{"patient":"` + fam + `"}`))
		}),
		mutate(func(r *transfer.Request) { r.Files[0].Size = 1 << 50 }),
		[]byte(`{"patient":"` + pseudonym + `","` + fam + `":"` + giv + `"}`),
		[]byte(`{"patient":"` + pseudonym + `","consent_id":"` + consentID + `"`),
		[]byte(fam + " " + giv),
		[]byte(`{"patient":"` + strings.Repeat(fam, (2<<20)/len(fam)) + `"}`),
	} {
		send(fmt.Sprintf("bad request %d", i), e.a, "POST", "/v1/transfers", body, jsonHdr)
	}

	// Consent withdrawal with name-like ids, and a transfer relying on a
	// withdrawn consent.
	send("withdraw", e.a, "POST", "/v1/consents/"+url.PathEscape(consentID)+"/withdraw", nil, nil)
	send("withdraw bad id", e.a, "POST", "/v1/consents/"+url.PathEscape(fam+" "+giv)+"/withdraw", nil, nil)
	send("create after withdrawal", e.a, "POST", "/v1/transfers", js(e.request(e.a, e.b, files, withIDs)), jsonHdr)
	send("patch after withdrawal", e.a, "PATCH", up2, data, tus)

	// Ids, roles, waits and identities that hold PHI.
	send("get PHI id", e.a, "GET", "/v1/transfers/"+url.PathEscape(fam), nil, nil)
	send("complete PHI id", e.a, "POST", "/v1/transfers/"+url.PathEscape(pseudonym)+"/complete", nil, nil)
	send("receipt PHI", e.b, "POST", "/v1/transfers/"+v.ID+"/receipt", []byte(`{"signature":"`+fam+`","files":["`+fileName+`"]}`), jsonHdr)
	send("list PHI role", e.a, "GET", "/v1/transfers?role="+url.QueryEscape(fam), nil, nil)
	send("inbox PHI wait", e.b, "GET", "/v1/inbox?wait="+url.QueryEscape(giv), nil, nil)
	send("unknown hospital", nil, "GET", "/v1/inbox", nil, map[string]string{"X-Test-Hospital": fam, "X-Test-Cert": giv})
	send("no identity", nil, "GET", "/v1/transfers/"+url.PathEscape(fam), nil, nil)

	// Forged admin tokens and a registration whose bad fields hold PHI.
	for i, h := range []string{"Bearer " + forgedAdmin, forgedAdmin, "Basic " + base64.StdEncoding.EncodeToString([]byte(fam+":"+forgedAdmin))} {
		send(fmt.Sprintf("forged admin %d", i), nil, "GET", e.adminURL+"/v1/admin/hospitals", nil, map[string]string{"Authorization": h})
	}
	admin := map[string]string{"Authorization": "Bearer admin-secret-token", "Content-Type": "application/json"}
	send("bad hospital", nil, "POST", e.adminURL+"/v1/admin/hospitals", []byte(`{"id":"`+fam+` `+giv+`","name_en":"`+fam+`","region":"`+giv+`"}`), admin)
	send("suspend PHI id", nil, "POST", e.adminURL+"/v1/admin/hospitals/"+url.PathEscape(fam)+"/suspend", nil, admin)

	met := send("metrics", nil, "GET", "/metrics", nil, nil)
	if met.status != 200 || !strings.Contains(string(met.body), "phix_transfer_") {
		t.Fatalf("metrics: %d", met.status)
	}

	// The scan. Success bodies legitimately carry the caller's own
	// transfer (ids, file names, capability URLs): they are scanned for
	// the forged and admin tokens only; headers likewise may hold the
	// caller's capability in Location.
	var hits []string
	forgedOnly := &needles{secrets: []string{forgedCap, forgedAdmin, "admin-secret-token"}}
	for _, x := range ex {
		var hdr bytes.Buffer
		for k, vs := range x.header {
			fmt.Fprintf(&hdr, "%s: %s\n", k, strings.Join(vs, ", "))
		}
		hdrScan := &needles{words: scan.words, values: scan.values, secrets: forgedOnly.secrets}
		hits = append(hits, hdrScan.find(x.name+" headers", hdr.Bytes())...)
		switch {
		case x.name == "metrics":
			hits = append(hits, scan.find("metrics", x.body)...)
		case x.status >= 400:
			hits = append(hits, scan.find(x.name+" problem", x.body)...)
		default:
			hits = append(hits, forgedOnly.find(x.name+" body", x.body)...)
		}
	}
	log := logs.String()
	if !strings.Contains(log, `"msg":"request"`) {
		t.Fatal("the coordinator logged nothing: the scan would prove nothing")
	}
	hits = append(hits, scan.find("log", []byte(log))...)
	// The audit trail holds the consent id by design (audit.Why.ConsentID);
	// it must not hold the pseudonym, the file name or a token.
	auditScan := &needles{words: scan.words, values: []string{pseudonym, fileName}, secrets: scan.secrets}
	for i, ev := range e.audit.all() {
		b, _ := json.Marshal(ev)
		b = bytes.ReplaceAll(b, []byte(consentID), []byte("<consent-id>"))
		hits = append(hits, auditScan.find(fmt.Sprintf("audit event %d", i), b)...)
	}
	if len(hits) > 0 {
		t.Fatalf("%d leaks (values not printed):\n%s", len(hits), strings.Join(hits, "\n"))
	}
	t.Logf("%d exchanges, %d log bytes, %d audit events scanned", len(ex), len(log), len(e.audit.all()))
}

// TestCoordinatorLeakScanControl: the scan finds a name, a pseudonym and a
// token where a leaky coordinator would write them.
func TestCoordinatorLeakScanControl(t *testing.T) {
	fam, _, _ := leakNames(t)
	n := &needles{words: []string{fam}, values: []string{"pseud-0001-abcd"}, secrets: []string{"capability-token-xyz"}}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("request", "path", "/v1/uploads/capability-token-xyz", "file", fam+".dcm", "patient", "pseud-0001-abcd")
	if got := len(n.find("log", buf.Bytes())); got != 3 {
		t.Fatalf("the scan found %d of 3 planted leaks", got)
	}
	if got := n.find("clean", []byte(`{"code":"TRF-1003","detail":"file names must be plain names"}`)); len(got) > 0 {
		t.Fatalf("clean text flagged: %v", got)
	}
}

// panicIdentity stands in for a dependency that panics with request data.
type panicIdentity struct{ msg string }

func (p panicIdentity) Identify(*http.Request) (string, string, error) { panic(p.msg) }

// TestCoordinatorPanicNoLeak: a handler panic whose value holds a name and
// a capability token answers a plain problem+json 500 and logs neither.
func TestCoordinatorPanicNoLeak(t *testing.T) {
	fam, giv, _ := leakNames(t)
	logs := newSyncBuf()
	msg := "identify " + fam + " " + giv + " token Zm9yZ2VkLWNhcGFiaWxpdHk"
	e := newEnv(t, "", func(c *transfer.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.Identifier = panicIdentity{msg: msg}
	})
	n := &needles{words: []string{fam, giv}, secrets: []string{"Zm9yZ2VkLWNhcGFiaWxpdHk"}}
	res := e.do(nil, "GET", "/v1/inbox", nil, nil)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 500 || res.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(body), transfer.CodeInternal) {
		t.Fatalf("panic answer: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	log := logs.String()
	if !strings.Contains(log, "panic in handler") {
		t.Fatal("the panic was not logged")
	}
	if hits := append(n.find("body", body), n.find("log", []byte(log))...); len(hits) > 0 {
		t.Fatalf("leaks: %v", hits)
	}
}
