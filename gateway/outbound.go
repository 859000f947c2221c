package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"phix/audit"
	"phix/consent"
	"phix/deid"
	ddicom "phix/deid/dicom"
	"phix/dlp"
	"phix/fhir"
	"phix/gateway/coord"
	"phix/gateway/tusclient"
	"phix/internal/asynchash"
	"phix/internal/writeback"
	"phix/seal"
	"phix/transfer"
)

// SendRequest is what `phix transfer send` asks for.
type SendRequest struct {
	To      string `json:"to"`
	Purpose string `json:"purpose"`
	// Consent is "Consent/ID" (or the bare id) in the local FHIR server.
	Consent string `json:"consent"`
	// Deidentify overrides the purpose's default profile; "none" sends
	// identified data (TREAT/ETREAT only).
	Deidentify string `json:"deidentify,omitempty"`
	// FHIR is a relative FHIR URL answering a Bundle: Patient/ID/$everything
	// or a search.
	FHIR string `json:"fhir,omitempty"`
	// Files are files on the gateway's disk.
	Files []SourceFile `json:"files,omitempty"`
	// DataClass overrides the purpose's data class.
	DataClass string `json:"data_class,omitempty"`
}

// SourceFile is one file to send: Path on the gateway's disk, Name as the
// receiver will see it (default: the base name of Path).
type SourceFile struct {
	Path string `json:"path"`
	Name string `json:"name,omitempty"`
}

// Finding is one DLP finding as the gateway reports it: which file, kind,
// location and detector; never the value.
type Finding struct {
	File     int    `json:"file"`
	Kind     string `json:"kind"`
	Location string `json:"location,omitempty"`
	Detector string `json:"detector,omitempty"`
	Action   string `json:"action"`
}

// Item is one payload file moving through the outbound stages. Small
// structured payloads (the Bundle, DICOM) are in memory; large files are
// streamed from Path.
type Item struct {
	Name        string // as the receiver sees it
	Kind        string // fhir-bundle, pdf, image, csv, dicom, file
	ContentType string
	Bundle      *fhir.Resource
	Data        []byte
	Path        string
	Size        int64
	// Sealed is the spool file of the sealed item, set by the seal stage.
	Sealed     string
	SealedSize int64
	SealedHash string
}

// Pack is what the stages pass along: the request, its policy, the consent
// and the items.
type Pack struct {
	Req        SendRequest
	Rule       PurposeRule
	Job        *Job
	ConsentID  string
	Patient    string // "Patient/ID" of the consent
	Deidentify string // the profile in force; "" = identified
	Peer       *Peer
	Items      []*Item
	Findings   []Finding
	Request    *transfer.Request
	consentEnd time.Time
	reidKey    []byte
}

// Stage is one outbound step. Stages run in order; an error stops the
// send and nothing leaves the hospital.
type Stage interface {
	Name() string
	Run(ctx context.Context, g *Gateway, p *Pack) error
}

// Stages is the outbound pipeline in order.
func Stages() []Stage {
	return []Stage{authorizeStage{}, collectStage{}, minimizeStage{}, deidStage{}, dlpStage{}, sealStage{}, signStage{}}
}

// Send runs the outbound pipeline up to registering the transfer at the
// coordinator, then uploads in the background. The job it returns carries
// the coordinator's transfer id.
func (g *Gateway) Send(ctx context.Context, req SendRequest) (*Job, error) {
	job := &Job{Local: newLocalID(), Created: g.cfg.Now().UTC(), To: req.To, Purpose: req.Purpose, Status: JobPreparing}
	p := &Pack{Req: req, Job: job}
	if err := g.prepare(ctx, p); err != nil {
		job.Status = JobFailed
		var he *httpError
		if errors.As(err, &he) {
			job.Code, job.Error, job.Findings = he.Code, he.Msg, he.Findings
			if he.Code == CodeDLPBlocked || he.Code == CodeUnscannable || he.Code == CodeConsent || he.Code == CodeDeid {
				job.Status = JobBlocked
			}
		} else {
			job.Code, job.Error = CodeInternal, "outbound pipeline failed"
		}
		_ = g.state.saveJob(job)
		g.cleanSpool(job)
		return job, err
	}
	v, err := g.cfg.Coordinator.Create(ctx, p.Request)
	if err != nil {
		g.record(ctx, "register", job.Local, false, audit.Event{Why: &audit.Why{Purpose: req.Purpose, ConsentID: p.ConsentID}, Decision: &audit.Decision{Effect: "deny", Policies: problemPolicies(err)}})
		job.Status, job.Code, job.Error = JobFailed, CodeCoordinator, errText(err)
		_ = g.state.saveJob(job)
		g.cleanSpool(job)
		return job, &httpError{Status: 502, Code: CodeCoordinator, Msg: errText(err)}
	}
	job.ID = v.ID
	for i := range job.Files {
		for _, f := range v.Files {
			if f.Name == job.Files[i].Name {
				job.Files[i].UploadURL = f.UploadURL // resolved at use: the coordinator's address may change
			}
		}
	}
	job.Status, job.Stage = JobUploading, "upload"
	if err := g.state.saveJob(job); err != nil {
		return job, err
	}
	g.record(ctx, "register", v.ID, true, audit.Event{Why: &audit.Why{Purpose: req.Purpose, ConsentID: p.ConsentID}, DataClass: p.Request.DataClass})
	cp := *job
	cp.Files = append([]JobFile(nil), job.Files...)
	g.startUpload(&cp, false) // the upload owns its copy
	return job, nil
}

