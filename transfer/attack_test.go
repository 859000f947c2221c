package transfer_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"phix/internal/testenv"
	"phix/transfer"
)

func TestFlowPostgres(t *testing.T) { runFlow(t, newEnv(t, testenv.Postgres(t))) }

func TestPolicyDenials(t *testing.T) {
	e := newEnv(t, "")
	files := map[string][]byte{"a.bin": []byte("ciphertext")}
	type mut = func(*transfer.Request, *transfer.ConsentStatement)
	cases := []struct {
		name     string
		sender   *party
		receiver *party
		mut      mut
		reason   string
	}{
		{"receiver in a non-allowed region", e.a, e.c, nil, transfer.ReasonResidency},
		{"unknown data class", e.a, e.b, func(r *transfer.Request, _ *transfer.ConsentStatement) { r.DataClass = "astrology" }, transfer.ReasonDataClassUnknown},
		{"data class not entitled", e.a, e.b, func(r *transfer.Request, _ *transfer.ConsentStatement) { r.DataClass = "genomic" }, transfer.ReasonNotEntitled},
		{"purpose not permitted", e.a, e.b, func(r *transfer.Request, c *transfer.ConsentStatement) {
			r.Purpose = "HPAYMT"
			c.Purposes = []string{"HPAYMT"}
		}, transfer.ReasonPurposeNotPermitted},
		{"unknown purpose", e.a, e.b, func(r *transfer.Request, _ *transfer.ConsentStatement) { r.Purpose = "FUN" }, transfer.ReasonPurposeUnknown},
		{"expired consent", e.a, e.b, func(_ *transfer.Request, c *transfer.ConsentStatement) { c.ExpiresAt = time.Now().Add(-time.Minute) }, transfer.ReasonConsentExpired},
		{"stale consent", e.a, e.b, func(_ *transfer.Request, c *transfer.ConsentStatement) {
			c.IssuedAt = time.Now().Add(-90 * 24 * time.Hour)
		}, transfer.ReasonConsentStale},
		{"consent for another patient", e.a, e.b, func(_ *transfer.Request, c *transfer.ConsentStatement) { c.Patient = "pseud-other-0002" }, transfer.ReasonConsentBinding},
		{"consent for another receiver", e.a, e.b, func(_ *transfer.Request, c *transfer.ConsentStatement) { c.Receiver = "hospital-us" }, transfer.ReasonConsentBinding},
		{"unknown receiver", e.a, &party{ID: "hospital-zz"}, nil, transfer.ReasonReceiverUnknown},
		{"no partnership (b to a)", e.b, e.a, nil, transfer.ReasonNotEntitled},
		{"retention too long", e.a, e.b, func(r *transfer.Request, _ *transfer.ConsentStatement) {
			r.RetentionUntil = time.Now().Add(10 * 365 * 24 * time.Hour)
		}, transfer.ReasonRetention},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var muts []mut
			if c.mut != nil {
				muts = append(muts, c.mut)
			}
			req := e.request(c.sender, c.receiver, files, muts...)
			code, prob := e.doJSON(c.sender, "POST", "/v1/transfers", req, nil)
			if code != 403 || prob["code"] != transfer.CodePolicyDenied {
				t.Fatalf("got %d %v", code, prob)
			}
			if !hasReason(prob, c.reason) {
				t.Fatalf("reason %s missing: %v", c.reason, prob["reasons"])
			}
		})
	}
	t.Run("manifest signed by another key", func(t *testing.T) {
		req := e.request(e.a, e.b, files)
		req.Signature = sign(t, e.b.Key, transfer.CanonicalManifest(e.a.ID, &req))
		_, prob := e.doJSON(e.a, "POST", "/v1/transfers", req, nil)
		if !hasReason(prob, transfer.ReasonManifestSignature) {
			t.Fatalf("%v", prob)
		}
	})
	t.Run("manifest changed after signing", func(t *testing.T) {
		req := e.request(e.a, e.b, files)
		req.Files[0].Size++
		_, prob := e.doJSON(e.a, "POST", "/v1/transfers", req, nil)
		if !hasReason(prob, transfer.ReasonManifestSignature) {
			t.Fatalf("%v", prob)
		}
	})
	t.Run("sender identity differs from the certificate", func(t *testing.T) {
		// B presents a manifest A signed: it is verified against B's key.
		req := e.request(e.a, e.b, files)
		_, prob := e.doJSON(e.b, "POST", "/v1/transfers", req, nil)
		if !hasReason(prob, transfer.ReasonManifestSignature) || !hasReason(prob, transfer.ReasonConsentSignature) {
			t.Fatalf("%v", prob)
		}
	})
	// Every denial is audited with its reasons.
	var denies int
	for _, ev := range e.audit.all() {
		if ev.Decision != nil && ev.Decision.Effect == "deny" && len(ev.Decision.Policies) > 0 {
			denies++
		}
	}
	if denies < len(cases) {
		t.Fatalf("audited denials: %d", denies)
	}
}

