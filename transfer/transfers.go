package transfer

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"phix/audit"
	"phix/blob"
	"phix/queue"
)

func newFileHash(alg string) hash.Hash {
	if alg == "sm3" {
		return sm3.New()
	}
	return sha256.New()
}

func marshalHash(h hash.Hash) []byte {
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil
	}
	return b
}

func fileKey(transferID string, idx int) string {
	k, _ := blob.Key(transferID, "f"+strconv.Itoa(idx))
	return k
}

// FileView is a file as the API shows it.
type FileView struct {
	Index       int    `json:"index"`
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	Offset      int64  `json:"offset"`
	Status      string `json:"status"`
	UploadURL   string `json:"upload_url,omitempty"`
	DownloadURL string `json:"download_url,omitempty"`
	Expires     string `json:"expires,omitempty"`
}

// TransferView is a transfer as the API shows it.
type TransferView struct {
	ID       string     `json:"id"`
	Sender   string     `json:"sender"`
	Receiver string     `json:"receiver"`
	Status   string     `json:"status"`
	Reason   string     `json:"reason,omitempty"`
	Created  time.Time  `json:"created"`
	Updated  time.Time  `json:"updated"`
	Request  *Request   `json:"request,omitempty"`
	Receipt  *Receipt   `json:"receipt,omitempty"`
	Files    []FileView `json:"files,omitempty"`
	Reasons  []string   `json:"reasons,omitempty"`
	Erased   *time.Time `json:"erased,omitempty"`
}

func view(t Transfer) TransferView {
	req := t.Request
	v := TransferView{ID: t.ID, Sender: t.Sender, Receiver: t.Receiver, Status: t.Status, Reason: t.Reason,
		Created: t.Created, Updated: t.Updated, Request: &req, Receipt: t.Receipt}
	if !t.Erased.IsZero() {
		e := t.Erased
		v.Erased = &e
	}
	return v
}

func (s *Server) createTransfer(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	var req Request
	if err := readJSON(r, &req); err != nil {
		writeProblem(w, err)
		return
	}
	if err := req.Validate(); err != nil {
		writeProblem(w, err)
		return
	}
	for _, f := range req.Files {
		if f.Size > s.cfg.MaxFileSize {
			writeProblem(w, errf(http.StatusRequestEntityTooLarge, CodeTooLarge, "File too large", "a declared file exceeds the coordinator's maximum file size"))
			return
		}
		if f.HashAlg == "sm3" && c.Hospital.Suite != "gm" {
			writeProblem(w, errf(400, CodeInvalidManifest, "Invalid manifest", "sm3 hashes are accepted from gm-suite hospitals only"))
			return
		}
	}
	var recv *Hospital
	if h, err := s.cfg.Store.Hospital(ctx, req.Receiver); err == nil {
		recv = &h
	} else if !errors.Is(err, ErrNotFound) {
		writeProblem(w, s.internal(err))
		return
	}
	now := s.cfg.Now()
	dec := s.cfg.Policy.Evaluate(c.Hospital, recv, &req, []string{s.cfg.Blobs.Region()}, now)
	if withdrawn, err := s.cfg.Store.ConsentWithdrawn(ctx, c.Hospital.ID, req.ConsentID); err != nil {
		writeProblem(w, s.internal(err))
		return
	} else if withdrawn {
		dec.Permit = false
		dec.Reasons = append(dec.Reasons, ReasonConsentWithdrawn)
	}
	id := newID()
	ev := audit.Event{Action: audit.ActionTransfer, RequestID: id, DataClass: auditCode(req.DataClass),
		Who:  audit.Who{Org: c.Hospital.ID, CertFP: c.CertFP, Role: "sender"},
		What: audit.What{ResourceType: "Transfer"},
		Why:  &audit.Why{ConsentID: req.ConsentID, Purpose: auditCode(req.Purpose)}}
	if !dec.Permit {
		ev.Outcome = audit.OutcomeMinorFailure
		ev.Decision = &audit.Decision{Effect: "deny", Policies: dec.Reasons}
		s.audit(ctx, ev)
		for _, reason := range dec.Reasons {
			s.metrics.denial(reason)
		}
		e := errf(http.StatusForbidden, CodePolicyDenied, "Transfer refused by policy", "see reasons")
		e.Reasons = dec.Reasons
		writeProblem(w, e)
		return
	}

	t := Transfer{ID: id, Sender: c.Hospital.ID, Receiver: req.Receiver, Status: TransferUploading, Created: now, Updated: now, Request: req}
	files := make([]File, len(req.Files))
	caps := make([]Capability, len(req.Files))
	v := view(t)
	v.Request = nil
	for i, f := range req.Files {
		files[i] = File{Transfer: id, Index: i, Name: f.Name, Size: f.Size, Status: FilePending, HashState: marshalHash(newFileHash(f.HashAlg))}
		if _, err := s.cfg.Blobs.Create(ctx, fileKey(id, i)); err != nil {
			s.cfg.Blobs.DeletePrefix(context.WithoutCancel(ctx), id+"/")
			writeProblem(w, s.internal(err))
			return
		}
		tok, cp := s.newCapability(CapUpload, id, i, c)
		caps[i] = cp
		v.Files = append(v.Files, FileView{Index: i, Name: f.Name, Size: f.Size, Status: FilePending,
			UploadURL: s.cfg.BaseURL + "/v1/uploads/" + tok, Expires: cp.Expires.UTC().Format(time.RFC3339)})
	}
	if err := s.cfg.Store.CreateTransfer(ctx, t, files, caps); err != nil {
		s.cfg.Blobs.DeletePrefix(context.WithoutCancel(ctx), id+"/")
		writeProblem(w, s.internal(err))
		return
	}
	ev.Outcome = audit.OutcomeSuccess
	ev.Decision = &audit.Decision{Effect: "permit", Policies: dec.Rules}
	s.audit(ctx, ev)
	s.metrics.event("created")
	w.Header().Set("Location", "/v1/transfers/"+id)
	writeJSON(w, http.StatusCreated, v)
}