func problemPolicies(err error) []string {
	var p *coord.Problem
	if errors.As(err, &p) {
		out := []string{"coordinator:" + p.Code}
		for _, r := range p.Reasons {
			out = append(out, "reason:"+r)
		}
		return out
	}
	return []string{"coordinator:unreachable"}
}

func errText(err error) string {
	var p *coord.Problem
	if errors.As(err, &p) {
		return p.Error()
	}
	var he *httpError
	if errors.As(err, &he) {
		return he.Msg
	}
	return "coordinator unreachable"
}

func (g *Gateway) prepare(ctx context.Context, p *Pack) error {
	for _, st := range Stages() {
		p.Job.Stage = st.Name()
		err := st.Run(ctx, g, p)
		ev := audit.Event{Why: &audit.Why{Purpose: p.Req.Purpose, ConsentID: p.ConsentID}}
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				ev.Decision = &audit.Decision{Effect: "deny", Policies: []string{"code:" + he.Code}}
				if he.Code == CodeDLPBlocked {
					ev.Action, ev.Alert = audit.ActionSecurityAlert, audit.AlertDLPBlock
					ev.Outcome = audit.OutcomeSeriousFailure
					ev.Who = audit.Who{Org: g.cfg.Hospital, Role: "edge-gateway"}
					ev.RequestID = p.Job.Local
					ev.Decision.Policies = append([]string{"gateway:dlp"}, ev.Decision.Policies...)
					for _, f := range he.Findings {
						if len(ev.Decision.Policies) < 30 {
							ev.Decision.Policies = append(ev.Decision.Policies, "finding:"+f.Kind)
						}
					}
					if _, aerr := g.cfg.Audit.Append(ctx, ev); aerr != nil {
						g.log.Error("audit append failed", "stage", "dlp", "error", aerr.Error())
					}
					return err
				}
			}
			g.record(ctx, st.Name(), p.Job.Local, false, ev)
			return err
		}
		g.record(ctx, st.Name(), p.Job.Local, true, ev)
	}
	return nil
}

func newLocalID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "out-" + hex.EncodeToString(b)
}

// --- authorize: policy for the purpose, the consent, the receiver's keys ---

type authorizeStage struct{}

func (authorizeStage) Name() string { return "authorize" }

func (authorizeStage) Run(ctx context.Context, g *Gateway, p *Pack) error {
	r := p.Req
	rule, ok := g.cfg.Policy.Purposes[r.Purpose]
	if !ok {
		return errorf(400, CodeBadRequest, "purpose %q is not configured (known: see the gateway policy)", r.Purpose)
	}
	if r.FHIR == "" && len(r.Files) == 0 {
		return errorf(400, CodeBadRequest, "nothing to send: give --fhir or files")
	}
	p.Rule = rule
	switch r.Deidentify {
	case "":
		p.Deidentify = rule.Deidentify
	case "none":
		if rule.Deidentify != "" {
			return errorf(403, CodeConsent, "purpose %s may not send identified data", r.Purpose)
		}
	default:
		if _, err := deid.LoadProfile(r.Deidentify); err != nil {
			return errorf(400, CodeBadRequest, "unknown de-identification profile")
		}
		p.Deidentify = r.Deidentify
	}
	p.Job.Deidentify = p.Deidentify
	peer := g.cfg.Peers[r.To]
	if peer == nil || r.To == g.cfg.Hospital {
		return errorf(400, CodeBadRequest, "unknown receiving hospital %q (not in the peers registry)", r.To)
	}
	p.Peer = peer
	id := strings.TrimPrefix(r.Consent, "Consent/")
	if id == "" || strings.Contains(id, "/") {
		return errorf(400, CodeBadRequest, "--consent must be Consent/ID")
	}
	p.ConsentID = id
	p.Job.ConsentID = id
	d, patient, err := g.checkConsent(ctx, id, r.To, r.Purpose)
	if err != nil {
		return err
	}
	p.Patient = patient
	p.Job.PatientRef = g.patientToken(patient)
	p.consentEnd = d.Expiry
	// The collect reads this patient's record under a grant for this
	// transfer only (time-boxed, audited by the FHIR server's node), not
	// a standing grant to every patient; collect closes it.
	if err := g.cfg.FHIR.OpenGrant(ctx, strings.TrimPrefix(patient, "Patient/"), p.Job.Local, id, r.Purpose, "outbound"); err != nil {
		return errorf(503, CodeConsent, "cannot open the transfer's access grant on the FHIR server")
	}
	return nil
}

