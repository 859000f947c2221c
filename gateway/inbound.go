package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"phix/audit"
	"phix/deid"
	"phix/fhir"
	"phix/gateway/coord"
	"phix/internal/asynchash"
	"phix/internal/writeback"
	"phix/seal"
	"phix/suite"
	"phix/transfer"
)

// MaxBundleSize bounds a received FHIR bundle held in memory for import.
const MaxBundleSize = 256 << 20

// maxRefetch is how often a file whose hash does not match is fetched again.
const maxRefetch = 3

// ReceiveOnce long-polls the inbox (up to wait) and receives every ready
// delivery not delivered before. It returns what it handled.
func (g *Gateway) ReceiveOnce(ctx context.Context, wait time.Duration) ([]*Inbound, error) {
	g.inbound.Lock()
	defer g.inbound.Unlock()
	list, err := g.cfg.Coordinator.Inbox(ctx, wait)
	if err != nil {
		return nil, err
	}
	var out []*Inbound
	for _, v := range list {
		rec, err := g.state.inbound(v.ID)
		if err != nil {
			return out, err
		}
		switch {
		case rec != nil && rec.Status == InDelivered:
			// Imported before (the delivered-set): never again. Only a
			// receipt that did not reach the coordinator is sent again.
			if !rec.Receipted {
				g.sendReceipt(ctx, rec, v)
			}
			continue
		case rec != nil && rec.Status == InFailed:
			continue
		}
		out = append(out, g.receive(ctx, v.ID, rec))
	}
	return out, nil
}

func (g *Gateway) receive(ctx context.Context, id string, rec *Inbound) *Inbound {
	if rec == nil {
		rec = &Inbound{ID: id}
	}
	rec.Status, rec.Attempts = InReceiving, rec.Attempts+1
	err := g.receiveInto(ctx, rec)
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			he = &httpError{Code: CodeDeliver, Msg: "delivery failed"}
		}
		rec.Code, rec.Error = he.Code, he.Msg
		rec.Status = InRetry
		if he.Code == CodeNoKey || (he.Code == CodeVerify && he.Status == 403) {
			rec.Status = InFailed // refusing again would not change the answer
		}
		_ = g.state.saveInbound(rec)
		g.record(ctx, "deliver", id, false, audit.Event{Why: &audit.Why{Purpose: rec.Purpose, ConsentID: rec.ConsentID},
			Decision: &audit.Decision{Effect: "deny", Policies: []string{"code:" + he.Code}}})
		return rec
	}
	return rec
}

