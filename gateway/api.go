package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"phix/audit"
	"phix/transfer"
)

// APIBase is the path prefix of the gateway's local API.
const APIBase = "/gateway/v1"

// Status is one transfer as `phix transfer list|status` shows it.
type Status struct {
	ID        string    `json:"id"`
	Direction string    `json:"direction"` // outbound | inbound
	Peer      string    `json:"peer"`
	Purpose   string    `json:"purpose"`
	Status    string    `json:"status"`
	Stage     string    `json:"stage,omitempty"`
	Code      string    `json:"code,omitempty"`
	Error     string    `json:"error,omitempty"`
	Total     int64     `json:"total,omitempty"`
	Sent      int64     `json:"sent,omitempty"`
	Findings  []Finding `json:"findings,omitempty"`
	Resources []string  `json:"resources,omitempty"`
	Files     []string  `json:"files,omitempty"`
	Updated   time.Time `json:"updated"`
}

func (g *Gateway) jobStatus(j *Job) Status {
	sent := j.Sent
	g.mu.Lock()
	if n, ok := g.sent[j.Local]; ok && j.Status == JobUploading {
		sent = n
	}
	g.mu.Unlock()
	id := j.ID
	if id == "" {
		id = j.Local
	}
	return Status{ID: id, Direction: "outbound", Peer: j.To, Purpose: j.Purpose, Status: j.Status, Stage: j.Stage, Code: j.Code,
		Error: j.Error, Total: j.Total, Sent: sent, Findings: j.Findings, Updated: j.Updated}
}

func inboundStatus(r *Inbound) Status {
	return Status{ID: r.ID, Direction: "inbound", Peer: r.Sender, Purpose: r.Purpose, Status: r.Status, Code: r.Code, Error: r.Error,
		Resources: r.Resources, Files: r.Files, Updated: r.Updated}
}

// List returns every outbound job and inbound record, newest first.
func (g *Gateway) List() ([]Status, error) {
	jobs, err := g.state.jobs()
	if err != nil {
		return nil, err
	}
	var out []Status
	for _, j := range jobs {
		if j.Status == JobSent {
			g.refresh(context.Background(), j)
		}
		out = append(out, g.jobStatus(j))
	}
	ins, err := g.state.inbounds()
	if err != nil {
		return nil, err
	}
	for _, r := range ins {
		out = append(out, inboundStatus(r))
	}
	return out, nil
}

// Status returns one transfer by coordinator or local id. A sent transfer
// is refreshed from the coordinator to learn of its receipt.
func (g *Gateway) Status(r *http.Request, id string) (Status, error) {
	jobs, err := g.state.jobs()
	if err != nil {
		return Status{}, err
	}
	for _, j := range jobs {
		if j.ID != id && j.Local != id {
			continue
		}
		if j.Status == JobSent {
			g.refresh(r.Context(), j)
		}
		return g.jobStatus(j), nil
	}
	rec, err := g.state.inbound(id)
	if err != nil {
		return Status{}, err
	}
	if rec == nil {
		return Status{}, errorf(404, CodeNotFound, "no such transfer")
	}
	return inboundStatus(rec), nil
}

// refresh asks the coordinator about a sent transfer: a receipt that
// verifies with the receiver's trusted key makes it delivered.
func (g *Gateway) refresh(ctx context.Context, j *Job) {
	v, err := g.cfg.Coordinator.Get(ctx, j.ID, false)
	if err != nil {
		return
	}
	switch v.Status {
	case transfer.TransferDelivered:
		if g.verifyReceipt(j, v) {
			j.Status = JobDelivered
			_ = g.state.saveJob(j)
			g.record(ctx, "receipt-verified", j.ID, true, auditWhy(j))
		}
	case transfer.TransferWithdrawn, transfer.TransferFailed, transfer.TransferCancelled, transfer.TransferExpired:
		j.Status = v.Status
		_ = g.state.saveJob(j)
	}
}