// checkConsent reads the consent from the local FHIR server and decides
// whether it permits disclosing the patient's data to the receiver for the
// purpose. Only a consent whose signature verifies with this hospital's key
// counts.
func (g *Gateway) checkConsent(ctx context.Context, id, to, purpose string) (consent.Decision, string, error) {
	if g.cfg.FHIR == nil {
		return consent.Decision{}, "", errorf(503, CodeConsent, "no FHIR server configured to read consents")
	}
	res, err := g.cfg.FHIR.Read(ctx, "Consent", id)
	if err != nil {
		var fe *FHIRError
		if errors.As(err, &fe) && (fe.Status == 404 || fe.Status == 410) {
			return consent.Decision{}, "", errorf(403, CodeConsent, "consent not found")
		}
		return consent.Decision{}, "", errorf(503, CodeConsent, "cannot read the consent from the FHIR server")
	}
	c, err := consent.Compile(res, consent.NewTrustedKeys(g.cfg.Keys.Signer.Public()))
	if err != nil {
		return consent.Decision{}, "", errorf(403, CodeConsent, "the consent is not valid")
	}
	d := consent.Evaluate([]*consent.Consent{c}, consent.Request{Patient: c.Patient,
		Actor: consent.Actor{Reference: "Organization/" + to}, Action: "disclose",
		Purpose: consent.Coding{Code: purpose}, Time: g.cfg.Now()})
	if d.Effect != consent.Permit {
		code := string(d.Code)
		if code == "" {
			code = "not-permitted"
		}
		return d, c.Patient, errorf(403, CodeConsent, "the consent does not permit this disclosure (%s)", code)
	}
	return d, c.Patient, nil
}

// patientToken is the keyed, stable pseudonym of a patient the coordinator
// sees (never the id itself).
func (g *Gateway) patientToken(patient string) string {
	m := hmac.New(sha256.New, g.cfg.Keys.KEK)
	m.Write([]byte("phix-gateway-patient-token\x00" + patient))
	return "pt-" + hex.EncodeToString(m.Sum(nil)[:20])
}

// --- collect ---

type collectStage struct{}

func (collectStage) Name() string { return "collect" }

func (collectStage) Run(ctx context.Context, g *Gateway, p *Pack) error {
	defer func() {
		if err := g.cfg.FHIR.CloseGrant(context.WithoutCancel(ctx), p.Job.Local); err != nil {
			g.cfg.Logger.Warn("gateway: cannot close the transfer's access grant; it ends by itself", "err", errText(err))
		}
	}()
	if q := p.Req.FHIR; q != "" {
		if strings.Contains(q, "://") || strings.HasPrefix(q, "/") || strings.Contains(q, "..") {
			return errorf(400, CodeBadRequest, "--fhir must be a relative FHIR URL such as Patient/ID/$everything")
		}
		b, err := g.cfg.FHIR.Get(ctx, q)
		if err != nil {
			return errorf(502, CodeBadRequest, "the FHIR query failed: %v", err)
		}
		bundle, err := toCollection(b, p.Patient)
		if err != nil {
			return err
		}
		p.Items = append(p.Items, &Item{Name: "record.json", Kind: "fhir-bundle", ContentType: "application/fhir+json", Bundle: bundle})
	}
	seen := map[string]bool{"record.json": p.Req.FHIR != ""}
	for _, f := range p.Req.Files {
		name := f.Name
		if name == "" {
			name = filepath.Base(f.Path)
		}
		if err := transfer.ValidateFileName(name); err != nil || seen[name] {
			return errorf(400, CodeBadRequest, "file names must be plain and unique")
		}
		seen[name] = true
		fi, err := os.Stat(f.Path)
		if err != nil || !fi.Mode().IsRegular() {
			return errorf(400, CodeBadRequest, "file %d cannot be read", len(p.Items))
		}
		kind, ct := sniffKind(f.Path, name)
		it := &Item{Name: name, Kind: kind, ContentType: ct, Path: f.Path, Size: fi.Size()}
		p.Items = append(p.Items, it)
	}
	return nil
}

// toCollection turns a searchset into a collection Bundle of the patient's
// resources, refusing resources of another patient.
func toCollection(b *fhir.Resource, patient string) (*fhir.Resource, error) {
	entries, _ := b.Object["entry"].([]any)
	out := make([]any, 0, len(entries))
	pid := strings.TrimPrefix(patient, "Patient/")
	for _, e := range entries {
		em, _ := e.(map[string]any)
		r, _ := em["resource"].(map[string]any)
		if r == nil {
			continue
		}
		if s, _ := em["search"].(map[string]any); s != nil && s["mode"] == "outcome" {
			continue
		}
		typ, _ := r["resourceType"].(string)
		if typ == "OperationOutcome" {
			continue
		}
		if !belongsTo(typ, r, pid) {
			return nil, errorf(403, CodeConsent, "the query returned data of another patient than the consent's")
		}
		id, _ := r["id"].(string)
		out = append(out, map[string]any{"fullUrl": typ + "/" + id, "resource": r})
	}
	return &fhir.Resource{Type: "Bundle", Object: map[string]any{"resourceType": "Bundle", "type": "collection", "entry": out}}, nil
}