func (g *Gateway) receiveInto(ctx context.Context, rec *Inbound) error {
	v, err := g.cfg.Coordinator.Get(ctx, rec.ID, false)
	if err != nil {
		return &httpError{Status: 502, Code: CodeCoordinator, Msg: errText(err)}
	}
	if v.Request == nil || v.Receiver != g.cfg.Hospital {
		return &httpError{Status: 403, Code: CodeVerify, Msg: "the transfer is not addressed to this hospital"}
	}
	rec.Sender, rec.Purpose, rec.ConsentID = v.Sender, v.Request.Purpose, v.Request.ConsentID
	why := &audit.Why{Purpose: rec.Purpose, ConsentID: rec.ConsentID}
	// 1. The sender's signature over the manifest, with the key this
	// gateway trusts for the sender (not one the coordinator hands out).
	peer := g.cfg.Peers[v.Sender]
	sig, _ := base64.StdEncoding.DecodeString(v.Request.Signature)
	if peer == nil || !peer.Verify.Verify(transfer.CanonicalManifest(v.Sender, v.Request), sig) {
		g.alert(ctx, rec.ID, why, "manifest-signature-invalid")
		return &httpError{Status: 403, Code: CodeVerify, Msg: "the manifest signature does not verify with the sender's registered key"}
	}
	g.record(ctx, "verify-signature", rec.ID, true, audit.Event{Why: why})
	dir := g.state.inDir(rec.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	specs := map[string]transfer.FileSpec{}
	for _, f := range v.Request.Files {
		if transfer.ValidateFileName(f.Name) != nil {
			return &httpError{Status: 403, Code: CodeVerify, Msg: "the manifest names a file that is not a plain name"}
		}
		specs[f.Name] = f
	}
	// 2. Download the sealed manifest (small) with Range resume and check
	// its hash. The other files are streamed in step 4.
	urls := map[string]string{}
	for _, f := range v.Files {
		if _, ok := specs[f.Name]; !ok || f.DownloadURL == "" {
			return &httpError{Status: 502, Code: CodeCoordinator, Msg: "the coordinator listed a file the manifest does not"}
		}
		urls[f.Name] = f.DownloadURL
	}
	for name := range specs {
		if urls[name] == "" {
			return &httpError{Status: 502, Code: CodeCoordinator, Msg: "the coordinator did not list every file of the manifest"}
		}
	}
	if err := g.fetch(ctx, rec, filepath.Join(dir, "manifest.seal"), urls["manifest.seal"], specs["manifest.seal"]); err != nil {
		return err
	}
	// 3. Open the inner manifest.
	inner, err := g.openManifest(filepath.Join(dir, "manifest.seal"))
	if err != nil {
		return err
	}
	if inner.Sender != v.Sender || inner.Receiver != g.cfg.Hospital || inner.Purpose != v.Request.Purpose || inner.ConsentID != v.Request.ConsentID {
		g.alert(ctx, rec.ID, why, "inner-manifest-mismatch")
		return &httpError{Status: 403, Code: CodeVerify, Msg: "the sealed manifest does not match the signed one"}
	}
	if len(inner.Files)+1 != len(v.Request.Files) {
		return &httpError{Status: 403, Code: CodeVerify, Msg: "the sealed manifest does not list every file"}
	}
	rec.Deidentify = inner.Deidentify
	// 4. Stream each file: download (Range resume), hash against the signed
	// manifest and unseal in one pass — bundles into memory, files into
	// temporary files of the delivery folder; the ciphertext never touches
	// the disk here. 5. Deliver: import, then rename the files into place.
	fs := g.cfg.DeliveryFS
	outDir := filepath.Join(g.cfg.DeliveryDir, rec.ID)
	var temps []tempFile
	cleanup := func() {
		for _, t := range temps {
			_ = fs.Remove(t.tmp)
		}
	}
	var bundles [][]byte
	var reidTable []byte
	for _, f := range inner.Files {
		if _, ok := specs[f.Sealed]; !ok || f.Sealed == "manifest.seal" {
			cleanup()
			return &httpError{Status: 403, Code: CodeVerify, Msg: "the sealed manifest names a file the signed one does not"}
		}
		if transfer.ValidateFileName(f.Name) != nil {
			cleanup()
			return &httpError{Status: 403, Code: CodeVerify, Msg: "a delivered file name is not a plain name"}
		}
		spec, url := specs[f.Sealed], urls[f.Sealed]
		if f.Kind == "reid-table" || f.Kind == "fhir-bundle" {
			var buf bytes.Buffer
			err := g.streamFile(ctx, rec, url, spec, func(r io.Reader) error {
				buf.Reset()
				return g.unseal(r, &limitedWriter{w: &buf, n: MaxBundleSize}, f)
			})
			if err != nil {
				cleanup()
				return err
			}
			if f.Kind == "reid-table" {
				reidTable = buf.Bytes()
			} else {
				bundles = append(bundles, buf.Bytes())
			}
			continue
		}
		if err := fs.MkdirAll(outDir); err != nil {
			cleanup()
			return deliverErr(err)
		}
		// Each attempt (a refetch starts the plaintext over) gets a fresh
		// temporary file; an abandoned one is closed and removed.
		var tf File
		final, rel := deliveryPath(g.cfg.DeliveryDir, rec.ID, f.Name), filepath.Join(rec.ID, f.Name)
		err := g.streamFile(ctx, rec, url, spec, func(r io.Reader) error {
			if tf != nil {
				_ = tf.Close()
				_ = fs.Remove(tf.Name())
				temps = temps[:len(temps)-1]
			}
			var err error
			if tf, err = fs.CreateTemp(outDir, ".phix-part-*"); err != nil {
				tf = nil
				return deliverErr(err)
			}
			temps = append(temps, tempFile{tmp: tf.Name(), final: final, rel: rel})
			var w io.Writer = tf
			if of, ok := tf.(*os.File); ok {
				// The fsync after it waits for the tail only; what is on
				// disk leaves the page cache (internal/writeback).
				w = &writeback.Writer{F: of, Drop: true}
			}
			return g.unseal(r, w, f)
		})
		if tf == nil {
			cleanup()
			return err
		}
		if err == nil {
			err = tf.Sync()
		}
		if of, ok := tf.(*os.File); ok && err == nil {
			writeback.DropAll(of)
		}
		if cerr := tf.Close(); err == nil && cerr != nil {
			err = deliverErr(cerr)
		}
		if err != nil {
			cleanup()
			return err
		}
	}
	g.record(ctx, "download", rec.ID, true, audit.Event{Why: why})
	g.record(ctx, "unseal", rec.ID, true, audit.Event{Why: why})
	if reidTable != nil {
		var err error
		if bundles, err = g.reidentify(ctx, rec, inner, reidTable, bundles); err != nil {
			cleanup()
			return err
		}
	}
	var refs []string
	for _, b := range bundles {
		r, err := g.importBundle(ctx, rec, b)
		if err != nil {
			cleanup()
			return err
		}
		refs = append(refs, r...)
	}
	var files []string
	for _, t := range temps {
		if err := fs.Rename(t.tmp, t.final); err != nil {
			cleanup()
			return deliverErr(err)
		}
		files = append(files, t.rel)
	}
	rec.Status, rec.Code, rec.Error = InDelivered, "", ""
	rec.Resources, rec.Files = refs, files
	if err := g.state.saveInbound(rec); err != nil {
		return err
	}
	g.record(ctx, "deliver", rec.ID, true, audit.Event{Why: why})
	g.sendReceipt(ctx, rec, v)
	// The ciphertext is no longer needed here.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".seal") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

type tempFile struct{ tmp, final, rel string }

func deliverErr(err error) error {
	msg := "the delivery folder cannot be written"
	if errors.Is(err, ErrNoSpace) || strings.Contains(err.Error(), "no space left") {
		msg = "the delivery folder is full (no space left on device); nothing was imported"
	}
	return &httpError{Status: 507, Code: CodeDeliver, Msg: msg}
}

func (g *Gateway) alert(ctx context.Context, id string, why *audit.Why, policy string) {
	_, _ = g.cfg.Audit.Append(ctx, audit.Event{Action: audit.ActionSecurityAlert, Alert: audit.AlertTamper, Outcome: audit.OutcomeSeriousFailure,
		Who: audit.Who{Org: g.cfg.Hospital, Role: "edge-gateway"}, RequestID: id, Why: why,
		Decision: &audit.Decision{Effect: "deny", Policies: []string{"gateway:verify", policy}}})
}

// fetch downloads one file into path, resuming a partial file with Range,
// and checks its length and hash against the signed manifest; a mismatch
// removes the file and fetches it again (up to maxRefetch times).
func (g *Gateway) fetch(ctx context.Context, rec *Inbound, path, url string, spec transfer.FileSpec) error {
	netFailures := 0
	for attempt := 0; ; {
		var off int64
		if fi, err := os.Stat(path); err == nil {
			off = fi.Size()
		}
		// A download that starts at 0 and runs through is hashed on the way;
		// a resumed one is hashed by reading the file back. The ciphertext
		// is not fsync'd: after a crash the hash check catches a torn file
		// and it is fetched again.
		var h hash.Hash
		if off == 0 {
			h = g.fileHash(spec)
		}
		hashed := false
		if off < spec.Size {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return err
			}
			var w io.Writer = f
			var ah *asynchash.Hasher
			if h != nil {
				ah = asynchash.New(h) // hash on another core while downloading
				w = io.MultiWriter(f, ah)
			}
			_, err = g.cfg.Coordinator.Download(ctx, url, off, &limitedWriter{w: w, n: spec.Size - off})
			if ah != nil {
				ah.Wait()
			}
			if cerr := f.Close(); err == nil && cerr != nil {
				err = deliverErr(cerr)
			}
			if err != nil {
				if ctx.Err() != nil || !coord.Retryable(err) || netFailures >= 20 {
					return &httpError{Status: 502, Code: CodeCoordinator, Msg: "download failed: " + errText(err)}
				}
				netFailures++
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Duration(netFailures) * 100 * time.Millisecond):
				}
				continue // resume from what arrived
			}
			hashed = h != nil
		}
		var ok bool
		if hashed {
			fi, err := os.Stat(path)
			ok = err == nil && fi.Size() == spec.Size && hex.EncodeToString(h.Sum(nil)) == spec.Hash
		} else {
			var err error
			if ok, err = g.checkFile(path, spec); err != nil {
				return err
			}
		}
		if ok {
			return nil
		}
		// Corrupted (or longer than declared): fetch it again from scratch.
		os.Remove(path)
		rec.Refetches++
		attempt++
		g.alert(ctx, rec.ID, &audit.Why{Purpose: rec.Purpose, ConsentID: rec.ConsentID}, "download-hash-mismatch")
		if attempt >= maxRefetch {
			return &httpError{Status: 502, Code: CodeVerify, Msg: fmt.Sprintf("a downloaded file failed its hash check %d times", attempt)}
		}
	}
}