func hasReason(prob map[string]any, reason string) bool {
	rs, _ := prob["reasons"].([]any)
	for _, r := range rs {
		if r == reason {
			return true
		}
	}
	return false
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, "")
	for _, name := range []string{"../etc/passwd", "a/b", `a\b`, "..", ".hidden", "x\x00y", string(make([]byte, 300)), "c:evil"} {
		req := e.request(e.a, e.b, map[string][]byte{"ok.bin": []byte("x")})
		req.Files[0].Name = name
		code, prob := e.doJSON(e.a, "POST", "/v1/transfers", req, nil)
		if code != 400 || prob["code"] != transfer.CodeInvalidFileName {
			t.Fatalf("name %q: %d %v", name, code, prob)
		}
	}
	req := e.request(e.a, e.b, map[string][]byte{"ok.bin": []byte("x")})
	req.Files[0].Size = 1 << 50
	if code, prob := e.doJSON(e.a, "POST", "/v1/transfers", req, nil); code != 413 || prob["code"] != transfer.CodeTooLarge {
		t.Fatalf("huge declared size: %d %v", code, prob)
	}
	req = e.request(e.a, e.b, map[string][]byte{"ok.bin": []byte("x")})
	req.Patient = "张三"
	if code, prob := e.doJSON(e.a, "POST", "/v1/transfers", req, nil); code != 400 || prob["code"] != transfer.CodeBadRequest {
		t.Fatalf("name as patient: %d %v", code, prob)
	}
	if code, _ := e.doJSON(nil, "POST", "/v1/transfers", req, nil); code != 401 {
		t.Fatalf("anonymous: %d", code)
	}
	if code, _ := e.doJSON(&party{ID: "nobody"}, "GET", "/v1/transfers", nil, nil); code != 403 {
		t.Fatalf("unregistered: %d", code)
	}
	res := e.do(e.a, "POST", "/v1/transfers", nil, map[string]string{"Content-Type": "application/json"})
	if res.StatusCode != 400 {
		t.Fatalf("empty body: %d", res.StatusCode)
	}
	res.Body.Close()
	// Admin API needs the token.
	res = e.do(nil, "GET", "/v1/admin/hospitals", nil, map[string]string{"Authorization": "Bearer wrong"})
	if res.StatusCode != 401 {
		t.Fatalf("admin with a wrong token: %d", res.StatusCode)
	}
	res.Body.Close()
}