// Cancel cancels an outbound transfer that has not been completed.
func (g *Gateway) Cancel(r *http.Request, id string) (Status, error) {
	jobs, err := g.state.jobs()
	if err != nil {
		return Status{}, err
	}
	for _, j := range jobs {
		if j.ID != id && j.Local != id {
			continue
		}
		if j.Status != JobUploading {
			return g.jobStatus(j), errorf(409, CodeBadRequest, "the transfer is %s and can no longer be cancelled", j.Status)
		}
		g.mu.Lock()
		if c := g.running[j.Local]; c != nil {
			c()
		}
		g.mu.Unlock()
		g.wg.Wait()
		var url string
		for _, f := range j.Files {
			if !f.Done {
				url = f.UploadURL
				break
			}
		}
		if url == "" && len(j.Files) > 0 {
			url = j.Files[0].UploadURL
		}
		if err := g.cfg.Coordinator.Cancel(r.Context(), g.cfg.Coordinator.Resolve(url)); err != nil {
			if u, rerr := g.renewURL(r.Context(), j, j.Files[0].Name); rerr == nil {
				err = g.cfg.Coordinator.Cancel(r.Context(), u)
			}
			if err != nil {
				return g.jobStatus(j), &httpError{Status: 502, Code: CodeCoordinator, Msg: errText(err)}
			}
		}
		j.Status, j.Code, j.Error = JobCancelled, "", ""
		_ = g.state.saveJob(j)
		g.cleanSpool(j)
		g.record(r.Context(), "cancel", j.ID, true, auditWhy(j))
		return g.jobStatus(j), nil
	}
	return Status{}, errorf(404, CodeNotFound, "no such outbound transfer")
}

// APIOptions configure the gateway's local API.
type APIOptions struct {
	// Tokens are the bearer tokens allowed to use the API (the hospital's
	// clinician-administrator tokens).
	Tokens []string
	// Authorize, when set, decides instead of Tokens: it returns nil for a
	// request the API may serve (e.g. a bearer token the hospital's FHIR
	// server accepts for a clinician). Its error is never shown.
	Authorize func(r *http.Request) error
	// Spool is where uploaded files wait for their send (default
	// DataDir/incoming).
	Spool string
}