// streamFile downloads one sealed file and hands its ciphertext to consume
// as it arrives, hashing it on another goroutine; nothing of it is stored.
// A broken connection resumes with Range from the bytes already consumed
// (downloadReader). Once consume returns, the rest of the body (if consume
// stopped early on a sealed-format error) is read into the hash too: if the
// ciphertext does not match the signed manifest's size and hash, the error
// was the transport's, and the file is fetched again (up to maxRefetch
// times, each alerted) with consume called afresh. A delivery error (the
// local disk) is returned at once.
func (g *Gateway) streamFile(ctx context.Context, rec *Inbound, url string, spec transfer.FileSpec, consume func(io.Reader) error) error {
	for attempt := 0; ; {
		h := g.fileHash(spec)
		ah := asynchash.New(h)
		dr := &downloadReader{ctx: ctx, c: g.cfg.Coordinator, url: url, size: spec.Size}
		cerr := consume(io.TeeReader(dr, ah))
		var he *httpError
		if errors.As(cerr, &he) && he.Code == CodeDeliver {
			dr.close()
			ah.Close()
			return cerr
		}
		_, derr := io.Copy(ah, dr)
		dr.close()
		ah.Wait()
		if derr == nil {
			derr = dr.err
		}
		if derr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &httpError{Status: 502, Code: CodeCoordinator, Msg: "download failed: " + errText(derr)}
		}
		if !dr.long && dr.off == spec.Size && hex.EncodeToString(h.Sum(nil)) == spec.Hash {
			return cerr
		}
		rec.Refetches++
		attempt++
		g.alert(ctx, rec.ID, &audit.Why{Purpose: rec.Purpose, ConsentID: rec.ConsentID}, "download-hash-mismatch")
		if attempt >= maxRefetch {
			return &httpError{Status: 502, Code: CodeVerify, Msg: fmt.Sprintf("a downloaded file failed its hash check %d times", attempt)}
		}
	}
}

