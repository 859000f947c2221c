package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"phix/devnet"
	"phix/gateway"
	"phix/suite"
	"phix/transfer"
)

// faultRT injects faults into one gateway's traffic to the coordinator.
// A gateway has two clients for the coordinator (API calls over HTTP/2,
// file bodies over HTTP/1.1: coord.Client.Bulk); via wraps each, and
// both share the faults and counters.
type faultRT struct {
	// down makes every request fail as if the network were cut.
	down atomic.Bool
	// patchDelay slows every upload chunk.
	patchDelay time.Duration
	// patches counts upload chunks; onPatch runs after each.
	patches atomic.Int64
	onPatch func(n int64)
	// corrupt flips one byte of the next download response body (of the
	// next one longer than corruptOver bytes, if set).
	corrupt     atomic.Int64
	corruptOver int
}

var errCut = errors.New("test: network cut")

// via is f in front of next.
func (f *faultRT) via(next http.RoundTripper) http.RoundTripper { return faultVia{f, next} }

type faultVia struct {
	f    *faultRT
	next http.RoundTripper
}

func (v faultVia) RoundTrip(r *http.Request) (*http.Response, error) { return v.f.roundTrip(r, v.next) }

func (f *faultRT) roundTrip(r *http.Request, next http.RoundTripper) (*http.Response, error) {
	if f.down.Load() {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errCut
	}
	if r.Method == http.MethodPatch && f.patchDelay > 0 {
		time.Sleep(f.patchDelay)
	}
	res, err := next.RoundTrip(r)
	if err != nil {
		return res, err
	}
	if r.Method == http.MethodPatch {
		n := f.patches.Add(1)
		if f.onPatch != nil {
			f.onPatch(n)
		}
	}
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/v1/downloads/") && f.corrupt.Load() > 0 {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if len(b) > max(100, f.corruptOver) && f.corrupt.Add(-1) >= 0 {
			b[len(b)/2] ^= 0x40
		}
		res.Body = io.NopCloser(bytes.NewReader(b))
	}
	return res, nil
}

// faultNet starts a network (in the mode of base) whose gateways'
// coordinator traffic passes through faults[hospital], with 1 MiB upload
// chunks.
func faultNet(t *testing.T, base devnet.Options, faults map[string]*faultRT, hook func(string, *gateway.Config)) *devnet.Network {
	base.WrapCoordinator = func(h string, rt http.RoundTripper) http.RoundTripper {
		if f := faults[h]; f != nil {
			return f.via(rt)
		}
		return rt
	}
	base.Gateway = func(h string, cfg *gateway.Config) {
		cfg.ChunkSize = 1 << 20
		cfg.ConsentCheckEvery = 20 * time.Millisecond
		if hook != nil {
			hook(h, cfg)
		}
	}
	return startNet(t, base)
}

