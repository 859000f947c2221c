package transfer_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"phix/audit"
	"phix/transfer"
)

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// runFlow is the end-to-end path: create, upload with resume, complete,
// inbox, ranged download, receipt, sender sees delivered.
func runFlow(t *testing.T, e *env) {
	f1, f2 := randBytes(300_000), randBytes(1000)
	req := e.request(e.a, e.b, map[string][]byte{"ct-0001.bin": f1, "report.enc": f2})
	v := e.create(e.a, req)
	if v.Status != transfer.TransferUploading || len(v.Files) != 2 || v.Files[0].UploadURL == "" {
		t.Fatalf("created: %+v", v)
	}
	// First file: one chunk, then a HEAD, then the rest (resume).
	url := e.ts.URL + v.Files[0].UploadURL
	res := e.patch(e.a, url, 0, f1[:100_000], "sha256 "+b64sum(f1[:100_000]))
	if res.StatusCode != 204 || res.Header.Get("Upload-Offset") != "100000" || res.Header.Get("Upload-Expires") == "" {
		t.Fatalf("patch: %d %v", res.StatusCode, res.Header)
	}
	res.Body.Close()
	res = e.do(e.a, "HEAD", url, nil, map[string]string{"Tus-Resumable": "1.0.0"})
	if res.StatusCode != 200 || res.Header.Get("Upload-Offset") != "100000" || res.Header.Get("Upload-Length") != "300000" {
		t.Fatalf("head: %d %v", res.StatusCode, res.Header)
	}
	e.upload(e.a, url, f1, 100_000, 64<<10)
	e.upload(e.a, e.ts.URL+v.Files[1].UploadURL, f2, 0, 4096)

	// The receiver cannot see it before completion.
	if code, _ := e.doJSON(e.b, "GET", "/v1/transfers/"+v.ID, nil, nil); code != 404 {
		t.Fatalf("receiver saw an uploading transfer: %d", code)
	}
	var done transfer.TransferView
	if code, prob := e.doJSON(e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, &done); code != 200 || done.Status != transfer.TransferReady {
		t.Fatalf("complete: %d %v", code, prob)
	}
	// Completing again is idempotent.
	if code, _ := e.doJSON(e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, nil); code != 200 {
		t.Fatalf("second complete: %d", code)
	}

	var inbox struct{ Deliveries []transfer.TransferView }
	if code, prob := e.doJSON(e.b, "GET", "/v1/inbox?wait=5s", nil, &inbox); code != 200 || len(inbox.Deliveries) != 1 || inbox.Deliveries[0].ID != v.ID {
		t.Fatalf("inbox: %d %v %+v", code, prob, inbox)
	}
	var aInbox struct{ Deliveries []transfer.TransferView }
	if e.doJSON(e.a, "GET", "/v1/inbox", nil, &aInbox); len(aInbox.Deliveries) != 0 {
		t.Fatalf("sender's inbox shows the receiver's delivery")
	}

	var rv transfer.TransferView
	if code, prob := e.doJSON(e.b, "GET", "/v1/transfers/"+v.ID, nil, &rv); code != 200 || rv.Files[0].DownloadURL == "" {
		t.Fatalf("receiver get: %d %v", code, prob)
	}
	dl := e.ts.URL + rv.Files[0].DownloadURL
	res = e.do(e.b, "GET", dl, nil, map[string]string{"Range": "bytes=1000-1999"})
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 206 || !bytes.Equal(got, f1[1000:2000]) {
		t.Fatalf("range: %d, %d bytes", res.StatusCode, len(got))
	}
	res = e.do(e.b, "GET", dl, nil, map[string]string{"Range": "bytes=999999-"})
	res.Body.Close()
	if res.StatusCode != 416 {
		t.Fatalf("unsatisfiable range: %d", res.StatusCode)
	}
	res = e.do(e.b, "GET", dl, nil, nil)
	got, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Equal(got, f1) {
		t.Fatalf("full download: %d", res.StatusCode)
	}
	// Hospital A cannot use B's download capability.
	res = e.do(e.a, "GET", dl, nil, nil)
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Fatalf("foreign download: %d", res.StatusCode)
	}

	// Receipt: a bad signature is refused, a good one delivers.
	at := time.Now().UTC()
	tr := transfer.Transfer{ID: v.ID, Sender: e.a.ID, Receiver: e.b.ID, Request: req}
	bad := transfer.ReceiptRequest{ReceivedAt: at, Signature: sign(t, e.a.Key, transfer.ReceiptMessage(&tr, at))}
	if code, prob := e.doJSON(e.b, "POST", "/v1/transfers/"+v.ID+"/receipt", bad, nil); code != 400 || prob["code"] != transfer.CodeBadSignature {
		t.Fatalf("receipt signed by the sender: %d %v", code, prob)
	}
	good := transfer.ReceiptRequest{ReceivedAt: at, Signature: sign(t, e.b.Key, transfer.ReceiptMessage(&tr, at))}
	if code, prob := e.doJSON(e.b, "POST", "/v1/transfers/"+v.ID+"/receipt", good, nil); code != 200 {
		t.Fatalf("receipt: %d %v", code, prob)
	}
	var sv transfer.TransferView
	e.doJSON(e.a, "GET", "/v1/transfers/"+v.ID, nil, &sv)
	if sv.Status != transfer.TransferDelivered || sv.Receipt == nil || sv.Receipt.Signature != good.Signature {
		t.Fatalf("sender view after receipt: %+v", sv)
	}
	// The download capability died with the receipt.
	res = e.do(e.b, "GET", dl, nil, nil)
	res.Body.Close()
	if res.StatusCode != 410 {
		t.Fatalf("download after receipt: %d", res.StatusCode)
	}
	var list struct{ Transfers []transfer.TransferView }
	e.doJSON(e.b, "GET", "/v1/transfers?role=receiver", nil, &list)
	if len(list.Transfers) != 1 {
		t.Fatalf("receiver list: %+v", list)
	}
	e.doJSON(e.c, "GET", "/v1/transfers?role=receiver", nil, &list)
	if len(list.Transfers) != 0 {
		t.Fatalf("a third hospital lists the transfer")
	}
	// The permit decision is in the audit log with its rules.
	var permit bool
	for _, ev := range e.audit.all() {
		if ev.Action == audit.ActionTransfer && ev.Decision != nil && ev.Decision.Effect == "permit" {
			permit = true
		}
	}
	if !permit {
		t.Fatal("no permit decision audited")
	}
}

func TestFlowSQLite(t *testing.T) { runFlow(t, newEnv(t, "")) }

func TestMetricsAndHealth(t *testing.T) {
	e := newEnv(t, "")
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		res, err := http.Get(e.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(res)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d %s", p, res.StatusCode, body)
		}
		if p == "/metrics" && !strings.Contains(body, "phix_transfer_latency_seconds_count") {
			t.Fatalf("metrics: %s", body)
		}
	}
	req := e.request(e.a, e.b, map[string][]byte{"x.bin": []byte("x")}, func(r *transfer.Request, _ *transfer.ConsentStatement) { r.DataClass = "genomic" })
	e.doJSON(e.a, "POST", "/v1/transfers", req, nil)
	res, _ := http.Get(e.ts.URL + "/metrics")
	if body := readAll(res); !strings.Contains(body, `phix_transfer_policy_denials_total{reason="receiver-not-entitled"} 1`) {
		t.Fatalf("denial not counted: %s", body)
	}
}

var _ = json.Marshal
