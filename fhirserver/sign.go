package fhirserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"phix/fhir"
	"phix/kms"
	"phix/phi"
	"phix/store"
	"phix/suite"
)

// Signature extensions (docs/fhir-api.md, "$sign and $verify"). Seed 002
// names ml-dsa-signature; SM2 signatures (gm suite) use phix's own URL so a
// reader never has to guess the algorithm from the bytes.
const (
	ExtMLDSASignature = phi.ExtSignature
	ExtSM2Signature   = "urn:phix:fhir:StructureDefinition:sm2-signature"

	// signatureDomain starts every signed message of $sign.
	signatureDomain = "phix-fhir-signature-v1\n"
	// signingKeyTTL bounds how long a parsed signing key is reused: a
	// rotation of the signing KEK is picked up within this time (the same
	// bound kms gives its cached secrets).
	signingKeyTTL = 30 * time.Second
	// verifierRefresh is the least time between two reloads of the public
	// keys when a signature names an unknown key id, so random key ids
	// cannot make every $verify hit the keyring.
	verifierRefresh = 5 * time.Second
)

// isSignatureExt reports the URLs of the signature extensions $sign writes.
func isSignatureExt(url string) bool { return url == ExtMLDSASignature || url == ExtSM2Signature }

// Signing gives the server the hospital's signing key (for $sign and for the
// Provenance of every write) and the public keys of every live version of it
// (for $verify). It is safe for concurrent use.
type Signing struct {
	keys     *kms.Manager
	hospital string
	suite    suite.Suite
	now      func() time.Time

	mu        sync.Mutex
	cur       suite.SigningKey
	curVer    int
	curAt     time.Time
	verifiers map[string]verifyKey // key id -> public key
	loadedAt  time.Time
}

type verifyKey struct {
	vk      suite.VerifyKey
	version int
}

// NewSigning checks that the hospital has a signing key in m and returns the
// server's view of it.
func NewSigning(ctx context.Context, m *kms.Manager, hospital string) (*Signing, error) {
	if m == nil || hospital == "" {
		return nil, errors.New("fhirserver: NewSigning needs a key manager and a hospital")
	}
	s := &Signing{keys: m, hospital: hospital, now: time.Now, verifiers: map[string]verifyKey{}}
	k, _, err := s.signer(ctx)
	if err != nil {
		return nil, err
	}
	if s.suite, err = suite.Lookup(k.Suite()); err != nil {
		return nil, err
	}
	return s, nil
}

// Hospital is the organisation whose key signs.
// ConsentKey implements consent.KeyResolver: a hospital trusts the
// consents it signed itself, under any live version of its signing key
// (the gateway and the dev network sign consents with that key).
func (s *Signing) ConsentKey(keyID string) (suite.VerifyKey, bool) {
	v, ok, err := s.verifier(context.Background(), keyID)
	if err != nil || !ok {
		return nil, false
	}
	return v.vk, true
}

func (s *Signing) Hospital() string { return s.hospital }

// signer returns the current signing key and its KEK version.
func (s *Signing) signer(ctx context.Context) (suite.SigningKey, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && s.now().Sub(s.curAt) < signingKeyTTL {
		return s.cur, s.curVer, nil
	}
	k, v, err := s.keys.Signer(ctx, s.hospital, 0)
	if err != nil {
		return nil, 0, err
	}
	s.cur, s.curVer, s.curAt = k, v, s.now()
	return k, v, nil
}

// verifier returns the public key with this id among the hospital's live
// signing key versions; ok is false for a key id it does not know (another
// hospital's key, a destroyed or retired version, a made-up id). The list is
// reloaded when older than signingKeyTTL, so a version destroyed or retired
// elsewhere stops verifying within that time, and on a miss at most every
// verifierRefresh.
func (s *Signing) verifier(ctx context.Context, keyID string) (verifyKey, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	age := s.now().Sub(s.loadedAt)
	if !s.loadedAt.IsZero() && age < signingKeyTTL {
		if v, ok := s.verifiers[keyID]; ok {
			return v, true, nil
		}
		if age < verifierRefresh {
			return verifyKey{}, false, nil
		}
	}
	pks, err := s.keys.PublicKeys(ctx, s.hospital)
	if err != nil {
		return verifyKey{}, false, err
	}
	s.loadedAt = s.now()
	fresh := map[string]verifyKey{}
	for _, pk := range pks {
		if pk.Purpose != kms.PurposeSigning {
			continue
		}
		st, err := suite.Lookup(suite.ID(pk.Suite))
		if err != nil {
			continue
		}
		vk, err := st.ParseVerifyKey(pk.Public)
		if err != nil {
			continue
		}
		fresh[vk.KeyID()] = verifyKey{vk: vk, version: pk.Version}
	}
	// Retired or destroyed versions drop out: PublicKeys lists live ones only.
	s.verifiers = fresh
	v, ok := s.verifiers[keyID]
	return v, ok, nil
}