// downloadReader reads the first size bytes of a coordinator download,
// resuming from its offset with Range after a retryable failure (up to 20,
// with a growing pause). A body longer than size sets long.
type downloadReader struct {
	ctx      context.Context
	c        *coord.Client
	url      string
	size     int64
	off      int64
	long     bool
	err      error // the failure that ended the download
	failures int
	body     io.ReadCloser // the open response, read in the caller's goroutine
}

func (d *downloadReader) close() {
	if d.body != nil {
		d.body.Close()
		d.body = nil
	}
}

func (d *downloadReader) Read(p []byte) (int, error) {
	for {
		if d.err != nil {
			return 0, d.err
		}
		if d.off == d.size {
			if d.body != nil {
				// One more byte tells a body of the declared length from a
				// longer one.
				var one [1]byte
				if n, _ := io.ReadFull(d.body, one[:]); n > 0 {
					d.long = true
				}
				d.close()
			}
			return 0, io.EOF
		}
		var err error
		if d.body == nil {
			d.body, err = d.c.OpenDownload(d.ctx, d.url, d.off)
		}
		if err == nil {
			if int64(len(p)) > d.size-d.off {
				p = p[:d.size-d.off]
			}
			var n int
			n, err = d.body.Read(p)
			d.off += int64(n)
			if n > 0 {
				d.failures = 0
				return n, nil // a sticky error comes back on the next Read
			}
			if err == nil {
				continue
			}
		}
		// The request failed, or the body ended (cleanly but short, or
		// broken): resume from off.
		d.close()
		if err != io.EOF && (d.ctx.Err() != nil || !coord.Retryable(err)) || d.failures >= 20 {
			d.err = err
			if err == io.EOF {
				d.err = io.ErrUnexpectedEOF
			}
			return 0, d.err
		}
		d.failures++
		select {
		case <-d.ctx.Done():
			d.err = d.ctx.Err()
			return 0, d.err
		case <-time.After(time.Duration(d.failures) * 100 * time.Millisecond):
		}
	}
}

