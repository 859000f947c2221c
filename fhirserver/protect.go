package fhirserver

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"phix/audit"
	"phix/errcode"
	"phix/fhir"
	"phix/fhir/search"
	"phix/kms"
	"phix/phi"
	"phix/store"
)

// Protector is the PHI layer the server runs every stored resource through
// (docs/phi-isolation.md): *phi.Protector satisfies it.
type Protector interface {
	// Seal returns the stored form of r under patientID's keys and the search
	// entries to index (clear ones plus blind tokens).
	Seal(ctx context.Context, r *fhir.Resource, patientID string) (*fhir.Resource, []search.Entry, error)
	// Verify checks a stored resource's HMAC and returns its key owner.
	Verify(ctx context.Context, stored *fhir.Resource) (string, error)
	// OpenJSON verifies and decrypts a stored resource.
	OpenJSON(ctx context.Context, raw []byte) (*fhir.Resource, error)
	// BlindQuery rewrites clauses on encrypted parameters into blind tokens.
	BlindQuery(ctx context.Context, q *search.Query) error
	// Forget drops a patient's cached keys.
	Forget(patientID string)
	// BlindFullText and BlindFullTextQuery turn the full-text words of a
	// resource (_text, _content) and of a query into blind tokens.
	BlindFullText(ctx context.Context, d search.FullTextDoc) (search.FullTextDoc, error)
	BlindFullTextQuery(ctx context.Context, q *search.FullTextQuery, narrative bool) (*search.FullTextQuery, error)
}

// KeyEraser destroys a patient's data key under dual control (kms
// DestroyDataKeyApproved); OpenNode provides one.
type KeyEraser interface {
	// ErasePatientKey checks the custodians' approvals and destroys the key.
	ErasePatientKey(ctx context.Context, patientID string, approvals []kms.Approval) error
	// PatientKeyID is the key id approvals must name for patientID.
	PatientKeyID(patientID string) (string, error)
}

// Stable codes of the protection layer beside the PHI-60xx ones.
const (
	// CodeErased answers a read of a resource whose patient was erased
	// ($erase): the ciphertext remains, the key does not.
	CodeErased Code = "erased"
	// CodeApprovals answers an $erase whose custodian approvals are missing
	// or invalid (kms dual control).
	CodeApprovals Code = "approvals-required"
)

func init() {
	// Every PHI-60xx code renders with its own row (errcode's table).
	for _, d := range errcode.All() {
		if _, ok := errorTable[Code(d.Code)]; !ok {
			errorTable[Code(d.Code)] = phiRow(d.Code)
		}
	}
	errorTable[CodeErased] = codeInfo{http.StatusGone, "deleted", "patient data erased"}
	errorTable[CodeApprovals] = codeInfo{http.StatusForbidden, "security", "two custodians' approvals required"}
}

// phiError turns an errcode error into the server's Error; ok is false for
// other errors. The errcode detail is PHI-free by contract (paths, names,
// counts).
func phiError(err error) (*Error, bool) {
	var pe *errcode.Error
	if !errors.As(err, &pe) {
		return nil, false
	}
	e := errorf(Code(pe.Code), pe.Detail)
	if pe.Detail == "" {
		d, _ := errcode.Lookup(pe.Code)
		e.Issues[0].Diagnostics = d.Description
	}
	return e, true
}

// reservedOwner prefixes the key owners of resources that belong to no
// patient; Patient ids with this prefix are refused so no patient shares
// their keys.
const reservedOwner = "phix."

// keyOwner names the data key a resource is sealed under: a Patient's own id,
// the patient a resource belongs to (its Patient compartment reference,
// "patient" and "subject" first), or for resources that belong to no patient
// (Organization, Practitioner...) one key per type, "phix.<Type>".
func keyOwner(r *fhir.Resource) string {
	if r.Type == "Patient" {
		return r.ID
	}
	if pid := compartmentPatient(r); pid != "" && !strings.HasPrefix(pid, reservedOwner) {
		return pid
	}
	return reservedOwner + r.Type
}