// auditCode passes a value to the audit log only if it is one of our codes.
func auditCode(s string) string {
	if contains(KnownPurposes, s) || contains(KnownDataClasses, s) {
		return s
	}
	return ""
}

// load returns a transfer the caller may see: the sender always, the
// receiver once it is ready. Anyone else gets 404, as if it did not exist.
func (s *Server) load(ctx context.Context, id string, c caller) (Transfer, []File, error) {
	notFound := errf(http.StatusNotFound, CodeNotFound, "Not found", "no such transfer")
	if !idRe.MatchString(id) {
		return Transfer{}, nil, notFound
	}
	t, files, err := s.cfg.Store.Transfer(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return t, nil, notFound
	}
	if err != nil {
		return t, nil, s.internal(err)
	}
	switch c.Hospital.ID {
	case t.Sender:
	case t.Receiver:
		if t.Status != TransferReady && t.Status != TransferDelivered {
			return t, nil, notFound
		}
	default:
		return t, nil, notFound
	}
	return t, files, nil
}

func (s *Server) getTransfer(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	t, files, err := s.load(ctx, r.PathValue("id"), c)
	if err != nil {
		writeProblem(w, err)
		return
	}
	v := view(t)
	for _, f := range files {
		fv := FileView{Index: f.Index, Name: f.Name, Size: f.Size, Offset: f.Offset, Status: f.Status}
		// The receiver gets fresh download capabilities for a ready transfer.
		if c.Hospital.ID == t.Receiver && t.Status == TransferReady {
			tok, cp := s.newCapability(CapDownload, t.ID, f.Index, c)
			if err := s.cfg.Store.AddCapability(ctx, cp); err != nil {
				writeProblem(w, s.internal(err))
				return
			}
			fv.DownloadURL = s.cfg.BaseURL + "/v1/downloads/" + tok
			fv.Expires = cp.Expires.UTC().Format(time.RFC3339)
		}
		// The sender can renew upload capabilities of pending files.
		if c.Hospital.ID == t.Sender && t.Status == TransferUploading && f.Status == FilePending && r.URL.Query().Get("renew") == "uploads" {
			if err := s.cfg.Store.KillCapabilities(ctx, CapUpload, t.ID, f.Index); err != nil {
				writeProblem(w, s.internal(err))
				return
			}
			tok, cp := s.newCapability(CapUpload, t.ID, f.Index, c)
			if err := s.cfg.Store.AddCapability(ctx, cp); err != nil {
				writeProblem(w, s.internal(err))
				return
			}
			fv.UploadURL = s.cfg.BaseURL + "/v1/uploads/" + tok
			fv.Expires = cp.Expires.UTC().Format(time.RFC3339)
		}
		v.Files = append(v.Files, fv)
	}
	writeJSON(w, 200, v)
}

func (s *Server) listTransfers(w http.ResponseWriter, r *http.Request, c caller) {
	role := r.URL.Query().Get("role")
	if role == "" {
		role = "sender"
	}
	if role != "sender" && role != "receiver" {
		writeProblem(w, errf(400, CodeBadRequest, "Invalid role", "role must be sender or receiver"))
		return
	}
	ts, err := s.cfg.Store.Transfers(r.Context(), c.Hospital.ID, role, 500)
	if err != nil {
		writeProblem(w, s.internal(err))
		return
	}
	out := make([]TransferView, 0, len(ts))
	for _, t := range ts {
		v := view(t)
		v.Request = nil
		out = append(out, v)
	}
	writeJSON(w, 200, map[string]any{"transfers": out})
}