// fileHash is the manifest's hash: sha256, or sm3 (a gm sender's, which
// an intl receiver checks too).
func (g *Gateway) fileHash(spec transfer.FileSpec) hash.Hash {
	return newHash(spec.HashAlg)
}

func newHash(alg string) hash.Hash {
	if alg == "sm3" {
		if s, err := suite.Lookup(suite.GM); err == nil {
			return s.NewHash()
		}
	}
	return sha256.New()
}

func (g *Gateway) checkFile(path string, spec transfer.FileSpec) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := g.fileHash(spec)
	n, err := io.Copy(h, f)
	if err != nil {
		return false, err
	}
	return n == spec.Size && hex.EncodeToString(h.Sum(nil)) == spec.Hash, nil
}

func (g *Gateway) identity() seal.Identity {
	return seal.PrivateKeyIdentity(g.cfg.Keys.Recipient, g.cfg.Keys.RecipientVersion)
}

func (g *Gateway) openManifest(path string) (*innerManifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := seal.NewReader(f, g.identity())
	if err != nil {
		return nil, sealErr(err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, 4<<20))
	if err != nil {
		return nil, sealErr(err)
	}
	return parseInnerManifest(b)
}

// parseInnerManifest reads the sealed manifest's JSON: version 1 or 2, at
// most MaxFiles files, each with a plain name and a sealed name; in
// version 1 each has a hex plaintext hash, in version 2 none.
func parseInnerManifest(b []byte) (*innerManifest, error) {
	bad := &httpError{Status: 403, Code: CodeVerify, Msg: "the sealed manifest is not a phix manifest"}
	var m innerManifest
	if err := json.Unmarshal(b, &m); err != nil || (m.V != 1 && m.V != 2) || len(m.Files) > transfer.MaxFiles {
		return nil, bad
	}
	for _, f := range m.Files {
		if transfer.ValidateFileName(f.Name) != nil || transfer.ValidateFileName(f.Sealed) != nil || f.Size < 0 {
			return nil, bad
		}
		if m.V == 2 {
			if f.Hash != "" || f.HashAlg != "" {
				return nil, bad
			}
			continue
		}
		if h, err := hex.DecodeString(f.Hash); err != nil || len(h) != 32 || (f.HashAlg != "sha256" && f.HashAlg != "sm3") {
			return nil, bad
		}
	}
	return &m, nil
}