// compartmentPatient returns the id of the Patient r's compartment
// parameters reference: the first parameter (by compartmentRank) that names a
// Patient decides, and it must name exactly one; otherwise "".
func compartmentPatient(r *fhir.Resource) string {
	codes := search.PatientCompartment(r.Type)
	if len(codes) == 0 {
		return ""
	}
	slices.SortStableFunc(codes, func(a, b string) int { return compartmentRank(a) - compartmentRank(b) })
	for _, c := range codes {
		p := search.Lookup(r.Type, c)
		if p == nil || p.Type != search.TypeReference {
			continue
		}
		pid := ""
		for _, e := range search.ExtractParam(r, p) {
			if e.RefType != "Patient" || !validID(e.RefID) {
				continue
			}
			if pid != "" && pid != e.RefID {
				// Several patients (a Group's members): erasing one
				// must not take the others' resource with it.
				return ""
			}
			pid = e.RefID
		}
		if pid != "" {
			return pid
		}
	}
	return ""
}

func compartmentRank(code string) int {
	switch code {
	case "patient":
		return 0
	case "subject":
		return 1
	case "beneficiary":
		return 2
	}
	return 3
}

// sealWrite completes w (Body, Index) with res's protected form and stores it
// in tx. The returned record carries the plaintext body, which is what the
// client gets back.
func (s *Server) sealWrite(ctx context.Context, tx store.Tx, w *store.Write, res *fhir.Resource) (*store.Record, error) {
	body, err := fhir.Marshal(res)
	if err != nil {
		return nil, errorf(CodeInternal, "internal error")
	}
	if s.protect == nil {
		idx, err := s.index(res)
		if err != nil {
			return nil, err
		}
		w.Body, w.Index = body, idx
		rec, err := tx.Put(ctx, w)
		if err != nil {
			return nil, storeError(err)
		}
		return rec, nil
	}
	if res.Type == "Patient" && strings.HasPrefix(res.ID, reservedOwner) {
		return nil, errorf(CodeInvalidID, "Patient ids starting with "+reservedOwner+" are reserved")
	}
	if err := s.checkDefinition(res); err != nil {
		return nil, err
	}
	sealed, entries, err := s.protect.Seal(ctx, res, keyOwner(res))
	if err != nil {
		return nil, s.protectErr(err)
	}
	entries = append(entries, s.customEntries(sealed)...)
	if w.Body, err = fhir.Marshal(sealed); err != nil {
		return nil, errorf(CodeInternal, "internal error")
	}
	w.Index = entries
	// Full text is tokenized from the plaintext and stored as blind tokens:
	// the store would otherwise see only sealed values.
	ft, err := s.protect.BlindFullText(ctx, search.FullTextOf(res.Object))
	if err != nil {
		return nil, s.protectErr(err)
	}
	w.FullText = &ft
	// The body is sealed already: a protectedTx anywhere below must pass it
	// through, and a Provenance wrapper above hashes the plaintext.
	rec, err := tx.Put(withSealed(ctx, body), w)
	if err != nil {
		return nil, storeError(err)
	}
	out := *rec
	out.Body = body
	return &out, nil
}

// protectErr maps a Protector or kms error: PHI-60xx codes keep theirs, an
// erased patient is 410, a key service failure 503, anything else 500.
func (s *Server) protectErr(err error) error {
	switch {
	case errors.Is(err, phi.ErrKeyDestroyed):
		return errorf(CodeErased, "this resource's patient data was erased")
	case kms.CodeOf(err) == kms.CodeBackend, errcode.CodeOf(err) == "" && kms.CodeOf(err) != "":
		s.log.Error("key service error", "kms_code", string(kms.CodeOf(err)))
		return errorf(CodeUnavailable, "the key service is unavailable")
	}
	if e, ok := phiError(err); ok {
		return e
	}
	return &internalError{err}
}

// errErased marks a record whose patient was erased, inside a page.
var errErased = errors.New("fhirserver: erased")