// fileDigest returns the hash of a complete file: from its running state,
// or by re-reading the sealed object when the state was lost.
func (s *Server) fileDigest(ctx context.Context, f File, alg string) ([]byte, error) {
	h := newFileHash(alg)
	if f.HashState != nil {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(f.HashState); err == nil {
			return h.Sum(nil), nil
		}
		h.Reset()
	}
	rc, err := s.cfg.Blobs.ReadRange(ctx, fileKey(f.Transfer, f.Index), 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if _, err := io.Copy(h, rc); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func (s *Server) complete(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	t, files, err := s.load(ctx, r.PathValue("id"), c)
	if err == nil && c.Hospital.ID != t.Sender {
		err = errf(http.StatusForbidden, CodeForbidden, "Forbidden", "only the sender completes a transfer")
	}
	if err != nil {
		writeProblem(w, err)
		return
	}
	switch t.Status {
	case TransferUploading:
	case TransferReady, TransferDelivered:
		// Idempotent: re-publish (deduplicated by the queue) and answer again.
		if err := s.publish(ctx, t); err != nil {
			writeProblem(w, err)
			return
		}
		writeJSON(w, 200, view(t))
		return
	default:
		writeProblem(w, errf(http.StatusConflict, CodeConflict, "Transfer closed", "the transfer is "+t.Status))
		return
	}
	for i := range files {
		if err := s.settle(ctx, &files[i]); err != nil {
			writeProblem(w, s.internal(err))
			return
		}
	}
	for _, f := range files {
		if f.Status != FileComplete || f.Offset != f.Size {
			writeProblem(w, errf(http.StatusConflict, CodeIncomplete, "Upload incomplete", "file "+strconv.Itoa(f.Index)+" has not been fully uploaded"))
			return
		}
	}
	for _, f := range files {
		spec := t.Request.Files[f.Index]
		info, err := s.cfg.Blobs.Stat(ctx, fileKey(t.ID, f.Index))
		if err != nil {
			writeProblem(w, s.internal(err))
			return
		}
		sum, err := s.fileDigest(ctx, f, spec.HashAlg)
		if err != nil {
			writeProblem(w, s.internal(err))
			return
		}
		if info.Size != spec.Size || hex.EncodeToString(sum) != spec.Hash {
			s.fail(ctx, t, CodeHashMismatch)
			writeProblem(w, errf(http.StatusUnprocessableEntity, CodeHashMismatch, "Manifest mismatch",
				"file "+strconv.Itoa(f.Index)+" does not match the signed manifest's length and hash; the transfer failed"))
			return
		}
	}
	if err := s.publish(ctx, t); err != nil {
		writeProblem(w, err)
		return
	}
	err = s.cfg.Store.SetTransferStatus(ctx, t.ID, []string{TransferUploading}, TransferReady, nil, "")
	if err != nil && !errors.Is(err, ErrConflict) {
		writeProblem(w, s.internal(err))
		return
	}
	s.metrics.event("ready")
	s.metrics.observe("ready", s.cfg.Now().Sub(t.Created))
	s.audit(ctx, audit.Event{Action: audit.ActionTransfer, Outcome: audit.OutcomeSuccess, RequestID: t.ID,
		Who: audit.Who{Org: c.Hospital.ID, CertFP: c.CertFP, Role: "sender"}, What: audit.What{ResourceType: "Transfer"},
		DataClass: auditCode(t.Request.DataClass)})
	t.Status = TransferReady
	writeJSON(w, 200, view(t))
}

func (s *Server) publish(ctx context.Context, t Transfer) error {
	err := s.cfg.Queue.Publish(ctx, queue.Delivery{ID: t.ID, Receiver: t.Receiver, Transfer: t.ID})
	if err != nil {
		s.log.Warn("delivery publish failed", "code", CodeUnavailable, "kind", ErrorKind(err))
		return errf(http.StatusServiceUnavailable, CodeUnavailable, "Queue unavailable", "the delivery could not be enqueued; retry the request")
	}
	return nil
}

// fail marks a transfer failed, kills its capabilities and erases its ciphertext.
func (s *Server) fail(ctx context.Context, t Transfer, code string) {
	ctx = context.WithoutCancel(ctx)
	_ = s.cfg.Store.SetTransferStatus(ctx, t.ID, []string{TransferUploading}, TransferFailed, nil, code)
	_ = s.cfg.Store.KillCapabilities(ctx, CapUpload, t.ID, -1)
	_, _ = s.cfg.Blobs.DeletePrefix(ctx, t.ID+"/")
	s.metrics.failure(code)
	s.audit(ctx, audit.Event{Action: audit.ActionTransfer, Outcome: audit.OutcomeSeriousFailure, RequestID: t.ID,
		Who: audit.Who{Org: t.Sender, Role: "sender"}, What: audit.What{ResourceType: "Transfer"}})
}

func (s *Server) inbox(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	wait := time.Duration(0)
	if q := r.URL.Query().Get("wait"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil || d < 0 || d > 60*time.Second {
			writeProblem(w, errf(400, CodeBadRequest, "Invalid wait", "wait is a duration of at most 60s"))
			return
		}
		wait = d
	}
	list := func() ([]Transfer, error) {
		ts, err := s.cfg.Store.Transfers(ctx, c.Hospital.ID, "receiver", 500)
		out := ts[:0]
		for _, t := range ts {
			if t.Status == TransferReady {
				out = append(out, t)
			}
		}
		return out, err
	}
	ts, err := list()
	if err != nil {
		writeProblem(w, s.internal(err))
		return
	}
	fetchWait := 10 * time.Millisecond
	if len(ts) == 0 && wait > 0 {
		fetchWait = wait
	}
	msgs, err := s.cfg.Queue.Fetch(ctx, c.Hospital.ID, 100, fetchWait)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("inbox fetch failed", "kind", ErrorKind(err))
	}
	for _, m := range msgs {
		d := m.Delivery()
		t, _, err := s.cfg.Store.Transfer(ctx, d.Transfer)
		if err == nil && t.Status == TransferUploading {
			// Published before the status change committed: look again soon.
			_ = m.Nak(ctx, time.Second)
			continue
		}
		// The database is the record; the queue only wakes the receiver.
		_ = m.Ack(ctx)
	}
	if len(msgs) > 0 {
		if ts, err = list(); err != nil {
			writeProblem(w, s.internal(err))
			return
		}
	}
	out := make([]TransferView, 0, len(ts))
	for _, t := range ts {
		v := view(t)
		v.Request = nil
		out = append(out, v)
	}
	writeJSON(w, 200, map[string]any{"deliveries": out})
}

// ReceiptRequest is the body of POST /v1/transfers/{id}/receipt.
type ReceiptRequest struct {
	ReceivedAt time.Time `json:"received_at"`
	Signature  string    `json:"signature"`
}

func (s *Server) receipt(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	t, _, err := s.load(ctx, r.PathValue("id"), c)
	if err == nil && c.Hospital.ID != t.Receiver {
		err = errf(http.StatusForbidden, CodeForbidden, "Forbidden", "only the receiver posts a receipt")
	}
	if err != nil {
		writeProblem(w, err)
		return
	}
	var rr ReceiptRequest
	if err := readJSON(r, &rr); err != nil {
		writeProblem(w, err)
		return
	}
	if t.Status == TransferDelivered {
		writeProblem(w, errf(http.StatusConflict, CodeConflict, "Already delivered", "a receipt was already recorded"))
		return
	}
	if rr.ReceivedAt.IsZero() || !verifyWith(c.Hospital, ReceiptMessage(&t, rr.ReceivedAt), rr.Signature) {
		writeProblem(w, errf(http.StatusBadRequest, CodeBadSignature, "Invalid receipt", "the receipt signature does not verify with the receiver's registered signing key"))
		return
	}
	rec := &Receipt{ReceivedAt: rr.ReceivedAt.UTC(), Signature: rr.Signature}
	readyAt := t.Updated // the last status change was to ready
	if err := s.cfg.Store.SetTransferStatus(ctx, t.ID, []string{TransferReady}, TransferDelivered, rec, ""); err != nil {
		if errors.Is(err, ErrConflict) {
			writeProblem(w, errf(http.StatusConflict, CodeConflict, "Already delivered", "a receipt was already recorded"))
			return
		}
		writeProblem(w, s.internal(err))
		return
	}
	_ = s.cfg.Store.KillCapabilities(ctx, CapDownload, t.ID, -1)
	s.metrics.event("delivered")
	s.metrics.observe("receipt", s.cfg.Now().Sub(readyAt))
	s.audit(ctx, audit.Event{Action: audit.ActionTransfer, Outcome: audit.OutcomeSuccess, RequestID: t.ID,
		Who: audit.Who{Org: c.Hospital.ID, CertFP: c.CertFP, Role: "receiver"}, What: audit.What{ResourceType: "Receipt"}})
	t.Status, t.Receipt = TransferDelivered, rec
	writeJSON(w, 200, view(t))
}