func sealErr(err error) error {
	code := seal.Code(err)
	switch code {
	case "SEAL_NO_KEY", "SEAL_KEY_VERSION", "SEAL_UNWRAP":
		return &httpError{Status: 403, Code: CodeNoKey, Msg: "no key of this gateway opens the transfer (" + code + "): it was sealed for another key"}
	}
	return &httpError{Status: 403, Code: CodeVerify, Msg: "the sealed file does not authenticate (" + code + ")"}
}

// unseal opens the sealed stream src into w and checks the plaintext
// against the inner manifest's size, and its hash where the manifest has
// one (version 1; in version 2 the AEAD alone authenticates the plaintext
// of the ciphertext whose hash streamFile checks against the signed
// manifest).
func (g *Gateway) unseal(src io.Reader, w io.Writer, f innerFile) error {
	r, err := seal.NewReader(src, g.identity())
	if err != nil {
		return sealErr(err)
	}
	defer r.Close()
	var h hash.Hash
	var ah *asynchash.Hasher
	if f.Hash != "" {
		h = newHash(f.HashAlg)
		ah = asynchash.New(h) // hash on another core while unsealing
		defer ah.Close()
		w = io.MultiWriter(w, ah)
	}
	n, err := io.Copy(w, r)
	if ah != nil {
		ah.Wait()
	}
	if err != nil {
		var se *seal.Error
		if errors.As(err, &se) {
			return sealErr(err)
		}
		return deliverErr(err)
	}
	if n != f.Size || (h != nil && hex.EncodeToString(h.Sum(nil)) != f.Hash) {
		return &httpError{Status: 403, Code: CodeVerify, Msg: "an unsealed file does not match the manifest's size or hash"}
	}
	return nil
}

type limitedWriter struct {
	w io.Writer
	n int64
}

var errTooLarge = errors.New("gateway: more bytes than declared")

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		n, _ := l.w.Write(p[:l.n])
		l.n -= int64(n)
		return n, errTooLarge
	}
	n, err := l.w.Write(p)
	l.n -= int64(n)
	return n, err
}