// open returns rec with its plaintext body. A failed integrity check raises
// the tamper alarm (audit event, principal lockout) and answers PHI-6005;
// an erased patient's record gives errErased.
func (s *Server) open(ctx context.Context, rec *store.Record) (*store.Record, error) {
	if s.protect == nil || rec == nil || rec.Deleted || len(rec.Body) == 0 {
		return rec, nil
	}
	r, err := s.openStored(ctx, rec.Body)
	if err != nil {
		if errors.Is(err, phi.ErrKeyDestroyed) {
			return nil, errErased
		}
		if errcode.CodeOf(err) == errcode.HMACVerificationFailed && kms.CodeOf(err) != kms.CodeBackend {
			s.tamper(ctx, rec, err)
		}
		return nil, s.protectErr(err)
	}
	if r.Type != rec.Type || r.ID != rec.ID {
		// A valid body of another resource copied into this row.
		err := errcode.New(errcode.HMACVerificationFailed, "%s: stored body names another resource", rec.Type)
		s.tamper(ctx, rec, err)
		return nil, s.protectErr(err)
	}
	body, err := fhir.Marshal(r)
	if err != nil {
		return nil, errorf(CodeInternal, "internal error")
	}
	s.enforcePrime(ctx, rec, r)
	out := *rec
	out.Body = body
	return &out, nil
}

// openOne is open for a single-resource answer: an erased patient is 410.
func (s *Server) openOne(ctx context.Context, rec *store.Record) (*store.Record, error) {
	out, err := s.open(ctx, rec)
	if errors.Is(err, errErased) {
		return nil, errorf(CodeErased, "this resource's patient data was erased")
	}
	return out, err
}

// tamper records a failed integrity check: a security-alert audit event
// (tamper-detected) and the 900 s lockout of the principal (errcode). The
// resource is named by type only: ids go to the audit log as pseudonyms.
func (s *Server) tamper(ctx context.Context, rec *store.Record, err error) {
	p := PrincipalFrom(ctx)
	if p != nil && s.lockout != nil {
		if _, lerr := s.lockout.Record(context.WithoutCancel(ctx), p.Subject, err); lerr != nil {
			s.log.Error("lockout not recorded", "error", lerr.Error())
		}
	}
	s.log.Warn("integrity check failed", "error_code", string(errcode.HMACVerificationFailed), "resource_type", rec.Type, "version", rec.Version)
	if s.audit == nil {
		return
	}
	ev := audit.Event{Action: audit.ActionSecurityAlert, Alert: audit.AlertTamper, Outcome: audit.OutcomeSeriousFailure}
	ev.What.ResourceType = rec.Type
	ev.What.ResourceID = s.audit.ps.Resource(rec.Type, rec.ID)
	if p != nil {
		ev.Who.User = s.audit.ps.User(p.Subject)
		ev.Who.Role = string(roleOf(p))
	}
	s.audit.write(ctx, http.MethodPost, ev)
}

// checkLockout refuses a principal locked out by an earlier PHI-6004/6005.
func (s *Server) checkLockout(r *http.Request) error {
	p := PrincipalFrom(r.Context())
	if p == nil || s.lockout == nil {
		return nil
	}
	if err := s.lockout.Check(r.Context(), p.Subject); err != nil {
		if e, ok := phiError(err); ok {
			return e
		}
		return errorf(CodeUnavailable, "lockout state unavailable")
	}
	return nil
}

