package fhirserver

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"phix/fhir"
	"phix/store"
)

// Provenance written by the server (docs/fhir-api.md, "Provenance").
const (
	// ExtTargetActivity and ExtTargetHash annotate each Provenance.target:
	// what the write did to it (v3-DataOperation) and the digest of the
	// target version's canonical form as stored.
	ExtTargetActivity = "urn:phix:fhir:StructureDefinition:provenance-target-activity"
	ExtTargetHash     = "urn:phix:fhir:StructureDefinition:provenance-target-hash"
	// ExtSignatureAlgorithm names the algorithm of a Provenance.signature.
	ExtSignatureAlgorithm = "urn:phix:fhir:StructureDefinition:signature-algorithm"

	// SystemSigningKey is the identifier system of the server's signing key
	// in Provenance.signature.who; only the server writes it.
	SystemSigningKey = "urn:phix:signing-key"
	systemPrincipal  = "urn:phix:principal"
	systemHospital   = "urn:phix:hospital"
	systemRole       = "urn:phix:role"
	systemSigType    = "urn:iso-astm:E1762-95:2013"
	sigTypeSource    = "1.2.840.10065.1.12.1.14" // Source Signature
	systemAgentType  = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

	provenanceDomain = "phix-provenance-v1\n"

	// DefaultPurposeOfUse is the reason of a write when the request names
	// none: the server has no purpose-of-use header yet, and treatment is
	// what a clinician's write is for.
	DefaultPurposeOfUse = "TREAT"
)

// purposeDisplay gives the v3-ActReason display of the purposes phix uses.
var purposeDisplay = map[string]string{
	"TREAT": "treatment", "ETREAT": "Emergency Treatment", "HPAYMT": "healthcare payment",
	"HOPERAT": "healthcare operations", "HRESCH": "healthcare research", "PUBHLTH": "public health",
}

// purposeOfUse is the purpose of use of the request in ctx.
func purposeOfUse(ctx context.Context) string {
	if rq, _ := ctx.Value(enfReqKey).(*enfReq); rq != nil && rq.purpose != "" {
		return rq.purpose // the enforcement layer's purpose of the request
	}
	return DefaultPurposeOfUse
}

// provTarget is one version a transaction wrote.
type provTarget struct {
	typ, id  string
	version  int64
	activity string // v3-DataOperation code
	digest   string // "sha256:<hex>" / "sm3:<hex>"; "" for a deletion
}

// provTx records every version written through it so the transaction can
// end with one Provenance naming them all.
type provTx struct {
	store.Tx
	s       *Server
	targets []provTarget
}

func (p *provTx) Put(ctx context.Context, w *store.Write) (*store.Record, error) {
	rec, err := p.Tx.Put(ctx, w)
	if err != nil {
		return rec, err
	}
	t := provTarget{typ: w.Type, id: w.ID, version: w.Version, activity: activityOf(w)}
	if !w.Deleted && p.s.cfg.Signing != nil {
		// Over the version as stored: with field protection the sealed form,
		// so the digest reveals nothing about the plaintext and checks
		// without data keys, also after an erasure (docs/phi-isolation.md).
		if t.digest, err = p.s.cfg.Signing.digest(w.Type, w.Body); err != nil {
			return nil, &internalError{err}
		}
	}
	p.targets = append(p.targets, t)
	return rec, nil
}

func activityOf(w *store.Write) string {
	switch {
	case w.Deleted:
		return "DELETE"
	case w.Method == http.MethodPost || w.Version == 1:
		return "CREATE"
	}
	return "UPDATE"
}

// withProvenance wraps a transaction body so that, when the server signs,
// every version it writes is named by one signed Provenance written in the
// same store transaction (all or nothing). The versions written are also
// left in *written for the request's audit event (a Bundle's targets); the
// caller uses them only once the transaction has committed.
func (s *Server) withProvenance(ctx context.Context, fn func(store.Tx) error, written *[]provTarget) func(store.Tx) error {
	if s.cfg.Signing == nil && !auditNoteFrom(ctx).recordsWrites() {
		return fn
	}
	return func(tx store.Tx) error {
		*written = nil
		pt := &provTx{Tx: tx, s: s}
		if err := fn(pt); err != nil {
			return err
		}
		*written = pt.targets
		if len(pt.targets) == 0 || s.cfg.Signing == nil {
			return nil
		}
		return s.writeProvenance(ctx, tx, pt.targets)
	}
}