// importBundle turns a received collection into a transaction of PUTs
// with ids derived from the sender and the sender's ids, so importing the
// same data twice updates the same resources instead of duplicating them.
func (g *Gateway) importBundle(ctx context.Context, rec *Inbound, data []byte) ([]string, error) {
	sender := rec.Sender
	if g.cfg.FHIR == nil {
		return nil, &httpError{Status: 503, Code: CodeDeliver, Msg: "no FHIR server configured for import"}
	}
	b, err := fhir.Parse(data, fhir.ParseOptions{})
	if err != nil || b.Type != "Bundle" {
		return nil, &httpError{Status: 403, Code: CodeVerify, Msg: "the received record is not a FHIR Bundle"}
	}
	entries, _ := b.Object["entry"].([]any)
	ids := map[string]string{}
	var patients []string // new ids of the received Patients
	for _, e := range entries {
		r, _ := e.(map[string]any)["resource"].(map[string]any)
		typ, _ := r["resourceType"].(string)
		id, _ := r["id"].(string)
		if typ == "" || id == "" {
			continue
		}
		sum := sha256.Sum256([]byte(sender + "|" + typ + "/" + id))
		ids[typ+"/"+id] = hex.EncodeToString(sum[:16])
		if typ == "Patient" {
			patients = append(patients, ids[typ+"/"+id])
		}
		if full, _ := e.(map[string]any)["fullUrl"].(string); full != "" {
			ids[full] = ids[typ+"/"+id]
		}
	}
	var out []any
	var refs []string
	for _, e := range entries {
		em, _ := e.(map[string]any)
		r, _ := em["resource"].(map[string]any)
		typ, _ := r["resourceType"].(string)
		id, _ := r["id"].(string)
		nid, ok := ids[typ+"/"+id]
		if !ok {
			continue
		}
		rewriteRefs(r, ids)
		r["id"] = nid
		if m, ok := r["meta"].(map[string]any); ok {
			delete(m, "versionId")
			delete(m, "lastUpdated")
			if len(m) == 0 {
				delete(r, "meta")
			}
		}
		out = append(out, map[string]any{"fullUrl": "urn:uuid:" + uuidOf(nid), "resource": r,
			"request": map[string]any{"method": "PUT", "url": typ + "/" + nid}})
		refs = append(refs, typ+"/"+nid)
	}
	tx, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": out})
	if err != nil {
		return nil, err
	}
	// The import writes the received patient's record under a grant for
	// this transfer and that patient only, on the sender's verified
	// consent, which covers one patient.
	if len(patients) > 1 {
		return nil, &httpError{Status: 403, Code: CodeVerify, Msg: "the received record holds more than one patient; a transfer's consent covers one"}
	}
	for _, nid := range patients {
		if err := g.cfg.FHIR.OpenGrant(ctx, nid, rec.ID, rec.ConsentID, rec.Purpose, "inbound"); err != nil {
			return nil, &httpError{Status: 503, Code: CodeDeliver, Msg: "cannot open the transfer's access grant on the FHIR server"}
		}
	}
	defer func() {
		if err := g.cfg.FHIR.CloseGrant(context.WithoutCancel(ctx), rec.ID); err != nil {
			g.cfg.Logger.Warn("gateway: cannot close the transfer's access grant; it ends by itself", "err", errText(err))
		}
	}()
	if _, err := g.cfg.FHIR.Transaction(ctx, tx); err != nil {
		return nil, &httpError{Status: 502, Code: CodeDeliver, Msg: "the FHIR server refused the import: " + err.Error()}
	}
	return refs, nil
}

func uuidOf(hex32 string) string {
	return hex32[0:8] + "-" + hex32[8:12] + "-" + hex32[12:16] + "-" + hex32[16:20] + "-" + hex32[20:32]
}

// rewriteRefs points every reference to a resource of the bundle at its
// new id.
func rewriteRefs(v any, ids map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if s, ok := c.(string); ok && k == "reference" {
				if nid, ok := ids[s]; ok {
					typ, _, _ := strings.Cut(s, "/")
					if strings.HasPrefix(s, "urn:uuid:") {
						typ = refType(ids, s)
					}
					if typ != "" {
						x[k] = typ + "/" + nid
					}
				}
				continue
			}
			rewriteRefs(c, ids)
		}
	case []any:
		for _, c := range x {
			rewriteRefs(c, ids)
		}
	}
}

func refType(ids map[string]string, full string) string {
	nid := ids[full]
	for k, v := range ids {
		if v == nid && !strings.HasPrefix(k, "urn:") {
			t, _, _ := strings.Cut(k, "/")
			return t
		}
	}
	return ""
}