func TestUploadAttacks(t *testing.T) {
	e := newEnv(t, "")
	data := randBytes(10_000)
	req := e.request(e.a, e.b, map[string][]byte{"f.bin": data})
	v := e.create(e.a, req)
	url := e.ts.URL + v.Files[0].UploadURL

	// Huge Upload-Length on creation and on a PATCH.
	res := e.do(e.a, "POST", url, nil, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": "99999999999"})
	if res.StatusCode != 413 {
		t.Fatalf("huge Upload-Length: %d", res.StatusCode)
	}
	res.Body.Close()
	res = e.do(e.a, "POST", url, nil, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": "10000"})
	if res.StatusCode != 201 || res.Header.Get("Location") == "" {
		t.Fatalf("creation: %d", res.StatusCode)
	}
	res.Body.Close()
	// Checksum mismatch: 460, offset unchanged.
	res = e.patch(e.a, url, 0, data[:5000], "sha256 "+b64sum(data[:4999]))
	if res.StatusCode != 460 {
		t.Fatalf("checksum mismatch: %d", res.StatusCode)
	}
	res.Body.Close()
	res = e.do(e.a, "HEAD", url, nil, map[string]string{"Tus-Resumable": "1.0.0"})
	if res.Header.Get("Upload-Offset") != "0" {
		t.Fatalf("offset after 460: %s", res.Header.Get("Upload-Offset"))
	}
	res.Body.Close()
	// A file longer than its manifest: refused, offset unchanged.
	long := append(append([]byte(nil), data...), 1, 2, 3)
	res = e.patch(e.a, url, 0, long, "")
	if res.StatusCode != 413 {
		t.Fatalf("longer than the manifest: %d", res.StatusCode)
	}
	res.Body.Close()
	// Wrong offset, wrong version, wrong content type.
	res = e.patch(e.a, url, 5, data[:10], "")
	if res.StatusCode != 409 {
		t.Fatalf("wrong offset: %d", res.StatusCode)
	}
	res.Body.Close()
	res = e.do(e.a, "PATCH", url, nil, map[string]string{"Tus-Resumable": "0.2.2", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
	if res.StatusCode != 412 {
		t.Fatalf("wrong tus version: %d", res.StatusCode)
	}
	res.Body.Close()

	// Foreign capability: B uses A's URL; A with another certificate.
	res = e.patch(e.b, url, 0, data[:10], "")
	if res.StatusCode != 403 {
		t.Fatalf("foreign hospital: %d", res.StatusCode)
	}
	res.Body.Close()
	other := *e.a
	other.Cert = "00" + other.Cert[2:]
	res = e.patch(&other, url, 0, data[:10], "")
	if res.StatusCode != 403 {
		t.Fatalf("foreign certificate: %d", res.StatusCode)
	}
	res.Body.Close()
	// Tampered capability.
	tampered := url[:len(url)-1] + string("AB"[0+boolIdx(url[len(url)-1] == 'A')])
	res = e.patch(e.a, tampered, 0, data[:10], "")
	if res.StatusCode != 403 {
		t.Fatalf("tampered: %d", res.StatusCode)
	}
	res.Body.Close()

	e.upload(e.a, url, data, 0, 4000)
	// Replayed capability after completion: 410.
	res = e.patch(e.a, url, 10_000, []byte{1}, "")
	if res.StatusCode != 410 {
		t.Fatalf("replay after completion: %d", res.StatusCode)
	}
	res.Body.Close()
	if code, prob := e.doJSON(e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, nil); code != 200 {
		t.Fatalf("complete: %d %v", code, prob)
	}
	// B cannot download through A's identity, and A cannot list B's inbox.
	if code, _ := e.doJSON(e.c, "GET", "/v1/transfers/"+v.ID, nil, nil); code != 404 {
		t.Fatalf("third hospital reads a transfer: %d", code)
	}
}

func boolIdx(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestCapabilityExpiry(t *testing.T) {
	clock := time.Now()
	e := newEnv(t, "", func(c *transfer.Config) { c.Now = func() time.Time { return clock }; c.CapabilityTTL = time.Minute })
	data := randBytes(100)
	v := e.create(e.a, e.request(e.a, e.b, map[string][]byte{"f.bin": data}))
	url := e.ts.URL + v.Files[0].UploadURL
	e.upload(e.a, url, data[:50], 0, 50)
	clock = clock.Add(50 * time.Second) // refreshed by the PATCH: still alive
	res := e.do(e.a, "HEAD", url, nil, map[string]string{"Tus-Resumable": "1.0.0"})
	if res.StatusCode != 200 {
		t.Fatalf("within idle TTL: %d", res.StatusCode)
	}
	res.Body.Close()
	clock = clock.Add(2 * time.Minute)
	res = e.patch(e.a, url, 50, data[50:], "")
	body := readAll(res)
	if res.StatusCode != 410 || !json.Valid([]byte(body)) {
		t.Fatalf("expired: %d %s", res.StatusCode, body)
	}
	// The sender renews its upload URLs and resumes.
	var rv transfer.TransferView
	e.doJSON(e.a, "GET", "/v1/transfers/"+v.ID+"?renew=uploads", nil, &rv)
	if rv.Files[0].UploadURL == "" || rv.Files[0].Offset != 50 {
		t.Fatalf("renew: %+v", rv.Files)
	}
	e.upload(e.a, e.ts.URL+rv.Files[0].UploadURL, data, 50, 50)
}

func TestHashMismatchAtFinalize(t *testing.T) {
	e := newEnv(t, "")
	data := randBytes(1000)
	req := e.request(e.a, e.b, map[string][]byte{"f.bin": data})
	v := e.create(e.a, req)
	wrong := randBytes(1000) // same length, other content
	e.upload(e.a, e.ts.URL+v.Files[0].UploadURL, wrong, 0, 1000)
	code, prob := e.doJSON(e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, nil)
	if code != 422 || prob["code"] != transfer.CodeHashMismatch {
		t.Fatalf("hash mismatch: %d %v", code, prob)
	}
	tr, _, err := e.store.Transfer(context.Background(), v.ID)
	if err != nil || tr.Status != transfer.TransferFailed {
		t.Fatalf("status %q %v", tr.Status, err)
	}
}

func TestSuspendedAndOutsideNetwork(t *testing.T) {
	e := newEnv(t, "")
	res := e.admin("POST", "/v1/admin/hospitals/hospital-b/suspend", nil)
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("suspend: %d", res.StatusCode)
	}
	if code, prob := e.doJSON(e.b, "GET", "/v1/inbox", nil, nil); code != 403 || prob["code"] != transfer.CodeSuspended {
		t.Fatalf("suspended caller: %d %v", code, prob)
	}
	req := e.request(e.a, e.b, map[string][]byte{"f.bin": []byte("x")})
	if _, prob := e.doJSON(e.a, "POST", "/v1/transfers", req, nil); !hasReason(prob, transfer.ReasonReceiverInactive) {
		t.Fatalf("suspended receiver: %v", prob)
	}
	far := newParty(t, "hospital-far", "CN-GD")
	far.H.Networks = []string{"10.9.0.0/16"}
	res = e.admin("POST", "/v1/admin/hospitals", far.H)
	res.Body.Close()
	if code, prob := e.doJSON(far, "GET", "/v1/transfers", nil, nil); code != 403 || prob["code"] != transfer.CodeOutsideNetwork {
		t.Fatalf("outside network: %d %v", code, prob)
	}
}