// digest is the hash of a stored version's canonical form (fhir.Canonical:
// meta dropped except meta.security), with the suite hash.
func (sg *Signing) digest(typ string, body []byte) (string, error) {
	obj, err := fhir.ParseObject(body, fhir.ParseOptions{})
	if err != nil {
		return "", err
	}
	c, err := fhir.Canonical(&fhir.Resource{Type: typ, Object: obj})
	if err != nil {
		return "", err
	}
	h := sg.suite.NewHash()
	h.Write(c)
	return sg.hashName() + ":" + hex.EncodeToString(h.Sum(nil)), nil
}

// writeProvenance stores the signed Provenance of targets in tx.
func (s *Server) writeProvenance(ctx context.Context, tx store.Tx, targets []provTarget) error {
	sg := s.cfg.Signing
	at := now()
	refs := make([]any, len(targets))
	common := targets[0].activity
	for i, t := range targets {
		exts := []any{map[string]any{"url": ExtTargetActivity, "valueCode": t.activity}}
		if t.digest != "" {
			exts = append(exts, map[string]any{"url": ExtTargetHash, "valueString": t.digest})
		}
		refs[i] = map[string]any{
			"reference": t.typ + "/" + t.id + "/_history/" + strconv.FormatInt(t.version, 10),
			"extension": exts,
		}
		if t.activity != common {
			common = ""
		}
	}
	activity := map[string]any{"text": "transaction"}
	if common != "" {
		activity = map[string]any{"coding": []any{map[string]any{
			"system": fhir.SystemDataOperation, "code": common, "display": strings.ToLower(common)}}}
	}
	purpose := purposeOfUse(ctx)
	reason := map[string]any{"system": fhir.SystemPurposeOfUse, "code": purpose}
	if d, ok := purposeDisplay[purpose]; ok {
		reason["display"] = d
	}
	agent := map[string]any{
		"type":       map[string]any{"coding": []any{map[string]any{"system": systemAgentType, "code": "author", "display": "Author"}}},
		"who":        map[string]any{"identifier": map[string]any{"system": systemPrincipal, "value": "unknown"}},
		"onBehalfOf": map[string]any{"identifier": map[string]any{"system": systemHospital, "value": sg.hospital}},
	}
	if p := PrincipalFrom(ctx); p != nil {
		agent["who"] = map[string]any{"identifier": map[string]any{"system": systemPrincipal, "value": p.Subject}}
		agent["role"] = []any{map[string]any{"coding": []any{map[string]any{"system": systemRole, "code": string(roleOf(p))}}}}
	}
	custodian := map[string]any{
		"type": map[string]any{"coding": []any{map[string]any{"system": systemAgentType, "code": "custodian", "display": "Custodian"}}},
		"who":  map[string]any{"identifier": map[string]any{"system": systemHospital, "value": sg.hospital}},
	}
	prov := &fhir.Resource{Type: "Provenance", ID: newID(), Object: map[string]any{
		"resourceType": "Provenance",
		"target":       refs,
		"recorded":     instant(at),
		"activity":     activity,
		"reason":       []any{map[string]any{"coding": []any{reason}}},
		"agent":        []any{agent, custodian},
	}}
	prov.Object["id"] = prov.ID
	sig, err := sg.signProvenance(ctx, prov, at)
	if err != nil {
		return &internalError{err}
	}
	prov.Object["signature"] = []any{sig}
	_, err = s.put(ctx, tx, prov, prov.ID, 1, 0, http.MethodPost, true)
	return err
}