// API returns the gateway's local HTTP API (for `phix transfer`):
//
//	POST /gateway/v1/files                 stage one file (raw body) → {"file": id}
//	POST /gateway/v1/transfers             send (SendRequest; files by staged id) → Status
//	GET  /gateway/v1/transfers             list
//	GET  /gateway/v1/transfers/{id}        status
//	POST /gateway/v1/transfers/{id}/cancel cancel
//	POST /gateway/v1/inbox?wait=30s        receive now → [Status]
//	GET  /gateway/v1/received/{id}/files/{name...} a delivered file
func (g *Gateway) API(o APIOptions) http.Handler {
	if o.Spool == "" {
		o.Spool = filepath.Join(g.cfg.DataDir, "incoming")
	}
	_ = os.MkdirAll(o.Spool, 0o700)
	m := http.NewServeMux()
	auth := func(h func(w http.ResponseWriter, r *http.Request) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			allowed := false
			if o.Authorize != nil {
				allowed = o.Authorize(r) == nil
			}
			for _, t := range o.Tokens {
				if ok && subtle.ConstantTimeCompare([]byte(tok), []byte(t)) == 1 {
					allowed = true
				}
			}
			if !allowed {
				writeAPIError(w, errorf(401, "GW-1100", "a valid bearer token is required"))
				return
			}
			v, err := h(w, r)
			if err != nil {
				writeAPIError(w, err)
				return
			}
			if v != nil {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(v)
			}
		}
	}
	m.HandleFunc("POST "+APIBase+"/files", auth(func(w http.ResponseWriter, r *http.Request) (any, error) {
		f, err := os.CreateTemp(o.Spool, "in-*")
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(f, r.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(f.Name())
			return nil, errorf(400, CodeBadRequest, "the file upload broke off")
		}
		return map[string]string{"file": filepath.Base(f.Name())}, nil
	}))
	m.HandleFunc("POST "+APIBase+"/transfers", auth(func(w http.ResponseWriter, r *http.Request) (any, error) {
		var req SendRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, errorf(400, CodeBadRequest, "the body is not a send request")
		}
		var staged []string
		for i, f := range req.Files {
			// API callers name staged files, never paths on the gateway.
			if f.Path == "" || strings.ContainsAny(f.Path, `/\`) || strings.HasPrefix(f.Path, ".") {
				return nil, errorf(400, CodeBadRequest, "files must be staged ids from POST /files")
			}
			req.Files[i].Path = filepath.Join(o.Spool, f.Path)
			staged = append(staged, req.Files[i].Path)
		}
		job, err := g.Send(r.Context(), req)
		for _, s := range staged {
			os.Remove(s) // sealed (or refused): the plaintext copy goes
		}
		if err != nil {
			var he *httpError
			if errors.As(err, &he) && job != nil {
				he.Findings = job.Findings
			}
			return nil, err
		}
		w.WriteHeader(http.StatusCreated)
		return g.jobStatus(job), nil
	}))
	m.HandleFunc("GET "+APIBase+"/transfers", auth(func(w http.ResponseWriter, r *http.Request) (any, error) {
		l, err := g.List()
		return map[string]any{"transfers": l}, err
	}))
	m.HandleFunc("GET "+APIBase+"/transfers/{id}", auth(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return g.Status(r, r.PathValue("id"))
	}))
	m.HandleFunc("POST "+APIBase+"/transfers/{id}/cancel", auth(func(w http.ResponseWriter, r *http.Request) (any, error) {
		return g.Cancel(r, r.PathValue("id"))
	}))
	m.HandleFunc("POST "+APIBase+"/inbox", auth(func(w http.ResponseWriter, r *http.Request) (any, error) {
		wait := time.Duration(0)
		if q := r.URL.Query().Get("wait"); q != "" {
			d, err := time.ParseDuration(q)
			if err != nil || d < 0 || d > 60*time.Second {
				return nil, errorf(400, CodeBadRequest, "wait is a duration of at most 60s")
			}
			wait = d
		}
		recs, err := g.ReceiveOnce(r.Context(), wait)
		if err != nil {
			return nil, &httpError{Status: 502, Code: CodeCoordinator, Msg: errText(err)}
		}
		out := []Status{}
		for _, rec := range recs {
			out = append(out, inboundStatus(rec))
		}
		return map[string]any{"received": out}, nil
	}))
	m.HandleFunc("GET "+APIBase+"/received/{id}/files/{name}", auth(func(w http.ResponseWriter, r *http.Request) (any, error) {
		id, name := r.PathValue("id"), r.PathValue("name")
		rec, err := g.state.inbound(id)
		if err != nil || rec == nil || rec.Status != InDelivered || transfer.ValidateFileName(name) != nil {
			return nil, errorf(404, CodeNotFound, "no such delivered file")
		}
		f, err := os.Open(deliveryPath(g.cfg.DeliveryDir, id, name))
		if err != nil {
			return nil, errorf(404, CodeNotFound, "no such delivered file")
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.Copy(w, f)
		return nil, nil
	}))
	return m
}

func auditWhy(j *Job) audit.Event {
	return audit.Event{Why: &audit.Why{Purpose: j.Purpose, ConsentID: j.ConsentID}}
}

// verifyReceipt checks the receiver's signed receipt with the key this
// gateway trusts for the receiver.
func (g *Gateway) verifyReceipt(j *Job, v transfer.TransferView) bool {
	peer := g.cfg.Peers[j.To]
	if peer == nil || v.Receipt == nil || v.Request == nil {
		return false
	}
	sig, err := base64.StdEncoding.DecodeString(v.Receipt.Signature)
	if err != nil {
		return false
	}
	t := &transfer.Transfer{ID: v.ID, Sender: v.Sender, Receiver: v.Receiver, Request: *v.Request}
	return peer.Verify.Verify(transfer.ReceiptMessage(t, v.Receipt.ReceivedAt), sig)
}

func writeAPIError(w http.ResponseWriter, err error) {
	status, code := statusOf(err)
	var he *httpError
	msg := "internal error"
	var findings []Finding
	if errors.As(err, &he) {
		msg, findings = he.Msg, he.Findings
	} else if status == http.StatusBadGateway {
		msg = errText(err)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "code": code, "title": http.StatusText(status), "detail": msg, "findings": findings})
}

// DeliveryDir is the folder inbound files are delivered to.
func (g *Gateway) DeliveryDir() string { return g.cfg.DeliveryDir }