func belongsTo(typ string, r map[string]any, pid string) bool {
	if typ == "Patient" {
		return r["id"] == pid
	}
	for _, k := range []string{"subject", "patient", "beneficiary", "individual"} {
		if ref, ok := r[k].(map[string]any); ok {
			s, _ := ref["reference"].(string)
			if s != "" && strings.TrimPrefix(s, "Patient/") != pid {
				return false
			}
		}
	}
	return true
}

func sniffKind(path, name string) (kind, contentType string) {
	ext := strings.ToLower(filepath.Ext(name))
	head := make([]byte, 132)
	if f, err := os.Open(path); err == nil {
		n, _ := io.ReadFull(f, head)
		head = head[:n]
		f.Close()
	}
	switch {
	case len(head) >= 132 && string(head[128:132]) == "DICM", ext == ".dcm":
		return "dicom", "application/dicom"
	case bytes.HasPrefix(head, []byte("%PDF")), ext == ".pdf":
		return "pdf", "application/pdf"
	case ext == ".csv":
		return "csv", "text/csv"
	case ext == ".png":
		return "image", "image/png"
	case ext == ".jpg" || ext == ".jpeg":
		return "image", "image/jpeg"
	case ext == ".tif" || ext == ".tiff":
		return "image", "image/tiff"
	case ext == ".gif":
		return "image", "image/gif"
	case ext == ".json":
		return "file", "application/json"
	}
	return "file", "application/octet-stream"
}

// --- minimize ---

type minimizeStage struct{}

func (minimizeStage) Name() string { return "minimize" }

func (minimizeStage) Run(_ context.Context, g *Gateway, p *Pack) error {
	prof, ok := g.cfg.Policy.Minimize[p.Rule.Minimize]
	if !ok {
		return nil
	}
	keep := map[string]bool{}
	for _, t := range prof.ResourceTypes {
		keep[t] = true
	}
	for _, it := range p.Items {
		if it.Bundle == nil {
			continue
		}
		entries, _ := it.Bundle.Object["entry"].([]any)
		out := entries[:0]
		for _, e := range entries {
			r, _ := e.(map[string]any)["resource"].(map[string]any)
			typ, _ := r["resourceType"].(string)
			if len(keep) > 0 && !keep[typ] {
				continue
			}
			for _, el := range prof.DropElements {
				delete(r, el)
			}
			out = append(out, e)
		}
		it.Bundle.Object["entry"] = out
	}
	return nil
}

// --- de-identify ---

type deidStage struct{}

func (deidStage) Name() string { return "deidentify" }

func (deidStage) Run(ctx context.Context, g *Gateway, p *Pack) error {
	if p.Deidentify == "" {
		return nil
	}
	prof, err := deid.LoadProfile(p.Deidentify)
	if err != nil {
		return errorf(400, CodeBadRequest, "unknown de-identification profile")
	}
	var opts deid.Options
	var table *deid.ReidTable
	if p.Rule.ReidTable {
		p.reidKey = make([]byte, g.cfg.Keys.Suite.AEADKeySize())
		if _, err := rand.Read(p.reidKey); err != nil {
			return err
		}
		if table, err = deid.NewReidTable(g.cfg.Keys.Suite.ID(), p.reidKey); err != nil {
			return errorf(500, CodeDeid, "re-identification table: %s", deidCode(err))
		}
		opts.Reid = table
	}
	eng, err := deid.New(prof, g.cfg.Keys.Deid, opts)
	if err != nil {
		return errorf(500, CodeDeid, "de-identification engine: %s", deidCode(err))
	}
	defer func() {
		if table != nil && table.Len() > 0 {
			if b, err := json.Marshal(table); err == nil {
				p.Items = append(p.Items, &Item{Name: "reid-table.json", Kind: "reid-table", ContentType: "application/json", Data: b})
			}
		} else {
			p.reidKey = nil
		}
	}()
	var dicom *ddicom.Deidentifier
	for i, it := range p.Items {
		switch it.Kind {
		case "fhir-bundle":
			out, err := eng.Bundle(ctx, it.Bundle)
			if err != nil {
				return errorf(422, CodeDeid, "de-identification of file %d failed (%s)", i, deidCode(err))
			}
			dropEmptyExtensions(out.Object)
			it.Bundle = out
		case "dicom":
			if dicom == nil {
				dp := p.Rule.DICOMProfile
				if dp == "" {
					dp = "basic"
				}
				cfg, err := ddicom.NewConfig(dp, eng.Pseudonymizer())
				if err == nil {
					dicom, err = ddicom.New(cfg)
				}
				if err != nil {
					return errorf(500, CodeDeid, "DICOM de-identification is misconfigured")
				}
			}
			data, err := os.ReadFile(it.Path)
			if err != nil {
				return errorf(400, CodeBadRequest, "file %d cannot be read", i)
			}
			res, err := dicom.Deidentify(data)
			if err != nil {
				return errorf(422, CodeDeid, "DICOM de-identification of file %d failed", i)
			}
			if res.Quarantined {
				return errorf(422, CodeDeid, "DICOM file %d was quarantined (%s)", i, res.Reason)
			}
			it.Data, it.Path, it.Size = res.Data, "", int64(len(res.Data))
		}
		// CSV, PDF, images and other files are not rewritten: the DLP stage
		// decides whether they may go.
	}
	return nil
}