// provenanceMessage is what the server's Provenance signature covers: a
// domain string, the algorithm, key id and time of the signature, then
// fhir.Canonical of the Provenance without its signature element and
// without the PHI layer's extensions. The canonical form holds every target
// with its version, activity and digest, the recorded time, agents, activity
// and reason.
func provenanceMessage(prov *fhir.Resource, alg, keyID, when string) ([]byte, error) {
	obj := make(map[string]any, len(prov.Object))
	for k, v := range prov.Object {
		if k != "signature" {
			obj[k] = v
		}
	}
	c, err := fhir.Canonical(withoutExtensions(&fhir.Resource{Type: prov.Type, ID: prov.ID, Object: obj}, isProtectionExt))
	if err != nil {
		return nil, err
	}
	out := append([]byte(provenanceDomain), nil...)
	for _, f := range []string{alg, keyID, when} {
		out = lenField(out, []byte(f))
	}
	return lenField(out, c), nil
}

func (sg *Signing) signProvenance(ctx context.Context, prov *fhir.Resource, at time.Time) (map[string]any, error) {
	k, v, err := sg.signer(ctx)
	if err != nil {
		return nil, err
	}
	when := instant(at)
	msg, err := provenanceMessage(prov, k.Algorithm(), k.KeyID(), when)
	if err != nil {
		return nil, err
	}
	sig, err := k.Sign(msg)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"type": []any{map[string]any{"system": systemSigType, "code": sigTypeSource, "display": "Source Signature"}},
		"when": when,
		"who": map[string]any{
			"identifier": map[string]any{"system": SystemSigningKey, "value": k.KeyID()},
			"display":    sg.hospital + " signing key v" + strconv.Itoa(v),
		},
		"sigFormat": "application/octet-stream",
		"data":      base64.StdEncoding.EncodeToString(sig),
		"extension": []any{map[string]any{"url": ExtSignatureAlgorithm, "valueString": k.Algorithm()}},
	}, nil
}

// isServerSignature reports a Provenance.signature that claims the server's key.
func isServerSignature(v any) bool {
	m, _ := v.(map[string]any)
	who, _ := m["who"].(map[string]any)
	id, _ := who["identifier"].(map[string]any)
	sys, _ := id["system"].(string)
	return sys == SystemSigningKey
}

// stripServerProvenanceSignatures removes, from a Provenance a client
// writes, every signature claiming the server's key: client Provenance is
// ordinary data and never carries the server's signature.
func stripServerProvenanceSignatures(r *fhir.Resource) {
	sigs, ok := r.Object["signature"].([]any)
	if !ok {
		return
	}
	keep := make([]any, 0, len(sigs))
	for _, sg := range sigs {
		if !isServerSignature(sg) {
			keep = append(keep, sg)
		}
	}
	if len(keep) == len(sigs) {
		return
	}
	if len(keep) == 0 {
		delete(r.Object, "signature")
	} else {
		r.Object["signature"] = keep
	}
}

// guardServerProvenance refuses to update or delete a Provenance the server
// wrote: it is the record of a write and stays as it is.
func (s *Server) guardServerProvenance(cur *store.Record) error {
	if cur == nil || cur.Type != "Provenance" || cur.Deleted || s.cfg.Signing == nil {
		return nil
	}
	obj, err := fhir.ParseObject(cur.Body, fhir.ParseOptions{})
	if err != nil {
		return nil
	}
	sigs, _ := obj["signature"].([]any)
	for _, sg := range sigs {
		if isServerSignature(sg) {
			return errorf(CodeMethodNotAllowed, "a Provenance written by the server cannot be changed or deleted")
		}
	}
	return nil
}

// provVerification is $verify's report on a server Provenance.
type provVerification struct {
	status  string // as for $sign signatures
	keyID   string
	alg     string
	when    string
	version int
	targets []provTargetCheck
}

type provTargetCheck struct {
	ref    string
	status string // "match", "mismatch", "missing", "deleted", "no-digest"
}

func (pv *provVerification) valid() bool {
	if pv.status != sigValid {
		return false
	}
	for _, t := range pv.targets {
		if t.status != "match" && t.status != "deleted" {
			return false
		}
	}
	return true
}

