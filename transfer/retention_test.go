package transfer_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"phix/audit"
	"phix/blob"
	"phix/internal/testenv"
	"phix/transfer"
)

// objects counts the stored objects of a transfer.
func (e *env) objects(id string) int {
	e.t.Helper()
	n := 0
	if err := e.blobs.List(context.Background(), id+"/", func(blob.Info) error { n++; return nil }); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// sendReady creates a transfer with consent, uploads it and completes it.
func (e *env) sendReady(consent string, data []byte) (transfer.Request, transfer.TransferView) {
	e.t.Helper()
	req := e.request(e.a, e.b, map[string][]byte{"x.enc": data}, func(r *transfer.Request, cs *transfer.ConsentStatement) {
		r.ConsentID, cs.ConsentID = consent, consent
	})
	v := e.create(e.a, req)
	e.upload(e.a, e.ts.URL+v.Files[0].UploadURL, data, 0, 4096)
	if code, prob := e.doJSON(e.a, "POST", "/v1/transfers/"+v.ID+"/complete", nil, nil); code != 200 {
		e.t.Fatalf("complete: %d %v", code, prob)
	}
	return req, v
}

func (e *env) deliver(req transfer.Request, id string) {
	e.t.Helper()
	at := time.Now().UTC()
	tr := transfer.Transfer{ID: id, Sender: e.a.ID, Receiver: e.b.ID, Request: req}
	rr := transfer.ReceiptRequest{ReceivedAt: at, Signature: sign(e.t, e.b.Key, transfer.ReceiptMessage(&tr, at))}
	if code, prob := e.doJSON(e.b, "POST", "/v1/transfers/"+id+"/receipt", rr, nil); code != 200 {
		e.t.Fatalf("receipt: %d %v", code, prob)
	}
}

func TestConsentWithdrawal(t *testing.T)         { runConsentWithdrawal(t, "") }
func TestConsentWithdrawalPostgres(t *testing.T) { runConsentWithdrawal(t, testenv.Postgres(t)) }
func TestRetentionSweeper(t *testing.T)          { runRetentionSweeper(t, "") }
func TestRetentionSweeperPostgres(t *testing.T)  { runRetentionSweeper(t, testenv.Postgres(t)) }

func runConsentWithdrawal(t *testing.T, storeURL string) {
	e := newEnv(t, storeURL)
	data := randBytes(10_000)
	// Pending: one half uploaded, one ready in B's inbox; another consent is untouched.
	partReq := e.request(e.a, e.b, map[string][]byte{"x.enc": data}, func(r *transfer.Request, cs *transfer.ConsentStatement) {
		r.ConsentID, cs.ConsentID = "consent-w", "consent-w"
	})
	part := e.create(e.a, partReq)
	e.upload(e.a, e.ts.URL+part.Files[0].UploadURL, data[:5000], 0, 5000)
	_, ready := e.sendReady("consent-w", data)
	_, other := e.sendReady("consent-keep", data)

	// Another hospital "withdrawing" the id changes nothing of A's: consents are the sender's.
	var wr transfer.WithdrawResult
	if code, prob := e.doJSON(e.b, "POST", "/v1/consents/consent-w/withdraw", nil, &wr); code != 200 || wr.Stopped != 0 || wr.Erased != 0 {
		t.Fatalf("foreign withdraw: %d %v %+v", code, prob, wr)
	}
	if code, prob := e.doJSON(e.a, "POST", "/v1/consents/consent-w/withdraw", nil, &wr); code != 200 || wr.Stopped != 2 || wr.Erased != 2 {
		t.Fatalf("withdraw: %d %v %+v", code, prob, wr)
	}
	// Idempotent.
	if code, _ := e.doJSON(e.a, "POST", "/v1/consents/consent-w/withdraw", nil, &wr); code != 200 || wr.Stopped != 0 || wr.Erased != 0 {
		t.Fatalf("second withdraw: %d %+v", code, wr)
	}
	if code, prob := e.doJSON(e.a, "POST", "/v1/consents/bad%20id/withdraw", nil, nil); code != 400 || prob["code"] != transfer.CodeBadRequest {
		t.Fatalf("bad consent id: %d %v", code, prob)
	}

	// Uploads are refused with their own code.
	res := e.patch(e.a, e.ts.URL+part.Files[0].UploadURL, 5000, data[5000:], "")
	if prob := readAll(res); res.StatusCode != 410 || !strings.Contains(prob, transfer.CodeConsentWithdrawn) {
		t.Fatalf("upload after withdrawal: %d %s", res.StatusCode, prob)
	}
	// The inbox and the receiver's view hide them; the other consent's transfer stays.
	var inbox struct{ Deliveries []transfer.TransferView }
	if code, _ := e.doJSON(e.b, "GET", "/v1/inbox", nil, &inbox); code != 200 || len(inbox.Deliveries) != 1 || inbox.Deliveries[0].ID != other.ID {
		t.Fatalf("inbox after withdrawal: %+v", inbox)
	}
	if code, _ := e.doJSON(e.b, "GET", "/v1/transfers/"+ready.ID, nil, nil); code != 404 {
		t.Fatalf("receiver still sees a withdrawn transfer: %d", code)
	}
	// Erased: no objects left, marked, status withdrawn.
	for _, id := range []string{part.ID, ready.ID} {
		if n := e.objects(id); n != 0 {
			t.Fatalf("%d objects left after erasure", n)
		}
		var v transfer.TransferView
		e.doJSON(e.a, "GET", "/v1/transfers/"+id, nil, &v)
		if v.Status != transfer.TransferWithdrawn || v.Erased == nil || v.Reason != transfer.ReasonConsentWithdrawn {
			t.Fatalf("sender view: %+v", v)
		}
	}
	if e.objects(other.ID) == 0 {
		t.Fatal("another consent's transfer was erased")
	}
	// A new transfer under the withdrawn consent is refused by policy.
	req := e.request(e.a, e.b, map[string][]byte{"x.enc": data}, func(r *transfer.Request, cs *transfer.ConsentStatement) {
		r.ConsentID, cs.ConsentID = "consent-w", "consent-w"
	})
	code, prob := e.doJSON(e.a, "POST", "/v1/transfers", req, nil)
	if code != 403 || !hasReason(prob, transfer.ReasonConsentWithdrawn) {
		t.Fatalf("create under withdrawn consent: %d %v", code, prob)
	}
	// Audited: the withdrawal and each erasure.
	var consents, deletes int
	for _, ev := range e.audit.all() {
		switch ev.Action {
		case audit.ActionConsent:
			consents++
		case audit.ActionDelete:
			deletes++
		}
	}
	if consents != 3 || deletes != 2 {
		t.Fatalf("audited %d consent and %d delete events", consents, deletes)
	}
}

// TestRetentionSweeper: delivered transfers go after the grace period,
// undelivered ones at retention_until (and become expired), closed ones at
// once; nothing goes early.
func runRetentionSweeper(t *testing.T, storeURL string) {
	var skew atomic.Int64 // the coordinator's clock runs ahead by this much
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	var srv *transfer.Server
	e := newEnv(t, storeURL, func(c *transfer.Config) { c.Now = clock; c.DeliveredGrace = 24 * time.Hour })
	srv = e.srv
	ctx := context.Background()
	data := randBytes(5000)

	delReq, delivered := e.sendReady("consent-1", data)
	e.deliver(delReq, delivered.ID)
	_, ready := e.sendReady("consent-1", data) // never received
	shortReq := e.request(e.a, e.b, map[string][]byte{"x.enc": data}, func(r *transfer.Request, _ *transfer.ConsentStatement) {
		r.RetentionUntil = time.Now().Add(2 * time.Hour).Truncate(time.Second)
	})
	short := e.create(e.a, shortReq) // uploading, short retention
	cancelled := e.create(e.a, e.request(e.a, e.b, map[string][]byte{"x.enc": data}))
	res := e.do(e.a, "DELETE", e.ts.URL+cancelled.Files[0].UploadURL, nil, map[string]string{"Tus-Resumable": "1.0.0"})
	res.Body.Close()

	sweep := func() int {
		n, err := srv.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	status := func(id string) transfer.TransferView {
		var v transfer.TransferView
		e.doJSON(e.a, "GET", "/v1/transfers/"+id, nil, &v)
		return v
	}
	if n := sweep(); n != 1 || status(cancelled.ID).Erased == nil {
		t.Fatalf("first sweep erased %d (want the cancelled one)", n)
	}
	if e.objects(delivered.ID) == 0 || e.objects(short.ID) == 0 {
		t.Fatal("erased before its time")
	}
	skew.Store(int64(3 * time.Hour)) // past the short retention, inside the grace
	if n := sweep(); n != 1 {
		t.Fatalf("sweep at +3h erased %d", n)
	}
	if v := status(short.ID); v.Status != transfer.TransferExpired || v.Erased == nil || e.objects(short.ID) != 0 {
		t.Fatalf("short retention: %+v", v)
	}
	skew.Store(int64(25 * time.Hour)) // past the grace
	if n := sweep(); n != 1 {
		t.Fatalf("sweep at +25h erased %d", n)
	}
	if v := status(delivered.ID); v.Status != transfer.TransferDelivered || v.Erased == nil || e.objects(delivered.ID) != 0 {
		t.Fatalf("delivered: %+v", v)
	}
	if e.objects(ready.ID) == 0 {
		t.Fatal("an undelivered transfer inside its retention was erased")
	}
	skew.Store(int64(31 * 24 * time.Hour)) // past the 30-day retention_until
	if n := sweep(); n != 1 || status(ready.ID).Status != transfer.TransferExpired || e.objects(ready.ID) != 0 {
		t.Fatalf("sweep at +31d erased %d, status %s", n, status(ready.ID).Status)
	}
	if n := sweep(); n != 0 {
		t.Fatalf("idle sweep erased %d", n)
	}
	// The periodic runner sweeps at once and stops with its context.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { srv.RunSweeper(cctx, time.Hour); close(done) }()
	cancel()
	<-done
}
