package transfer_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

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

func TestHealth(t *testing.T) {
	e := newEnv(t, "")
	for _, p := range []string{"/healthz", "/readyz"} {
		res, err := http.Get(e.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(res); res.StatusCode != 200 {
			t.Fatalf("%s: %d %s", p, res.StatusCode, body)
		}
	}
}

// scrape fetches /metrics over HTTP and parses the text exposition.
func scrape(t *testing.T, url string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(res)
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", res.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs, body
}

// metricValue is the value of the series of family name whose labels
// include want (a counter, gauge or a histogram's count).
func metricValue(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("metric %s missing", name)
	}
next:
	for _, m := range mf.GetMetric() {
		for k, v := range want {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("metric %s%v missing", name, want)
	return 0
}

// TestMetrics runs the whole flow plus a checksum failure and a policy
// denial, scrapes /metrics and checks each series, and that no transfer
// id, patient pseudonym or file name appears in the exposition.
func TestMetrics(t *testing.T) {
	e := newEnv(t, "")
	runFlow(t, e) // files of 300000 and 1000 bytes; downloads 1000 + 300000 bytes

	data := []byte("checksummed chunk")
	req := e.request(e.a, e.b, map[string][]byte{"x.bin": data})
	v := e.create(e.a, req)
	res := e.patch(e.a, e.ts.URL+v.Files[0].UploadURL, 0, data, "sha256 "+b64sum([]byte("something else")))
	res.Body.Close()
	if res.StatusCode != transfer.StatusChecksumMismatch {
		t.Fatalf("bad checksum: %d", res.StatusCode)
	}
	deny := e.request(e.a, e.b, map[string][]byte{"x.bin": []byte("x")}, func(r *transfer.Request, _ *transfer.ConsentStatement) { r.DataClass = "genomic" })
	if code, _ := e.doJSON(e.a, "POST", "/v1/transfers", deny, nil); code != 403 {
		t.Fatalf("denied transfer: %d", code)
	}

	mfs, body := scrape(t, e.ts.URL)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"phix_transfer_latency_seconds", map[string]string{"phase": "ready"}, 1},
		{"phix_transfer_latency_seconds", map[string]string{"phase": "receipt"}, 1},
		{"phix_transfer_bytes_received_total", nil, 301_000},
		{"phix_transfer_bytes_sent_total", nil, 301_000},
		{"phix_transfer_tus_checksum_failures_total", nil, 1},
		{"phix_transfer_failures_total", map[string]string{"code": transfer.CodeChecksumMismatch}, 1},
		{"phix_transfer_policy_denials_total", map[string]string{"reason": transfer.ReasonNotEntitled}, 1},
		{"phix_transfer_transfers_total", map[string]string{"event": "created"}, 2},
		{"phix_transfer_transfers_total", map[string]string{"event": "delivered"}, 1},
		{"phix_transfer_active_uploads", nil, 0},
	} {
		if got := metricValue(t, mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %g, want %g", c.name, c.labels, got, c.want)
		}
	}
	if mfs["go_goroutines"] == nil || mfs["process_resident_memory_bytes"] == nil {
		t.Error("Go and process collectors missing")
	}
	var list struct{ Transfers []transfer.TransferView }
	e.doJSON(e.a, "GET", "/v1/transfers?role=sender", nil, &list)
	if len(list.Transfers) < 2 {
		t.Fatalf("sender list: %+v", list)
	}
	for _, tv := range list.Transfers {
		tr, _, err := e.store.Transfer(t.Context(), tv.ID)
		if err != nil {
			t.Fatal(err)
		}
		secrets := []string{tr.ID, tr.Request.Patient, tr.Request.ConsentID}
		for _, f := range tr.Request.Files {
			secrets = append(secrets, f.Name)
		}
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Fatalf("/metrics exposes %q", s)
			}
		}
	}
}