func (pv *provVerification) parts() []any {
	parts := []any{
		map[string]any{"name": "status", "valueCode": pv.status},
		map[string]any{"name": "valid", "valueBoolean": pv.valid()},
	}
	if pv.alg != "" {
		parts = append(parts, map[string]any{"name": "algorithm", "valueString": pv.alg})
	}
	if pv.keyID != "" {
		parts = append(parts, map[string]any{"name": "key-id", "valueString": pv.keyID})
	}
	if pv.version > 0 {
		parts = append(parts, map[string]any{"name": "key-version", "valueInteger": pv.version})
	}
	if _, err := time.Parse(time.RFC3339Nano, pv.when); err == nil {
		parts = append(parts, map[string]any{"name": "time", "valueInstant": pv.when})
	}
	for _, t := range pv.targets {
		parts = append(parts, map[string]any{"name": "target", "part": []any{
			map[string]any{"name": "reference", "valueString": t.ref},
			map[string]any{"name": "status", "valueCode": t.status},
		}})
	}
	return parts
}

// verifyProvenance checks the server signature of a Provenance and each
// target's digest against the stored target version. nil: the Provenance
// has no server signature (client data).
func (s *Server) verifyProvenance(ctx context.Context, prov *fhir.Resource) (*provVerification, error) {
	sigs, _ := prov.Object["signature"].([]any)
	var sig map[string]any
	for _, v := range sigs {
		if isServerSignature(v) {
			if sig != nil {
				return &provVerification{status: sigMalformed}, nil
			}
			sig, _ = v.(map[string]any)
		}
	}
	if sig == nil {
		return nil, nil
	}
	pv := &provVerification{}
	who, _ := sig["who"].(map[string]any)
	id, _ := who["identifier"].(map[string]any)
	pv.keyID, _ = id["value"].(string)
	pv.when, _ = sig["when"].(string)
	data, _ := sig["data"].(string)
	for _, e := range asList(sig["extension"]) {
		if m, _ := e.(map[string]any); m["url"] == ExtSignatureAlgorithm {
			pv.alg, _ = m["valueString"].(string)
		}
	}
	raw, err := base64.StdEncoding.DecodeString(data)
	if pv.keyID == "" || pv.alg == "" || pv.when == "" || err != nil || len(raw) == 0 {
		pv.status = sigMalformed
		return pv, nil
	}
	msg, err := provenanceMessage(prov, pv.alg, pv.keyID, pv.when)
	if err != nil {
		return nil, err
	}
	si := &signatureInfo{Algorithm: pv.alg, KeyID: pv.keyID, Signature: raw}
	if pv.status, pv.version, err = s.cfg.Signing.check(ctx, si, msg); err != nil {
		return nil, err
	}
	for _, t := range asList(prov.Object["target"]) {
		m, _ := t.(map[string]any)
		ref, _ := m["reference"].(string)
		want := ""
		for _, e := range asList(m["extension"]) {
			if em, _ := e.(map[string]any); em["url"] == ExtTargetHash {
				want, _ = em["valueString"].(string)
			}
		}
		pv.targets = append(pv.targets, provTargetCheck{ref: ref, status: s.checkTarget(ctx, ref, want)})
	}
	return pv, nil
}

// checkTarget compares a target's recorded digest with its stored version.
func (s *Server) checkTarget(ctx context.Context, ref, want string) string {
	parts := strings.Split(ref, "/")
	if len(parts) != 4 || parts[2] != "_history" {
		return "missing"
	}
	v, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return "missing"
	}
	rec, err := s.sealedReader().VRead(ctx, parts[0], parts[1], v) // as stored: the digest's input
	switch {
	case errors.Is(err, store.ErrDeleted) || (err == nil && rec.Deleted):
		if want == "" {
			return "deleted"
		}
		return "mismatch"
	case err != nil:
		return "missing"
	case want == "":
		return "no-digest"
	}
	got, err := s.cfg.Signing.digest(rec.Type, rec.Body)
	if err != nil || got != want {
		return "mismatch"
	}
	return "match"
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}