// hashName is the prefix of target digests: "sha256" (intl) or "sm3" (gm).
func (s *Signing) hashName() string {
	if s.suite.ID() == suite.GM {
		return "sm3"
	}
	return "sha256"
}

// signatureInfo is one signature extension as stored.
type signatureInfo struct {
	URL       string
	Algorithm string
	KeyID     string
	Signer    string
	Role      string
	Org       string
	Time      string // FHIR instant as written
	UserID    string // SM2 user id (gm); "" otherwise
	Signature []byte
}

// errMalformedSignature is what parseSignatureExt reports for an extension
// that does not have the shape $sign writes.
var errMalformedSignature = errors.New("malformed signature extension")

// parseSignatureExt reads one signature extension. Every sub-extension may
// appear at most once; algorithm, key-id, signer, organization, timestamp
// and signature are required.
func parseSignatureExt(v any) (*signatureInfo, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errMalformedSignature
	}
	url, _ := m["url"].(string)
	if !isSignatureExt(url) {
		return nil, errMalformedSignature
	}
	subs, ok := m["extension"].([]any)
	if !ok || len(subs) == 0 || len(subs) > 16 {
		return nil, errMalformedSignature
	}
	si := &signatureInfo{URL: url}
	seen := map[string]bool{}
	for _, x := range subs {
		sm, ok := x.(map[string]any)
		if !ok {
			return nil, errMalformedSignature
		}
		name, _ := sm["url"].(string)
		if seen[name] {
			return nil, errMalformedSignature
		}
		seen[name] = true
		str := func(key string) (string, error) {
			s, ok := sm[key].(string)
			if !ok || s == "" || len(s) > 256 || strings.ContainsAny(s, "\n\r") {
				return "", errMalformedSignature
			}
			return s, nil
		}
		var err error
		switch name {
		case "algorithm":
			si.Algorithm, err = str("valueString")
		case "key-id":
			si.KeyID, err = str("valueString")
		case "signer":
			si.Signer, err = str("valueString")
		case "role":
			si.Role, err = str("valueCode")
		case "organization":
			si.Org, err = str("valueString")
		case "timestamp":
			si.Time, err = str("valueInstant")
			if err == nil {
				if _, perr := time.Parse(time.RFC3339Nano, si.Time); perr != nil {
					err = errMalformedSignature
				}
			}
		case "sm2-user-id":
			si.UserID, err = str("valueString")
		case "signature":
			b, ok := sm["valueBase64Binary"].(string)
			if !ok || b == "" || len(b) > 16<<10 {
				return nil, errMalformedSignature
			}
			si.Signature, err = base64.StdEncoding.DecodeString(b)
		default:
			return nil, errMalformedSignature
		}
		if err != nil {
			return nil, errMalformedSignature
		}
	}
	if si.Algorithm == "" || si.KeyID == "" || si.Signer == "" || si.Org == "" || si.Time == "" || len(si.Signature) == 0 {
		return nil, errMalformedSignature
	}
	return si, nil
}

// extension renders si as the stored extension.
func (si *signatureInfo) extension() map[string]any {
	sub := func(url, key, v string) map[string]any { return map[string]any{"url": url, key: v} }
	l := []any{
		sub("algorithm", "valueString", si.Algorithm),
		sub("key-id", "valueString", si.KeyID),
		sub("signer", "valueString", si.Signer),
	}
	if si.Role != "" {
		l = append(l, sub("role", "valueCode", si.Role))
	}
	l = append(l, sub("organization", "valueString", si.Org), sub("timestamp", "valueInstant", si.Time))
	if si.UserID != "" {
		l = append(l, sub("sm2-user-id", "valueString", si.UserID))
	}
	l = append(l, sub("signature", "valueBase64Binary", base64.StdEncoding.EncodeToString(si.Signature)))
	return map[string]any{"url": si.URL, "extension": l}
}

