package fhirserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"phix/errcode"
	"phix/fhir"
	"phix/fhir/search"
	"phix/kms"
	"phix/store"
)

// maxApprovals bounds the approvals one $erase accepts.
const maxApprovals = 8

// protectRoutes adds the protection operations: $erase and $encrypt.
func (s *Server) protectRoutes(mux *http.ServeMux) {
	b := BasePath
	mux.HandleFunc(b+"/Patient/{id}/$erase", s.methods(map[string]handlerFunc{"POST": s.handleErase}))
	mux.HandleFunc(b+"/$encrypt", s.methods(map[string]handlerFunc{"POST": s.handleEncrypt, "GET": s.handleEncryptStatus}))
	mux.HandleFunc(b+"/{type}/$encrypt", s.methods(map[string]handlerFunc{"POST": s.handleEncrypt}))
	mux.HandleFunc(b+"/{type}/{id}/$encrypt", s.methods(map[string]handlerFunc{"POST": s.handleEncrypt}))
}

// handleErase is POST Patient/[id]/$erase: per-patient cryptographic
// erasure under dual control. The body is a Parameters resource with two or
// more "approval" parameters, each a kms.Approval (JSON in valueString, or
// that JSON in valueBase64Binary) for operation destroy-data-key on the
// patient's data key id. The patient's data key is destroyed, its cached keys
// dropped, and every current resource sealed under it gets a deletion
// version (so searches no longer find them). Reads then answer 410.
func (s *Server) handleErase(w http.ResponseWriter, r *http.Request) error {
	if s.protect == nil || s.cfg.Eraser == nil {
		return errorf(CodeNotSupported, "erasure needs PHI protection and a key service")
	}
	id := r.PathValue("id")
	if err := checkID(id); err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := s.raw.Read(ctx, "Patient", id); errors.Is(err, store.ErrNotFound) {
		return errorf(Code(errcode.PatientNotFound), "no such patient")
	} else if err != nil && !errors.Is(err, store.ErrDeleted) {
		return storeError(err)
	}
	if err := s.requireSecondFactor(r); err != nil {
		return err
	}
	data, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	approvals, err := parseApprovals(data)
	if err != nil {
		return err
	}
	keyID, err := s.cfg.Eraser.PatientKeyID(id)
	if err != nil {
		return errorf(CodeInvalidID, "this id cannot name a data key")
	}
	err = s.cfg.Eraser.ErasePatientKey(ctx, id, approvals)
	switch c := kms.CodeOf(err); {
	case err == nil, c == kms.CodeNotFound:
		// NotFound: approved, but the key is already gone (an earlier
		// $erase stopped before its deletion versions): finish the job.
	case c == kms.CodeApprovalRequired, c == kms.CodeApprovalInvalid:
		return errorf(CodeApprovals, "two valid approvals by different custodians for destroy-data-key of "+keyID+" are required ("+string(c)+")")
	default:
		return errorf(CodeUnavailable, "the key service did not erase the key")
	}
	s.protect.Forget(id)
	n, err := s.deleteSealedUnder(internalContext(ctx), id)
	if err != nil {
		return err
	}
	out := map[string]any{"resourceType": "Parameters", "parameter": []any{
		map[string]any{"name": "key-id", "valueString": keyID},
		map[string]any{"name": "deleted", "valueInteger": n},
	}}
	body, _ := json.Marshal(out)
	writeJSON(w, http.StatusOK, body)
	return nil
}

// parseApprovals reads the approval parameters of an $erase body.
func parseApprovals(data []byte) ([]kms.Approval, error) {
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name              string `json:"name"`
			ValueString       string `json:"valueString"`
			ValueBase64Binary string `json:"valueBase64Binary"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(data, &p); err != nil || p.ResourceType != "Parameters" {
		return nil, errorf(CodeInvalidRequest, "the body must be a Parameters resource")
	}
	var out []kms.Approval
	for _, prm := range p.Parameter {
		if prm.Name != "approval" {
			return nil, errorf(CodeInvalidRequest, "unknown parameter (only approval is accepted)")
		}
		raw := []byte(prm.ValueString)
		if prm.ValueBase64Binary != "" {
			b, err := base64.StdEncoding.DecodeString(prm.ValueBase64Binary)
			if err != nil {
				return nil, errorf(CodeInvalidRequest, "approval is not base64")
			}
			raw = b
		}
		var a kms.Approval
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, errorf(CodeInvalidRequest, "approval is not a kms approval")
		}
		out = append(out, a)
		if len(out) > maxApprovals {
			return nil, errorf(CodeInvalidRequest, "too many approvals")
		}
	}
	if len(out) < 2 {
		return nil, errorf(CodeApprovals, "two approvals by different custodians are required")
	}
	return out, nil
}

// sealedUnder lists the current resources whose data key is patient's: the
// Patient and every resource of its compartment that keyOwner assigns to it.
func (s *Server) sealedUnder(ctx context.Context, patient string) ([][2]string, error) {
	out := [][2]string{{"Patient", patient}}
	seen := map[[2]string]bool{out[0]: true}
	const page = 500
	for _, typ := range search.ResourceTypes() {
		for _, code := range search.PatientCompartment(typ) {
			if p := search.Lookup(typ, code); p == nil || p.Type != search.TypeReference {
				continue
			}
			for offset := 0; ; offset += page {
				q, _, err := search.Parse(typ, url.Values{code: {"Patient/" + patient}, "_count": {strconv.Itoa(page)}, "_offset": {strconv.Itoa(offset)}},
					search.ParseOptions{MaxCount: page})
				if err != nil {
					return nil, errorf(CodeInternal, "internal error")
				}
				q.Total = search.TotalNone
				res, err := s.raw.Search(ctx, q)
				if err != nil {
					return nil, storeError(err)
				}
				for _, rec := range res.Matches {
					k := [2]string{rec.Type, rec.ID}
					if seen[k] {
						continue
					}
					r, err := fhir.Parse(rec.Body, fhir.ParseOptions{})
					if err != nil || keyOwner(r) != patient {
						continue
					}
					seen[k] = true
					out = append(out, k)
				}
				if len(res.Matches) < page {
					break
				}
			}
		}
	}
	return out, nil
}

// deleteSealedUnder writes a deletion version of every current resource
// sealed under patient's key, in transactions of a bounded size.
func (s *Server) deleteSealedUnder(ctx context.Context, patient string) (int, error) {
	keys, err := s.sealedUnder(ctx, patient)
	if err != nil {
		return 0, err
	}
	n := 0
	const batch = 200
	for i := 0; i < len(keys); i += batch {
		part := keys[i:min(i+batch, len(keys))]
		var done int
		err := s.runTx(ctx, func(tx store.Tx) error {
			done = 0
			for _, k := range part {
				out, err := s.remove(ctx, tx, k[0], k[1], 0)
				if err != nil {
					return err
				}
				if out.rec != nil {
					done++
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += done
	}
	return n, nil
}

// erasedVersion reports whether a history page holds an erased version.
func erasedVersion(recs []*store.Record) bool {
	for _, r := range recs {
		if !r.Deleted && r.Body == nil {
			return true
		}
	}
	return false
}