// blindQuery returns q with the clauses on encrypted parameters rewritten
// into blind tokens (a copy: q is not modified). Each clause is rewritten
// under the type its parameter belongs to: the searched type, or the target
// type of a chain, which must then be a single type (subject:Patient.name).
func (s *Server) blindQuery(ctx context.Context, q *search.Query) (*search.Query, error) {
	if s.protect == nil {
		return q, nil
	}
	for _, so := range q.Sort {
		if so.Param != nil {
			if _, b := phi.Blinded[so.Param.Code]; b {
				return nil, errorf(Code(errcode.PHIEncryptionRequired), "parameter "+so.Param.Code+" is encrypted and cannot sort")
			}
		}
	}
	var cp *search.Query
	for i, c := range q.Clauses {
		if c.Param == nil {
			continue
		}
		if search.IsFullText(c.Param) {
			if cp == nil {
				c2 := *q
				c2.Clauses = slices.Clone(q.Clauses)
				cp = &c2
			}
			nc, err := s.blindFullText(ctx, c)
			if err != nil {
				return nil, err
			}
			cp.Clauses[i] = nc
			continue
		}
		if _, b := phi.Blinded[c.Param.Code]; !b {
			continue
		}
		if cp == nil {
			c2 := *q
			c2.Clauses = slices.Clone(q.Clauses)
			cp = &c2
		}
		typ := q.Type
		if typ == "" && len(q.Types) == 1 {
			typ = q.Types[0]
		}
		if n := len(c.Chain); n > 0 {
			last := c.Chain[n-1]
			if len(last.Types) != 1 {
				return nil, errorf(Code(errcode.PHIEncryptionRequired), "chained parameter "+c.Param.Code+" is encrypted: name one target type (e.g. subject:Patient."+c.Param.Code+")")
			}
			typ = last.Types[0]
		}
		sub := search.Query{Type: typ, Clauses: []search.Clause{{Param: c.Param, Modifier: c.Modifier, Values: slices.Clone(c.Values)}}}
		if err := s.protect.BlindQuery(ctx, &sub); err != nil {
			return nil, s.protectErr(err)
		}
		nc := sub.Clauses[0]
		nc.Chain = c.Chain
		cp.Clauses[i] = nc
	}
	if cp == nil {
		return q, nil
	}
	return cp, nil
}

// protectedStore is the server's view of its store with protection on:
// searches run on blind tokens, and what leaves through the top-level
// Reader (read, vread, search, history) is verified and decrypted.
// Transactions seal what they write; their reads stay sealed (they only need
// versions and ids) and the few that answer clients open explicitly.
type protectedStore struct {
	store.Store
	s *Server
}

// Read implements store.Reader. A read of a resource deleted by an erasure
// answers 410 "erased" rather than "deleted".
func (ps *protectedStore) Read(ctx context.Context, typ, id string) (*store.Record, error) {
	rec, err := ps.Store.Read(ctx, typ, id)
	if err != nil {
		if errors.Is(err, store.ErrDeleted) && rec != nil && rec.Version > 1 {
			if prev, perr := ps.Store.VRead(ctx, typ, id, rec.Version-1); perr == nil && !prev.Deleted {
				if _, oerr := ps.s.protect.OpenJSON(ctx, prev.Body); errors.Is(oerr, phi.ErrKeyDestroyed) {
					return rec, errorf(CodeErased, "this resource's patient data was erased")
				}
			}
		}
		return rec, err
	}
	return ps.s.openOne(ctx, rec)
}

// VRead implements store.Reader.
func (ps *protectedStore) VRead(ctx context.Context, typ, id string, version int64) (*store.Record, error) {
	rec, err := ps.Store.VRead(ctx, typ, id, version)
	if err != nil {
		return rec, err
	}
	return ps.s.openOne(ctx, rec)
}

// History implements store.Reader: an erased version comes back with a nil
// Body (not Deleted), which the history Bundle renders as a 410 entry. A
// version that fails its integrity check fails the page (PHI-6005).
func (ps *protectedStore) History(ctx context.Context, opts store.HistoryOptions) ([]*store.Record, int, error) {
	recs, total, err := ps.Store.History(ctx, opts)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*store.Record, len(recs))
	for i, rec := range recs {
		o, err := ps.s.open(ctx, rec)
		switch {
		case errors.Is(err, errErased):
			c := *rec
			c.Body = nil
			o = &c
		case err != nil:
			return nil, 0, err
		}
		out[i] = o
	}
	return out, total, nil
}

// Search implements store.Reader. Matches of an erased patient (only in the
// moment between key destruction and the deletion versions $erase writes)
// are left out; any integrity failure fails the page with PHI-6005
// (docs/phi-isolation.md, "Search pages").
func (ps *protectedStore) Search(ctx context.Context, q *search.Query) (*store.SearchResult, error) {
	bq, err := ps.s.blindQuery(ctx, q)
	if err != nil {
		return nil, err
	}
	res, err := ps.Store.Search(ctx, bq)
	if err != nil {
		return nil, err
	}
	openAll := func(recs []*store.Record) ([]*store.Record, error) {
		out := recs[:0:0]
		for _, rec := range recs {
			o, err := ps.s.open(ctx, rec)
			if errors.Is(err, errErased) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, o)
		}
		return out, nil
	}
	out := &store.SearchResult{Total: res.Total}
	if out.Matches, err = openAll(res.Matches); err != nil {
		return nil, err
	}
	if out.Included, err = openAll(res.Included); err != nil {
		return nil, err
	}
	return out, nil
}