// dropEmptyExtensions removes extensions left with neither a value nor
// nested extensions (a de-identified value leaves its extension empty,
// which FHIR's ext-1 forbids).
func dropEmptyExtensions(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			dropEmptyExtensions(c)
			if k != "extension" && k != "modifierExtension" {
				continue
			}
			list, ok := c.([]any)
			if !ok {
				continue
			}
			keep := list[:0]
			for _, e := range list {
				if m, ok := e.(map[string]any); ok && !hasValueOrExtension(m) {
					continue
				}
				keep = append(keep, e)
			}
			if len(keep) == 0 {
				delete(x, k)
			} else {
				x[k] = keep
			}
		}
	case []any:
		for _, c := range x {
			dropEmptyExtensions(c)
		}
	}
}

func hasValueOrExtension(m map[string]any) bool {
	for k, v := range m {
		if strings.HasPrefix(k, "value") {
			return true
		}
		if k == "extension" {
			if l, ok := v.([]any); ok && len(l) > 0 {
				return true
			}
		}
	}
	return false
}

func deidCode(err error) string {
	if de, ok := deid.AsError(err); ok {
		return string(de.Code)
	}
	return "PHI-6008"
}

// --- DLP ---

type dlpStage struct{}

func (dlpStage) Name() string { return "dlp" }

func (dlpStage) Run(_ context.Context, _ *Gateway, p *Pack) error {
	pol, err := dlp.ParsePolicy(p.Rule.DLP)
	if err != nil {
		return errorf(500, CodeInternal, "DLP policy does not parse")
	}
	recPol := pol
	if p.Rule.DLPRecord != "" && p.Deidentify != "" {
		if recPol, err = dlp.ParsePolicy(p.Rule.DLPRecord); err != nil {
			return errorf(500, CodeInternal, "DLP policy does not parse")
		}
	}
	allowAll := func(p dlp.Policy) bool { return p.Default == dlp.Allow && len(p.Kinds) == 0 }
	if allowAll(pol) && allowAll(recPol) {
		return nil // the purpose allows identified data in every file
	}
	var blocked []Finding
	add := func(file int, fs []dlp.Finding, pol dlp.Policy) {
		for _, f := range fs {
			a := pol.Action(f.Type)
			if a == dlp.Allow {
				continue
			}
			fd := Finding{File: file, Kind: string(f.Type), Location: f.Location, Detector: f.Detector, Action: string(a)}
			p.Findings = append(p.Findings, fd)
			if a == dlp.Block {
				blocked = append(blocked, fd)
			}
		}
	}
	for i, it := range p.Items {
		switch it.Kind {
		case "fhir-bundle":
			b, err := fhir.Marshal(it.Bundle)
			if err != nil {
				return errorf(500, CodeInternal, "bundle does not marshal")
			}
			fs, err := dlp.ScanJSON(b)
			if err != nil {
				return errorf(422, CodeDLPBlocked, "file %d could not be scanned", i)
			}
			add(i, fs, recPol)
		case "csv":
			f, err := os.Open(it.Path)
			if err != nil {
				return errorf(400, CodeBadRequest, "file %d cannot be read", i)
			}
			fs, err := dlp.ScanCSV(f)
			f.Close()
			if err != nil {
				return errorf(422, CodeDLPBlocked, "file %d is not valid CSV and could not be scanned", i)
			}
			add(i, fs, pol)
		case "reid-table":
			// Originals sealed under the re-identification key: ciphertext.
		case "dicom":
			if it.Data == nil {
				blocked = append(blocked, Finding{File: i, Kind: "UNSCANNED", Location: "DICOM not de-identified", Action: "block"})
			}
			// De-identified DICOM was scanned by deid/dicom (text values
			// through dlp; burned-in pixels quarantined).
		default:
			if pol.Action(dlp.Type("UNSCANNABLE")) != dlp.Allow {
				blocked = append(blocked, Finding{File: i, Kind: "UNSCANNABLE", Location: it.ContentType, Action: "block"})
			}
		}
	}
	if len(blocked) > 0 {
		parts := make([]string, 0, len(blocked))
		for _, f := range blocked {
			if len(parts) == 10 {
				parts = append(parts, fmt.Sprintf("and %d more", len(blocked)-10))
				break
			}
			loc := f.Location
			if loc == "" {
				loc = "text"
			}
			parts = append(parts, fmt.Sprintf("%s at file %d %s", f.Kind, f.File, loc))
		}
		code := CodeDLPBlocked
		msg := "DLP blocked the send: " + strings.Join(parts, "; ")
		return &httpError{Status: 422, Code: code, Msg: msg, Findings: blocked}
	}
	return nil
}

// --- seal ---

type sealStage struct{}

func (sealStage) Name() string { return "seal" }