// sendReceipt signs and posts the receipt; a failure leaves Receipted
// false and the next pass sends it again.
func (g *Gateway) sendReceipt(ctx context.Context, rec *Inbound, v transfer.TransferView) {
	sig := ""
	if v.Request != nil {
		sig = v.Request.Signature
	} else if full, err := g.cfg.Coordinator.Get(ctx, rec.ID, false); err == nil && full.Request != nil {
		sig = full.Request.Signature
	}
	now := g.cfg.Now().UTC()
	t := &transfer.Transfer{ID: rec.ID, Sender: v.Sender, Receiver: g.cfg.Hospital, Request: transfer.Request{Signature: sig}}
	s, err := g.cfg.Keys.Signer.Sign(transfer.ReceiptMessage(t, now))
	if err != nil {
		return
	}
	err = g.cfg.Coordinator.Receipt(ctx, rec.ID, transfer.ReceiptRequest{ReceivedAt: now, Signature: base64.StdEncoding.EncodeToString(s)})
	if err != nil && !coord.IsProblem(err, "TRF-1402") {
		g.log.Warn("receipt not accepted", "error", errText(err))
		return
	}
	rec.Receipted = true
	_ = g.state.saveInbound(rec)
	g.record(ctx, "receipt", rec.ID, true, audit.Event{Why: &audit.Why{Purpose: rec.Purpose, ConsentID: rec.ConsentID}})
}

// reidentify restores the identifier values of de-identified bundles from
// the sender's re-identification table, only when this gateway is
// entitled for the transfer's purpose; every lookup is audited (deid's
// Reidentifier refuses without an auditor). Without entitlement the table
// is dropped unread.
func (g *Gateway) reidentify(ctx context.Context, rec *Inbound, inner *innerManifest, table []byte, bundles [][]byte) ([][]byte, error) {
	why := &audit.Why{Purpose: rec.Purpose, ConsentID: rec.ConsentID}
	entitled := false
	for _, p := range g.cfg.Reidentify {
		entitled = entitled || p == rec.Purpose
	}
	if !entitled || len(inner.ReidKey) == 0 {
		g.record(ctx, "reidentify", rec.ID, false, audit.Event{Why: why, Decision: &audit.Decision{Effect: "deny", Policies: []string{"not-entitled"}}})
		return bundles, nil
	}
	rd, err := deid.OpenReidTable(table, inner.ReidKey, reidAuditor{g: g, id: rec.ID, why: why})
	if err != nil {
		return nil, &httpError{Status: 403, Code: CodeVerify, Msg: "the re-identification table does not open"}
	}
	out := make([][]byte, 0, len(bundles))
	restored := 0
	for _, b := range bundles {
		var obj any
		if err := json.Unmarshal(b, &obj); err != nil {
			return nil, &httpError{Status: 403, Code: CodeVerify, Msg: "the received record is not JSON"}
		}
		walkIdentifiers(obj, func(id map[string]any) {
			v, _ := id["value"].(string)
			if v == "" {
				return
			}
			if orig, err := rd.Reidentify(ctx, "gateway-"+g.cfg.Hospital, rec.Purpose, v); err == nil {
				id["value"] = orig
				restored++
			}
		})
		nb, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		out = append(out, nb)
	}
	g.record(ctx, "reidentify", rec.ID, true, audit.Event{Why: why})
	return out, nil
}

// walkIdentifiers calls fn on every element of every "identifier" array.
func walkIdentifiers(v any, fn func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if k == "identifier" {
				if l, ok := c.([]any); ok {
					for _, e := range l {
						if m, ok := e.(map[string]any); ok {
							fn(m)
						}
					}
				}
				continue
			}
			walkIdentifiers(c, fn)
		}
	case []any:
		for _, c := range x {
			walkIdentifiers(c, fn)
		}
	}
}

// reidAuditor records each re-identification lookup (never the value).
type reidAuditor struct {
	g   *Gateway
	id  string
	why *audit.Why
}

func (a reidAuditor) Reidentified(ctx context.Context, ev deid.ReidEvent) error {
	res := "found"
	if !ev.Found {
		res = "not-found"
	}
	_, err := a.g.cfg.Audit.Append(ctx, audit.Event{Action: audit.ActionOperation, Outcome: audit.OutcomeSuccess,
		Who: audit.Who{Org: a.g.cfg.Hospital, Role: "edge-gateway"}, RequestID: a.id, Why: a.why,
		What:     audit.What{ResourceType: "Identifier"},
		Decision: &audit.Decision{Effect: "permit", Policies: []string{"gateway:reidentify-lookup", res}}})
	return err
}