func sendFile(t *testing.T, n *devnet.Network, size int) (*gateway.Job, []byte) {
	t.Helper()
	src := randomFile(t, t.TempDir(), "scan.pdf", size)
	job, err := n.Hospitals[0].Gateway.Send(context.Background(), gateway.SendRequest{To: "hospital-b", Purpose: "TREAT",
		Consent: n.Demo.Consent, FHIR: n.Demo.Patient + "/$everything", Files: []gateway.SourceFile{{Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(src)
	return job, data
}

func deliveredFile(t *testing.T, n *devnet.Network, rec *gateway.Inbound) []byte {
	t.Helper()
	if len(rec.Files) != 1 {
		t.Fatalf("delivered files %v", rec.Files)
	}
	b, err := os.ReadFile(filepath.Join(n.Hospitals[1].Gateway.DeliveryDir(), rec.Files[0]))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFaultDLPBlocks: a DLP finding blocks the send and names the kind and
// location, never the value; nothing reaches the coordinator.
func TestFaultDLPBlocks(t *testing.T) { inModes(t, testFaultDLPBlocks) }

func testFaultDLPBlocks(t *testing.T, base devnet.Options) {
	n := startNet(t, base)
	csv := filepath.Join(t.TempDir(), "cohort.csv")
	if err := os.WriteFile(csv, []byte("id,contact\n1,call 415-555-0199 or jane.doe@example.org\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	job, err := n.Hospitals[0].Gateway.Send(context.Background(), gateway.SendRequest{To: "hospital-b", Purpose: "HRESCH",
		Consent: n.Demo.Consent, Files: []gateway.SourceFile{{Path: csv}}})
	if err == nil || !strings.Contains(err.Error(), gateway.CodeDLPBlocked) {
		t.Fatalf("send: %v", err)
	}
	if job.Status != gateway.JobBlocked || job.ID != "" {
		t.Fatalf("job %+v", job)
	}
	kinds := map[string]string{}
	for _, f := range job.Findings {
		kinds[f.Kind] = f.Location
	}
	if kinds["PHONE"] != "row 2, col 2 (contact)" || kinds["EMAIL"] != "row 2, col 2 (contact)" {
		t.Fatalf("findings %+v", job.Findings)
	}
	for _, s := range []string{err.Error(), job.Error} {
		if strings.Contains(s, "555-0199") || strings.Contains(s, "jane.doe") {
			t.Fatal("a finding's value leaked into the report")
		}
	}
	if ts, _ := n.CoordinatorStore.Transfers(context.Background(), "hospital-a", "sender", 10); len(ts) != 0 {
		t.Fatalf("the coordinator got %d transfers", len(ts))
	}
}

// TestFaultConsentWithdrawnMidSend: the consent is revoked in A's FHIR
// server while the upload runs; the gateway stops, the coordinator erases
// what arrived and B never sees the transfer.
func TestFaultConsentWithdrawnMidSend(t *testing.T) { inModes(t, testFaultConsentWithdrawnMidSend) }

func testFaultConsentWithdrawnMidSend(t *testing.T, base devnet.Options) {
	var n *devnet.Network
	var once sync.Once
	revoked := make(chan struct{})
	f := &faultRT{patchDelay: 30 * time.Millisecond}
	f.onPatch = func(k int64) {
		if k == 2 {
			once.Do(func() {
				go func() {
					defer close(revoked)
					a := n.Hospitals[0]
					// The patient withdraws: the consent is recorded again as
					// inactive, signed anew. Changing a recorded consent is an
					// override, so it needs the caller's second factor
					// (docs/enforcement.md).
					c := fhirGet(t, a, n.Demo.Consent)
					c["status"] = "inactive"
					delete(c, "meta")
					c, err := a.SignConsent(withoutSignature(c))
					if err != nil {
						t.Error(err)
						return
					}
					if err := putJSON(a, n.Demo.Consent, c, "X-TOTP", adminTOTP(t, a)); err != nil {
						t.Error(err)
					}
				}()
			})
		}
	}
	n = faultNet(t, base, map[string]*faultRT{"hospital-a": f}, nil)
	job, _ := sendFile(t, n, 12<<20)
	st := waitJob(t, n.Hospitals[0].Gateway, job.ID, gateway.JobWithdrawn)
	<-revoked
	if st.Code != gateway.CodeConsentWithdraw || st.Sent >= st.Total {
		t.Fatalf("status %+v", st)
	}
	tr, _, err := n.CoordinatorStore.Transfer(context.Background(), job.ID)
	if err != nil || tr.Status != transfer.TransferWithdrawn || tr.Erased.IsZero() {
		t.Fatalf("coordinator: %v %+v", err, tr)
	}
	if recs, err := n.Hospitals[1].Gateway.ReceiveOnce(context.Background(), 0); err != nil || len(recs) != 0 {
		t.Fatalf("B received %d: %v", len(recs), err)
	}
}

func putJSON(h devnet.Hospital, rel string, v map[string]any, header ...string) error {
	b, _ := jsonMarshal(v)
	req, _ := http.NewRequest("PUT", h.FHIR+"/"+rel, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+h.Token)
	req.Header.Set("Content-Type", "application/fhir+json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		body, _ := io.ReadAll(res.Body)
		return errors.New("PUT " + rel + ": " + res.Status + " " + string(body))
	}
	return nil
}

// TestFaultCoordinatorUnreachable: the network to the coordinator breaks
// mid-upload and comes back; the upload resumes from the server's offset
// and the file arrives intact.
func TestFaultCoordinatorUnreachable(t *testing.T) { inModes(t, testFaultCoordinatorUnreachable) }

func testFaultCoordinatorUnreachable(t *testing.T, base devnet.Options) {
	f := &faultRT{}
	f.onPatch = func(k int64) {
		if k == 3 {
			f.down.Store(true)
			time.AfterFunc(700*time.Millisecond, func() { f.down.Store(false) })
		}
	}
	n := faultNet(t, base, map[string]*faultRT{"hospital-a": f}, nil)
	job, data := sendFile(t, n, 6<<20)
	waitJob(t, n.Hospitals[0].Gateway, job.ID, gateway.JobSent)
	if f.patches.Load() < 6 {
		t.Fatalf("only %d chunks", f.patches.Load())
	}
	rec := receiveUntil(t, n.Hospitals[1].Gateway, job.ID)
	if rec.Status != gateway.InDelivered || !bytes.Equal(deliveredFile(t, n, rec), data) {
		t.Fatalf("inbound %+v", rec)
	}
}

// TestFaultRestartResumesUpload: the sending gateway stops mid-upload
// (process restart); a new start on the same data directory (and, in the
// scale-out mode, the same database, bucket and streams) resumes.
func TestFaultRestartResumesUpload(t *testing.T) { inModes(t, testFaultRestartResumesUpload) }

func testFaultRestartResumesUpload(t *testing.T, base devnet.Options) {
	dir := t.TempDir()
	f := &faultRT{patchDelay: 20 * time.Millisecond}
	stopped := make(chan struct{})
	var once sync.Once
	f.onPatch = func(k int64) {
		if k == 3 {
			once.Do(func() { close(stopped) })
		}
	}
	opts := base
	opts.DataDir, opts.BasePort, opts.NoAutoReceive = dir, -1, true
	opts.WrapCoordinator = func(h string, rt http.RoundTripper) http.RoundTripper {
		if h == "hospital-a" {
			return f.via(rt)
		}
		return rt
	}
	// With tus checksums, which the coordinator checks per chunk.
	opts.Gateway = func(h string, cfg *gateway.Config) { cfg.ChunkSize, cfg.UploadChecksums = 1<<20, true }
	n, err := devnet.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	job, data := sendFile(t, n, 8<<20)
	<-stopped
	n.Close()
	f.onPatch, f.patchDelay = nil, 0
	n2, err := devnet.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	waitJob(t, n2.Hospitals[0].Gateway, job.ID, gateway.JobSent)
	rec := receiveUntil(t, n2.Hospitals[1].Gateway, job.ID)
	if rec.Status != gateway.InDelivered || !bytes.Equal(deliveredFile(t, n2, rec), data) {
		t.Fatalf("inbound %+v", rec)
	}
}

// TestFaultRestartTornSpool: the sealed spool is not fsync'd, so a crash
// of the machine may tear it; a resumed upload re-hashes it against the
// signed manifest, fails the job instead of sending the torn bytes, and B
// receives nothing.
func TestFaultRestartTornSpool(t *testing.T) {
	dir := t.TempDir()
	f := &faultRT{patchDelay: 20 * time.Millisecond}
	stopped := make(chan struct{})
	var once sync.Once
	f.onPatch = func(k int64) {
		if k == 2 {
			once.Do(func() { close(stopped) })
		}
	}
	opts := devnet.Options{DataDir: dir, BasePort: -1, NoAutoReceive: true,
		WrapCoordinator: func(h string, rt http.RoundTripper) http.RoundTripper {
			if h == "hospital-a" {
				return f.via(rt)
			}
			return rt
		},
		Gateway: func(h string, cfg *gateway.Config) { cfg.ChunkSize = 1 << 20 }}
	n, err := devnet.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	job, _ := sendFile(t, n, 8<<20)
	<-stopped
	n.Close()
	spools, _ := filepath.Glob(filepath.Join(dir, "*", "*", "outbound", "*", "f002.seal"))
	if len(spools) == 0 {
		spools, _ = filepath.Glob(filepath.Join(dir, "*", "*", "*", "outbound", "*", "f002.seal"))
	}
	if len(spools) != 1 {
		t.Fatalf("spool files %v", spools)
	}
	// The tail of the file never reached the disk.
	if err := os.Truncate(spools[0], 3<<20); err != nil {
		t.Fatal(err)
	}
	f.onPatch, f.patchDelay = nil, 0
	n2, err := devnet.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	var st gateway.Status
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st, err = n2.Hospitals[0].Gateway.Status(httptestRequest(), job.ID); err != nil {
			t.Fatal(err)
		}
		if st.Status != gateway.JobUploading {
			break
		}
	}
	if st.Status != gateway.JobFailed || !strings.Contains(st.Error, "spool") {
		t.Fatalf("status %+v", st)
	}
	if recs, err := n2.Hospitals[1].Gateway.ReceiveOnce(context.Background(), 0); err != nil || len(recs) != 0 {
		t.Fatalf("B received %d: %v", len(recs), err)
	}
}

// TestFaultCorruptDownload: a download corrupted on the way fails its hash
// check, is fetched again and delivered intact.
func TestFaultCorruptDownload(t *testing.T) { inModes(t, testFaultCorruptDownload) }

func testFaultCorruptDownload(t *testing.T, base devnet.Options) {
	f := &faultRT{}
	f.corrupt.Store(1)
	n := faultNet(t, base, map[string]*faultRT{"hospital-b": f}, nil)
	job, data := sendFile(t, n, 2<<20)
	waitJob(t, n.Hospitals[0].Gateway, job.ID, gateway.JobSent)
	rec := receiveUntil(t, n.Hospitals[1].Gateway, job.ID)
	if rec.Status != gateway.InDelivered || rec.Refetches != 1 || !bytes.Equal(deliveredFile(t, n, rec), data) {
		t.Fatalf("inbound %+v", rec)
	}
}

// TestFaultCorruptStreamedDownload: the same for a big file, which is
// streamed (download, hash, unseal in one pass): the corrupted segment
// fails to open, the hash check then blames the transport, and the file is
// streamed again and delivered intact, with no partial file left behind.
func TestFaultCorruptStreamedDownload(t *testing.T) { inModes(t, testFaultCorruptStreamedDownload) }

func testFaultCorruptStreamedDownload(t *testing.T, base devnet.Options) {
	f := &faultRT{corruptOver: 1 << 20}
	f.corrupt.Store(1)
	n := faultNet(t, base, map[string]*faultRT{"hospital-b": f}, nil)
	job, data := sendFile(t, n, 3<<20)
	waitJob(t, n.Hospitals[0].Gateway, job.ID, gateway.JobSent)
	rec := receiveUntil(t, n.Hospitals[1].Gateway, job.ID)
	if rec.Status != gateway.InDelivered || rec.Refetches != 1 || !bytes.Equal(deliveredFile(t, n, rec), data) {
		t.Fatalf("inbound %+v", rec)
	}
	ents, err := os.ReadDir(filepath.Join(n.Hospitals[1].Gateway.DeliveryDir(), rec.ID))
	if err != nil || len(ents) != 1 {
		t.Fatalf("delivery folder holds %d entries (%v), want only the delivered file", len(ents), err)
	}
}

// TestFaultReceiverKey: a receiver whose key does not open the transfer
// (its key was replaced, or the sender sealed for a key it never held)
// fails clearly and imports nothing.
// Each case runs in each mode on a network of its own (a scale-out
// network's database and bucket are not shared with another network).
func TestFaultReceiverKey(t *testing.T) {
	s, _ := suite.Lookup(suite.Intl)
	other, err := s.GenerateRecipientKey()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(string, *gateway.Config){
		"wrong key at the receiver": func(h string, cfg *gateway.Config) {
			if h == "hospital-b" {
				cfg.Keys.Recipient = other
			}
		},
		"sealed for a key the receiver does not hold": func(h string, cfg *gateway.Config) {
			if h == "hospital-a" {
				p := *cfg.Peers["hospital-b"]
				p.Wrap = other.Public()
				peers := map[string]*gateway.Peer{}
				for k, v := range cfg.Peers {
					peers[k] = v
				}
				peers["hospital-b"] = &p
				cfg.Peers = peers
			}
		},
	}
	for name, hook := range cases {
		t.Run(name, func(t *testing.T) {
			inModes(t, func(t *testing.T, base devnet.Options) {
				n := faultNet(t, base, nil, hook)
				before := fhirGet(t, n.Hospitals[1], "Patient?_summary=count")["total"]
				job, _ := sendFile(t, n, 1<<20)
				waitJob(t, n.Hospitals[0].Gateway, job.ID, gateway.JobSent)
				rec := receiveUntil(t, n.Hospitals[1].Gateway, job.ID)
				if rec.Status != gateway.InFailed || rec.Code != gateway.CodeNoKey || !strings.Contains(rec.Error, "no key of this gateway opens the transfer") {
					t.Fatalf("inbound %+v", rec)
				}
				if after := fhirGet(t, n.Hospitals[1], "Patient?_summary=count")["total"]; after != before {
					t.Fatal("something was imported")
				}
				// Not retried: the next pass leaves it alone.
				if recs, _ := n.Hospitals[1].Gateway.ReceiveOnce(context.Background(), 0); len(recs) != 0 {
					t.Fatal("a refused transfer was tried again")
				}
			})
		})
	}
}

// TestFaultDiskFull: the receiver's delivery folder fills up: a clear
// error, nothing half-imported (no resource, no file); once space is back
// the next pass delivers.
func TestFaultDiskFull(t *testing.T) { inModes(t, testFaultDiskFull) }

func testFaultDiskFull(t *testing.T, base devnet.Options) {
	lfs := &gateway.LimitFS{FS: gateway.OSFS{}, Limit: 512 << 10}
	n := faultNet(t, base, nil, func(h string, cfg *gateway.Config) {
		if h == "hospital-b" {
			cfg.DeliveryFS = lfs
		}
	})
	b := n.Hospitals[1]
	before := fhirGet(t, b, "Patient?_summary=count")["total"]
	job, data := sendFile(t, n, 2<<20)
	waitJob(t, n.Hospitals[0].Gateway, job.ID, gateway.JobSent)
	rec := receiveUntil(t, b.Gateway, job.ID)
	if rec.Status != gateway.InRetry || rec.Code != gateway.CodeDeliver || !strings.Contains(rec.Error, "no space left") {
		t.Fatalf("inbound %+v", rec)
	}
	if after := fhirGet(t, b, "Patient?_summary=count")["total"]; after != before {
		t.Fatal("the record was imported although its file was not delivered")
	}
	ents, _ := os.ReadDir(filepath.Join(b.Gateway.DeliveryDir(), job.ID))
	if len(ents) != 0 {
		t.Fatalf("half-delivered files left: %d", len(ents))
	}
	lfs.Limit = 1 << 40
	rec = receiveUntil(t, b.Gateway, job.ID)
	if rec.Status != gateway.InDelivered || !bytes.Equal(deliveredFile(t, n, rec), data) {
		t.Fatalf("after space came back: %+v", rec)
	}
}

// TestDropFolder: a batch written into the watched folder is sent; a batch
// refused by DLP lands in .failed with the finding's kind and location.
func TestDropFolder(t *testing.T) {
	n := startNet(t, devnet.Options{})
	drop := t.TempDir()
	ok := filepath.Join(drop, "batch-1")
	bad := filepath.Join(drop, "batch-2")
	for _, d := range []string{ok, bad} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	randomFile(t, ok, "report.pdf", 100<<10)
	spec := `{"to":"hospital-b","purpose":"TREAT","consent":"` + n.Demo.Consent + `"}`
	if err := os.WriteFile(filepath.Join(ok, "send.json"), []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "labs.csv"), []byte("id,ssn\n1,536-22-1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec2 := `{"to":"hospital-b","purpose":"HRESCH","consent":"` + n.Demo.Consent + `"}`
	if err := os.WriteFile(filepath.Join(bad, "send.json"), []byte(spec2), 0o600); err != nil {
		t.Fatal(err)
	}
	// An incomplete batch (no send.json yet) is left alone.
	if err := os.MkdirAll(filepath.Join(drop, "batch-3"), 0o700); err != nil {
		t.Fatal(err)
	}
	res, err := n.Hospitals[0].Gateway.ScanDropFolder(context.Background(), drop)
	if err != nil || len(res) != 2 {
		t.Fatalf("scan: %v %+v", err, res)
	}
	if res[0].ID == "" || res[1].Code != gateway.CodeDLPBlocked || len(res[1].Findings) != 1 || res[1].Findings[0].Kind != "US_SSN" {
		t.Fatalf("results %+v", res)
	}
	for _, p := range []string{".done/batch-1/result.json", ".failed/batch-2/result.json", "batch-3"} {
		if _, err := os.Stat(filepath.Join(drop, p)); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	waitJob(t, n.Hospitals[0].Gateway, res[0].ID, gateway.JobSent)
	rec := receiveUntil(t, n.Hospitals[1].Gateway, res[0].ID)
	if rec.Status != gateway.InDelivered || len(rec.Files) != 1 {
		t.Fatalf("inbound %+v", rec)
	}
}

// TestReidentifyOnlyWhereEntitled: a record de-identified with keyed
// pseudonyms for identifiers (china profile) gets its identifiers back at
// an entitled receiver, and keeps the pseudonyms at one that is not.
func TestReidentifyOnlyWhereEntitled(t *testing.T) {
	for _, entitled := range []bool{true, false} {
		t.Run(map[bool]string{true: "entitled", false: "not entitled"}[entitled], func(t *testing.T) {
			n := startNet(t, devnet.Options{Gateway: func(h string, cfg *gateway.Config) {
				if h == "hospital-b" && !entitled {
					cfg.Reidentify = nil
				}
			}})
			a, b := n.Hospitals[0], n.Hospitals[1]
			want := map[string]bool{}
			for _, id := range fhirGet(t, a, n.Demo.Patient)["identifier"].([]any) {
				if v, _ := id.(map[string]any)["value"].(string); v != "" {
					want[v] = true
				}
			}
			job, err := a.Gateway.Send(context.Background(), gateway.SendRequest{To: "hospital-b", Purpose: "TREAT",
				Consent: n.Demo.Consent, Deidentify: "china", FHIR: n.Demo.Patient + "/$everything"})
			if err != nil {
				t.Fatal(err)
			}
			waitJob(t, a.Gateway, job.ID, gateway.JobSent)
			rec := receiveUntil(t, b.Gateway, job.ID)
			if rec.Status != gateway.InDelivered {
				t.Fatalf("inbound %+v", rec)
			}
			var pat map[string]any
			for _, ref := range rec.Resources {
				if strings.HasPrefix(ref, "Patient/") {
					pat = fhirGet(t, b, ref)
				}
			}
			ids, _ := pat["identifier"].([]any)
			if len(ids) == 0 {
				t.Fatal("the imported Patient has no identifiers")
			}
			got := map[string]bool{}
			for _, id := range ids {
				if v := id.(map[string]any)["value"].(string); want[v] {
					got[v] = true
				}
			}
			restored := len(got)
			if entitled && restored != len(want) {
				t.Fatalf("entitled receiver restored %d of %d identifiers", restored, len(want))
			}
			if !entitled && restored != 0 {
				t.Fatalf("a receiver without entitlement holds %d original identifiers", restored)
			}
		})
	}
}

// adminTOTP enrols a TOTP second factor for the hospital's
// clinician-administrator (the subject of its token file), confirms it with
// the previous step's code and returns the current step's code.
func adminTOTP(t *testing.T, h devnet.Hospital) string {
	ctx := context.Background()
	user := h.ID + "-admin"
	e, err := h.TOTP.Begin(ctx, user)
	if err != nil {
		t.Error(err)
		return ""
	}
	code := func(at time.Time) string {
		c, err := ptotp.GenerateCodeCustom(e.Secret, at, ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Error(err)
		}
		return c
	}
	now := time.Now()
	if err := h.TOTP.Confirm(ctx, user, code(now.Add(-30*time.Second))); err != nil {
		t.Error(err)
	}
	return code(now)
}

// withoutSignature drops the consent-signature extensions of a Consent
// object, so it can be signed again.
func withoutSignature(c map[string]any) map[string]any {
	exts, _ := c["extension"].([]any)
	var keep []any
	for _, e := range exts {
		if m, ok := e.(map[string]any); ok {
			if u, _ := m["url"].(string); strings.Contains(u, "consent-signature") {
				continue
			}
		}
		keep = append(keep, e)
	}
	if len(keep) == 0 {
		delete(c, "extension")
	} else {
		c["extension"] = keep
	}
	return c
}