// innerManifest is sealed as manifest.seal: what each sealed file is. The
// coordinator sees only opaque sealed names and sizes.
//
// Version 1 carried each file's plaintext hash; version 2 (written since)
// carries none, because the plaintext is already bound twice: the signed
// manifest fixes the ciphertext's hash, and the sealed format's
// key-committing header and per-segment AEAD admit one plaintext per
// ciphertext. The hash cost a pass over every byte on each side (under gm
// two of the five SM3 passes of a transfer). Receivers still read and check
// version 1.
type innerManifest struct {
	V          int    `json:"v"`
	Sender     string `json:"sender"`
	Receiver   string `json:"receiver"`
	Purpose    string `json:"purpose"`
	ConsentID  string `json:"consent_id"`
	Deidentify string `json:"deidentified,omitempty"`
	// ReidKey opens the reid-table file; it exists only inside the sealed
	// manifest.
	ReidKey []byte      `json:"reid_key,omitempty"`
	Created time.Time   `json:"created"`
	Files   []innerFile `json:"files"`
}

type innerFile struct {
	Sealed      string `json:"sealed"`
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	// HashAlg and Hash (the plaintext's) are in version 1 manifests only.
	HashAlg string `json:"hash_alg,omitempty"`
	Hash    string `json:"hash,omitempty"`
}

// innerManifestVersion is the version this gateway writes.
const innerManifestVersion = 2

func hashAlg(g *Gateway) string {
	if g.cfg.Keys.Suite.ID() == "gm" {
		return "sm3"
	}
	return "sha256"
}

func (sealStage) Run(_ context.Context, g *Gateway, p *Pack) error {
	dir := g.state.jobDir(p.Job.Local)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	k := g.cfg.Keys
	recips := []seal.Recipient{seal.PublicKeyRecipient(p.Peer.Wrap, p.Peer.WrapVersion), seal.KEKRecipient(k.KEKID, 1, k.KEK)}
	inner := innerManifest{V: innerManifestVersion, Sender: g.cfg.Hospital, Receiver: p.Req.To, Purpose: p.Req.Purpose, ConsentID: p.ConsentID,
		Deidentify: p.Deidentify, ReidKey: p.reidKey, Created: g.cfg.Now().UTC()}
	for i, it := range p.Items {
		var src io.Reader
		switch {
		case it.Bundle != nil:
			b, err := fhir.Marshal(it.Bundle)
			if err != nil {
				return errorf(500, CodeInternal, "bundle does not marshal")
			}
			src = bytes.NewReader(b)
		case it.Data != nil:
			src = bytes.NewReader(it.Data)
		default:
			f, err := os.Open(it.Path)
			if err != nil {
				return errorf(400, CodeBadRequest, "file %d cannot be read", i)
			}
			defer f.Close()
			src = f
		}
		name := fmt.Sprintf("f%03d.seal", i+1)
		n, err := g.sealFile(filepath.Join(dir, name), src, recips, it)
		if err != nil {
			return err
		}
		inner.Files = append(inner.Files, innerFile{Sealed: name, Name: it.Name, Kind: it.Kind, ContentType: it.ContentType, Size: n})
	}
	mb, err := json.Marshal(inner)
	if err != nil {
		return err
	}
	m := &Item{Name: "manifest.json"}
	if _, err := g.sealFile(filepath.Join(dir, "manifest.seal"), bytes.NewReader(mb), recips, m); err != nil {
		return err
	}
	p.Items = append([]*Item{m}, p.Items...)
	p.Job.Files = nil
	for _, it := range p.Items {
		p.Job.Files = append(p.Job.Files, JobFile{Name: filepath.Base(it.Sealed), Size: it.SealedSize, Hash: it.SealedHash})
		p.Job.Total += it.SealedSize
	}
	return nil
}

// sealFile seals src into the spool file path, hashing the ciphertext on
// a goroutine of its own in the same pass as the seal, and returns the
// plaintext's length.
//
// The spool is not fsync'd: it lives only until the coordinator holds the
// file. It is written out as it is sealed and evicted from the page cache
// behind the write (internal/writeback), and the upload reads it back the
// same way: on machines that report free memory to their host, a page
// cache that grows by the file's size costs more CPU than the disk round
// trip (docs/speed-targets.md). A spool torn by a crash of the machine
// (not of the process) is caught when a resumed upload re-hashes it
// against the signed manifest (spoolIntact): the job then fails, nothing
// wrong is sent.
func (g *Gateway) sealFile(path string, src io.Reader, recips []seal.Recipient, it *Item) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := g.cfg.Keys.Suite
	ch := s.NewHash()
	cah := asynchash.New(ch)
	defer cah.Close()
	cw := &countWriter{w: io.MultiWriter(&writeback.Writer{F: f, Drop: true}, cah)}
	w, err := seal.NewWriter(cw, seal.Options{Suite: s, Recipients: recips})
	if err != nil {
		return 0, errorf(500, CodeInternal, "seal: %s", seal.Code(err))
	}
	n, err := io.Copy(w, src) // the Writer's ReadFrom: no intermediate buffer
	if err == nil {
		err = w.Close()
	}
	cah.Wait()
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return 0, errorf(500, CodeInternal, "sealing failed")
	}
	it.Sealed, it.SealedSize, it.SealedHash = path, cw.n, hex.EncodeToString(ch.Sum(nil))
	return n, nil
}