// Tx implements store.Store.
func (ps *protectedStore) Tx(ctx context.Context, fn func(store.Tx) error) error {
	return ps.Store.Tx(ctx, func(tx store.Tx) error { return fn(&protectedTx{Tx: tx, s: ps.s}) })
}

// protectedTx seals writes and blinds searches; its reads return the stored
// (sealed) form.
type protectedTx struct {
	store.Tx
	s *Server
}

// Search implements store.Reader on blind tokens.
func (pt *protectedTx) Search(ctx context.Context, q *search.Query) (*store.SearchResult, error) {
	bq, err := pt.s.blindQuery(ctx, q)
	if err != nil {
		return nil, err
	}
	return pt.Tx.Search(ctx, bq)
}

// Put implements store.Tx for writers that hand over a body (the server's
// own writes go through sealWrite): the body is parsed and sealed here, so
// nothing reaches the store in clear.
func (pt *protectedTx) Put(ctx context.Context, w *store.Write) (*store.Record, error) {
	if _, sealed := sealedPlain(ctx); sealed || w.Deleted {
		return pt.Tx.Put(ctx, w)
	}
	res, err := fhir.Parse(w.Body, fhir.ParseOptions{})
	if err != nil {
		return nil, errorf(CodeInvalidRequest, "the body to store does not parse")
	}
	c := *w
	return pt.s.sealWrite(ctx, pt, &c, res)
}

// plain returns rec with its plaintext body for an answer built from a
// transaction's (sealed) reads.
func (s *Server) plain(ctx context.Context, rec *store.Record) (*store.Record, error) {
	if s.protect == nil {
		return rec, nil
	}
	return s.openOne(ctx, rec)
}

// sealedKey marks the context of a Put whose body sealWrite has sealed.
type sealedKey struct{}

// withSealed marks ctx for one Put: its body is sealed and plain is the
// plaintext it was sealed from. The mark stays with that call (the store
// does not pass contexts on to other writes).
func withSealed(ctx context.Context, plain []byte) context.Context {
	return context.WithValue(ctx, sealedKey{}, plain)
}

// sealedPlain returns the plaintext body of a Put that sealWrite marked.
func sealedPlain(ctx context.Context) ([]byte, bool) {
	b, ok := ctx.Value(sealedKey{}).([]byte)
	return b, ok
}

// blindFullText returns a copy of a _text/_content clause whose words are
// blind tokens, as the index holds them.
func (s *Server) blindFullText(ctx context.Context, c search.Clause) (search.Clause, error) {
	c.Values = slices.Clone(c.Values)
	for i := range c.Values {
		q := c.Values[i].Text
		if q == nil {
			var err error
			if q, err = search.ParseFullText(c.Values[i].Raw); err != nil {
				return c, errorf(CodeInvalidSearch, c.Param.Code+": "+err.Error())
			}
		}
		bq, err := s.protect.BlindFullTextQuery(ctx, q, search.IsNarrativeText(c.Param))
		if err != nil {
			return c, s.protectErr(err)
		}
		c.Values[i].Text = bq
	}
	return c, nil
}

// sealedReader is the store as transactions see it (blinded searches,
// sealed records), for code outside a transaction that hands records to
// plain later (a batch's conditional creates).
func (s *Server) sealedReader() store.Reader {
	if s.protect == nil {
		return s.cfg.Store
	}
	return &sealedReader{Reader: s.raw, s: s}
}

type sealedReader struct {
	store.Reader
	s *Server
}

// Search implements store.Reader on blind tokens.
func (r *sealedReader) Search(ctx context.Context, q *search.Query) (*store.SearchResult, error) {
	bq, err := r.s.blindQuery(ctx, q)
	if err != nil {
		return nil, err
	}
	return r.Reader.Search(ctx, bq)
}