// message is the byte string a signature covers: a domain string, then the
// signature's own fields and the signable canonical form of the resource,
// each as "<decimal length>:<bytes>\n" so no field can run into the next.
func (si *signatureInfo) message(canonical []byte) []byte {
	out := make([]byte, 0, len(canonical)+256)
	out = append(out, signatureDomain...)
	for _, f := range []string{si.URL, si.Algorithm, si.KeyID, si.Signer, si.Role, si.Org, si.Time, si.UserID} {
		out = lenField(out, []byte(f))
	}
	return lenField(out, canonical)
}

func lenField(out, v []byte) []byte {
	out = strconv.AppendInt(out, int64(len(v)), 10)
	out = append(out, ':')
	out = append(out, v...)
	return append(out, '\n')
}

// signatures returns the top-level signature extensions of r (parsed or
// not) in order.
func signatures(r *fhir.Resource) []any {
	exts, _ := r.Object["extension"].([]any)
	var out []any
	for _, e := range exts {
		if m, ok := e.(map[string]any); ok {
			if u, _ := m["url"].(string); isSignatureExt(u) {
				out = append(out, e)
			}
		}
	}
	return out
}

// withoutExtensions returns a shallow copy of r whose top-level extension
// list lacks the URLs drop accepts (the list is removed when it empties).
// Nested values are shared with r.
func withoutExtensions(r *fhir.Resource, drop func(string) bool) *fhir.Resource {
	exts, ok := r.Object["extension"].([]any)
	if !ok {
		return r
	}
	keep := make([]any, 0, len(exts))
	for _, e := range exts {
		if m, ok := e.(map[string]any); ok {
			if u, _ := m["url"].(string); drop(u) {
				continue
			}
		}
		keep = append(keep, e)
	}
	if len(keep) == len(exts) {
		return r
	}
	obj := make(map[string]any, len(r.Object))
	for k, v := range r.Object {
		obj[k] = v
	}
	if len(keep) == 0 {
		delete(obj, "extension")
	} else {
		obj["extension"] = keep
	}
	return &fhir.Resource{Type: r.Type, ID: r.ID, Object: obj}
}

// isProtectionExt names the extensions the PHI layer adds to the stored form
// (they change with every version).
func isProtectionExt(u string) bool { return u == phi.ExtHMAC || u == phi.ExtMetadata }

// signableCanonical is what a $sign signature covers: fhir.Canonical (seed
// 002: meta dropped except meta.security, keys sorted, compact, ASCII) of
// the resource without its top-level signature extensions and without the
// PHI layer's hmac-authentication and encryption-metadata extensions.
// Everything else is covered: resourceType, id, meta.security, text,
// contained, every other extension and element.
func signableCanonical(r *fhir.Resource) ([]byte, error) {
	return fhir.Canonical(withoutExtensions(r, func(u string) bool { return isSignatureExt(u) || isProtectionExt(u) }))
}

// stripClientSignatures removes what only the server may write from a
// resource a client sent on an ordinary write (create, update, Bundle
// entries): top-level signature extensions (only $sign adds them) and, in a
// Provenance, signatures that claim to be the server's. It changes r's
// top-level map only (callers hand it a per-attempt clone).
func stripClientSignatures(r *fhir.Resource) {
	if c := withoutExtensions(r, isSignatureExt); c != r {
		if l, ok := c.Object["extension"]; ok {
			r.Object["extension"] = l
		} else {
			delete(r.Object, "extension")
		}
	}
	if r.Type == "Provenance" {
		stripServerProvenanceSignatures(r)
	}
}

// signOne builds a signature of r (its signable form) by the current key.
func (s *Signing) signOne(ctx context.Context, r *fhir.Resource, p *Principal) (*signatureInfo, error) {
	k, _, err := s.signer(ctx)
	if err != nil {
		return nil, err
	}
	si := &signatureInfo{URL: ExtMLDSASignature, Algorithm: k.Algorithm(), KeyID: k.KeyID(), Org: s.hospital,
		Time: s.now().UTC().Format("2006-01-02T15:04:05.000Z")}
	if k.Suite() == suite.GM {
		si.URL, si.UserID = ExtSM2Signature, suite.DefaultSM2UserID
	}
	si.Signer, si.Role = "unknown", ""
	if p != nil {
		si.Signer, si.Role = p.Subject, string(roleOf(p))
	}
	c, err := signableCanonical(r)
	if err != nil {
		return nil, err
	}
	if si.Signature, err = k.Sign(si.message(c)); err != nil {
		return nil, err
	}
	return si, nil
}