// spoolIntact reports whether a spool file still holds the ciphertext the
// manifest signed (size and hash), for an upload resumed after a restart.
func (g *Gateway) spoolIntact(path string, f JobFile) bool {
	src, err := os.Open(path)
	if err != nil {
		return false
	}
	defer src.Close()
	h := g.cfg.Keys.Suite.NewHash()
	n, err := io.Copy(h, src)
	return err == nil && n == f.Size && hex.EncodeToString(h.Sum(nil)) == f.Hash
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// --- sign ---

type signStage struct{}

func (signStage) Name() string { return "sign" }

func (signStage) Run(_ context.Context, g *Gateway, p *Pack) error {
	now := g.cfg.Now().UTC()
	dc := p.Rule.DataClass
	if p.Req.DataClass != "" {
		dc = p.Req.DataClass
	}
	tags := []string{"phi-encrypted"}
	if p.Deidentify != "" {
		tags = []string{"deidentified"}
	}
	req := &transfer.Request{Patient: p.Job.PatientRef, ConsentID: p.ConsentID, Purpose: p.Req.Purpose, DataClass: dc,
		RetentionUntil: now.Add(g.cfg.Retention).Truncate(time.Second), Receiver: p.Req.To}
	for _, it := range p.Items {
		req.Files = append(req.Files, transfer.FileSpec{Name: filepath.Base(it.Sealed), Size: it.SealedSize, HashAlg: hashAlg(g), Hash: it.SealedHash, Sensitive: tags})
	}
	exp := now.Add(g.cfg.Retention)
	if !p.consentEnd.IsZero() && p.consentEnd.Before(exp) {
		exp = p.consentEnd
	}
	stmt, err := json.Marshal(transfer.ConsentStatement{ConsentID: p.ConsentID, Patient: req.Patient, Receiver: p.Req.To,
		Purposes: []string{p.Req.Purpose}, IssuedAt: now.Add(-time.Minute), ExpiresAt: exp})
	if err != nil {
		return err
	}
	k := g.cfg.Keys.Signer
	ssig, err := k.Sign(stmt)
	if err != nil {
		return errorf(500, CodeInternal, "signing failed")
	}
	req.ConsentProof = transfer.ConsentProof{Statement: base64.StdEncoding.EncodeToString(stmt), Signature: base64.StdEncoding.EncodeToString(ssig)}
	msig, err := k.Sign(transfer.CanonicalManifest(g.cfg.Hospital, req))
	if err != nil {
		return errorf(500, CodeInternal, "signing failed")
	}
	req.Signature = base64.StdEncoding.EncodeToString(msig)
	p.Request = req
	return nil
}

// --- upload ---

// startUpload uploads job on a goroutine of its own; resumed says the job
// comes from a previous run, whose spool files are checked first.
func (g *Gateway) startUpload(job *Job, resumed bool) {
	ctx, cancel := context.WithCancel(context.Background())
	g.mu.Lock()
	if _, busy := g.running[job.Local]; busy {
		g.mu.Unlock()
		cancel()
		return
	}
	g.running[job.Local] = cancel
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer func() {
			g.mu.Lock()
			delete(g.running, job.Local)
			g.mu.Unlock()
			cancel()
		}()
		g.upload(ctx, job, resumed)
		g.mu.Lock()
		delete(g.sent, job.Local)
		g.mu.Unlock()
	}()
}