// Signature verification outcomes ($verify "status").
const (
	sigValid       = "valid"
	sigInvalid     = "invalid"     // the key is known and the signature does not match the content
	sigUnknownKey  = "unknown-key" // no live signing key of this hospital has this id
	sigMalformed   = "malformed"   // the extension does not have $sign's shape
	sigUnsupported = "unsupported-algorithm"
)

// sigResult is one signature as $verify reports it.
type sigResult struct {
	Index   int
	Status  string
	Info    *signatureInfo // nil when malformed
	Version int            // KEK version of a known key
}

// verifyAll checks every signature extension of r.
func (s *Signing) verifyAll(ctx context.Context, r *fhir.Resource) ([]sigResult, error) {
	exts := signatures(r)
	if len(exts) == 0 {
		return nil, nil
	}
	c, err := signableCanonical(r)
	if err != nil {
		return nil, err
	}
	out := make([]sigResult, 0, len(exts))
	for i, e := range exts {
		res := sigResult{Index: i}
		si, err := parseSignatureExt(e)
		if err != nil {
			res.Status = sigMalformed
			out = append(out, res)
			continue
		}
		res.Info = si
		res.Status, res.Version, err = s.check(ctx, si, si.message(c))
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	return out, nil
}

// check verifies sig over msg with the key named by si.
func (s *Signing) check(ctx context.Context, si *signatureInfo, msg []byte) (string, int, error) {
	wantURL := map[string]string{"ML-DSA-87": ExtMLDSASignature, "SM2": ExtSM2Signature}
	if u, ok := wantURL[si.Algorithm]; !ok || (si.URL != "" && u != si.URL) {
		return sigUnsupported, 0, nil
	}
	vk, ok, err := s.verifier(ctx, si.KeyID)
	if err != nil {
		return "", 0, err
	}
	if !ok {
		return sigUnknownKey, 0, nil
	}
	if vk.vk.Algorithm() != si.Algorithm {
		return sigInvalid, vk.version, nil
	}
	key := vk.vk
	if si.Algorithm == "SM2" && si.UserID != "" && si.UserID != suite.DefaultSM2UserID {
		gs, err := suite.NewGM([]byte(si.UserID))
		if err != nil {
			return sigInvalid, vk.version, nil
		}
		if key, err = gs.ParseVerifyKey(vk.vk.Bytes()); err != nil {
			return sigInvalid, vk.version, nil
		}
	}
	if key.Verify(msg, si.Signature) {
		return sigValid, vk.version, nil
	}
	return sigInvalid, vk.version, nil
}

// handleSign is POST [type]/[id]/$sign: the current version, signed by the
// hospital key on behalf of the caller, is written as a new version with one
// more signature extension (co-signing adds to the ones already there).
// If-Match pins the version the caller reviewed.
func (s *Server) handleSign(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Signing == nil {
		return errorf(CodeNotSupported, "$sign needs the server's signing keys")
	}
	typ, id, err := instance(r)
	if err != nil {
		return err
	}
	var ifVersion int64
	if im := r.Header.Get("If-Match"); im != "" {
		if ifVersion, err = parseETag(im); err != nil {
			return err
		}
	}
	if err := s.operationParams(w, r); err != nil {
		return err
	}
	p := PrincipalFrom(r.Context())
	var rec *store.Record
	err = s.runTx(r.Context(), func(tx store.Tx) error {
		cur, err := tx.Read(r.Context(), typ, id)
		if err != nil {
			return storeError(err)
		}
		if ifVersion > 0 && cur.Version != ifVersion {
			return errorf(CodeVersionConflict, "If-Match does not name the current version")
		}
		if cur, err = s.plain(r.Context(), cur); err != nil {
			return err
		}
		res, err := s.storedResource(r.Context(), cur)
		if err != nil {
			return err
		}
		// The PHI layer adds its extensions again when the version is stored.
		plain := cloneResource(withoutExtensions(res, isProtectionExt))
		si, err := s.cfg.Signing.signOne(r.Context(), plain, p)
		if err != nil {
			return &internalError{err}
		}
		exts, _ := plain.Object["extension"].([]any)
		plain.Object["extension"] = append(append([]any(nil), exts...), si.extension())
		rec, err = s.put(r.Context(), tx, plain, id, cur.Version+1, cur.Version, http.MethodPut, false)
		return err
	})
	if err != nil {
		return err
	}
	s.writeRecord(w, r, http.StatusOK, rec, true)
	return nil
}

// storedResource parses a stored version for the operations that re-read it
// ($sign, $verify).
func (s *Server) storedResource(_ context.Context, rec *store.Record) (*fhir.Resource, error) {
	res, err := fhir.Parse(rec.Body, fhir.ParseOptions{})
	if err != nil {
		return nil, &internalError{err}
	}
	return res, nil
}

// operationParams reads the optional body of $sign / $verify: nothing, or a
// Parameters resource without parameters (neither operation takes any).
func (s *Server) operationParams(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost || (r.ContentLength == 0 && r.Header.Get("Transfer-Encoding") == "") {
		return nil
	}
	data, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	res, err := s.parseResource(data)
	if err != nil {
		return err
	}
	if res.Type != "Parameters" {
		return errorf(CodeInvalidRequest, "the operation takes no body or an empty Parameters resource")
	}
	if l, _ := res.Object["parameter"].([]any); len(l) > 0 {
		return errorf(CodeInvalidRequest, "the operation takes no parameters")
	}
	return nil
}

// handleVerify is GET or POST [type]/[id]/$verify (and
// [type]/[id]/_history/[vid]/$verify): a Parameters listing every signature
// of the version with its status, signer, key and time; for a Provenance
// also the server's signature over its targets.
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Signing == nil {
		return errorf(CodeNotSupported, "$verify needs the server's signing keys")
	}
	typ, id, err := instance(r)
	if err != nil {
		return err
	}
	if err := s.operationParams(w, r); err != nil {
		return err
	}
	ctx := r.Context()
	var rec *store.Record
	if vid := r.PathValue("vid"); vid != "" {
		v, perr := strconv.ParseInt(vid, 10, 64)
		if perr != nil || v < 1 {
			return errorf(CodeNotFound, "no such version")
		}
		if rec, err = s.cfg.Store.VRead(ctx, typ, id, v); err == nil && rec.Deleted {
			return errorf(CodeGone, "this version is a deletion")
		}
	} else {
		rec, err = s.cfg.Store.Read(ctx, typ, id)
	}
	if err != nil {
		return storeError(err)
	}
	res, err := s.storedResource(ctx, rec)
	if err != nil {
		return err
	}
	results, err := s.cfg.Signing.verifyAll(ctx, res)
	if err != nil {
		return &internalError{err}
	}
	allValid := len(results) > 0
	params := []any{
		map[string]any{"name": "resource", "valueString": typ + "/" + id + "/_history/" + strconv.FormatInt(rec.Version, 10)},
		map[string]any{"name": "signatures", "valueInteger": len(results)},
	}
	for _, sr := range results {
		allValid = allValid && sr.Status == sigValid
		params = append(params, map[string]any{"name": "signature", "part": signatureParts(sr)})
	}
	if typ == "Provenance" {
		pv, err := s.verifyProvenance(ctx, res)
		if err != nil {
			return &internalError{err}
		}
		if pv != nil {
			allValid = (len(results) == 0 || allValid) && pv.valid()
			params = append(params, map[string]any{"name": "provenance", "part": pv.parts()})
		}
	}
	params = append(params, map[string]any{"name": "valid", "valueBoolean": allValid})
	body, err := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": params})
	if err != nil {
		return &internalError{err}
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func signatureParts(sr sigResult) []any {
	parts := []any{
		map[string]any{"name": "index", "valueInteger": sr.Index},
		map[string]any{"name": "status", "valueCode": sr.Status},
		map[string]any{"name": "valid", "valueBoolean": sr.Status == sigValid},
	}
	if si := sr.Info; si != nil {
		parts = append(parts,
			map[string]any{"name": "algorithm", "valueString": si.Algorithm},
			map[string]any{"name": "key-id", "valueString": si.KeyID},
			map[string]any{"name": "signer", "valueString": si.Signer})
		if si.Role != "" {
			parts = append(parts, map[string]any{"name": "role", "valueCode": si.Role})
		}
		parts = append(parts,
			map[string]any{"name": "organization", "valueString": si.Org},
			map[string]any{"name": "time", "valueInstant": si.Time})
	}
	if sr.Version > 0 {
		parts = append(parts, map[string]any{"name": "key-version", "valueInteger": sr.Version})
	}
	return parts
}

// OperationDefinition URLs of $sign and $verify (phix's own operations).
const (
	SignDefinition   = "urn:phix:OperationDefinition/sign"
	VerifyDefinition = "urn:phix:OperationDefinition/verify"
)

// signOperations are listed on every resource type of the
// CapabilityStatement when the server signs.
var signOperations = []capOp{{Name: "sign", Definition: SignDefinition}, {Name: "verify", Definition: VerifyDefinition}}