// Stop cancels every upload in progress (they resume on the next start)
// and waits for them.
func (g *Gateway) Stop() {
	g.mu.Lock()
	for _, c := range g.running {
		c()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// ResumeOutbound restarts the uploads a previous run left unfinished.
func (g *Gateway) ResumeOutbound(context.Context) {
	jobs, err := g.state.jobs()
	if err != nil {
		return
	}
	for _, j := range jobs {
		switch j.Status {
		case JobUploading:
			g.startUpload(j, true)
		case JobPreparing:
			j.Status, j.Code, j.Error = JobFailed, CodeInternal, "interrupted before the upload started"
			_ = g.state.saveJob(j)
			g.cleanSpool(j)
		}
	}
}

func (g *Gateway) upload(ctx context.Context, job *Job, resumed bool) {
	why := &audit.Why{Purpose: job.Purpose, ConsentID: job.ConsentID}
	lastCheck := time.Time{}
	check := func(ctx context.Context) error {
		if time.Since(lastCheck) < g.cfg.ConsentCheckEvery {
			return nil
		}
		lastCheck = time.Now()
		_, _, err := g.checkConsent(ctx, job.ConsentID, job.To, job.Purpose)
		var he *httpError
		if errors.As(err, &he) && he.Status == 403 {
			return err
		}
		return nil // the FHIR server is unreachable: keep going, check again
	}
	var done int64
	for _, f := range job.Files {
		if f.Done {
			done += f.Size
		}
	}
	for i := range job.Files {
		f := &job.Files[i]
		if f.Done {
			continue
		}
		spool := filepath.Join(g.state.jobDir(job.Local), f.Name)
		if resumed && !g.spoolIntact(spool, *f) {
			// The spool is not fsync'd (sealFile): a crash of the machine
			// may have torn it.
			g.failJob(ctx, job, CodeInternal, "the sealed spool file did not survive the restart intact; send again")
			g.cleanSpool(job)
			return
		}
		src, err := os.Open(spool)
		if err != nil {
			g.failJob(ctx, job, CodeInternal, "the sealed spool file is missing")
			return
		}
		base := done
		url, err := tusclient.Send(ctx, tusclient.Upload{URL: g.cfg.Coordinator.Resolve(f.UploadURL), Src: src, Size: f.Size}, tusclient.Options{
			HTTP: g.cfg.Coordinator.BulkHTTP(), ChunkSize: g.cfg.ChunkSize, Checksum: g.cfg.UploadChecksums,
			Progress: func(off int64) { g.progress(job, base+off) },
			Renew: func(ctx context.Context) (string, error) {
				u, err := g.renewURL(ctx, job, f.Name)
				return g.cfg.Coordinator.Resolve(u), err
			},
			Check: check,
		})
		src.Close()
		_ = url // a renewed capability is fetched again after a restart
		if err != nil {
			if ctx.Err() != nil {
				_ = g.state.saveJob(job) // stopped: resumes on the next start
				return
			}
			var he *httpError
			if errors.Is(err, tusclient.ErrStopped) && errors.As(err, &he) {
				g.withdraw(ctx, job)
				return
			}
			if coord.IsProblem(err, "TRF-1302") {
				job.Status, job.Code, job.Error = JobWithdrawn, CodeConsentWithdraw, "the consent was withdrawn"
				_ = g.state.saveJob(job)
				g.cleanSpool(job)
				return
			}
			g.failJob(ctx, job, CodeCoordinator, errText(err))
			return
		}
		f.Done = true
		done += f.Size
		g.progress(job, done)
		_ = g.state.saveJob(job)
		g.record(ctx, "upload", job.ID, true, audit.Event{Why: why, PayloadHash: hashAlg(g) + ":" + f.Hash})
	}
	// Complete, retrying while the coordinator is unreachable.
	delay := 200 * time.Millisecond
	for {
		_, err := g.cfg.Coordinator.Complete(ctx, job.ID)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		if !coord.Retryable(err) {
			g.failJob(ctx, job, CodeCoordinator, errText(err))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
	job.Status, job.Stage, job.Sent = JobSent, "complete", job.Total
	_ = g.state.saveJob(job)
	g.record(ctx, "complete", job.ID, true, audit.Event{Why: why})
	g.cleanSpool(job)
}

func (g *Gateway) progress(job *Job, sent int64) {
	g.mu.Lock()
	g.sent[job.Local] = sent
	g.mu.Unlock()
}

func (g *Gateway) renewURL(ctx context.Context, job *Job, name string) (string, error) {
	v, err := g.cfg.Coordinator.Get(ctx, job.ID, true)
	if err != nil {
		return "", err
	}
	for _, f := range v.Files {
		if f.Name == name && f.UploadURL != "" {
			return f.UploadURL, nil
		}
	}
	return "", errors.New("gateway: the coordinator renewed no upload URL for the file")
}

// withdraw stops a send whose consent no longer permits it: the
// coordinator withdraws the consent (erasing what was uploaded).
func (g *Gateway) withdraw(ctx context.Context, job *Job) {
	err := g.cfg.Coordinator.Withdraw(context.WithoutCancel(ctx), job.ConsentID)
	job.Status, job.Code, job.Error = JobWithdrawn, CodeConsentWithdraw, "the consent was withdrawn during the send; the coordinator erased what was uploaded"
	if err != nil {
		job.Error = "the consent was withdrawn during the send; telling the coordinator failed: " + errText(err)
	}
	_ = g.state.saveJob(job)
	g.cleanSpool(job)
	g.record(ctx, "consent-check", job.ID, false, audit.Event{Action: audit.ActionConsent,
		Why: &audit.Why{Purpose: job.Purpose, ConsentID: job.ConsentID}})
}

func (g *Gateway) failJob(ctx context.Context, job *Job, code, msg string) {
	job.Status, job.Code, job.Error = JobFailed, code, msg
	_ = g.state.saveJob(job)
	g.record(ctx, "upload", job.ID, false, audit.Event{Why: &audit.Why{Purpose: job.Purpose, ConsentID: job.ConsentID},
		Decision: &audit.Decision{Effect: "deny", Policies: []string{"code:" + code}}})
}

// cleanSpool removes a job's sealed spool files (they are ciphertext, but
// nothing needs them once the coordinator holds them or the job ended).
func (g *Gateway) cleanSpool(job *Job) {
	ents, _ := os.ReadDir(g.state.jobDir(job.Local))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".seal") {
			os.Remove(filepath.Join(g.state.jobDir(job.Local), e.Name()))
		}
	}
}
