package fhirserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"phix/fhir"
	"phix/fhir/patch"
	"phix/store"
)

// PATCH: JSON Patch (application/json-patch+json) and FHIRPath Patch (a
// Parameters resource, application/fhir+json), on [type]/[id], on
// [type]?criteria and in batch/transaction Bundles. The patched resource
// goes through the update pipeline (parse, validation, invariants, stamp,
// store) in the transaction that read the current version, so a patch is
// atomic, versioned and audited like an update. docs/patch.md.

// MediaTypeJSONPatch is the Content-Type of an RFC 6902 JSON Patch body.
const MediaTypeJSONPatch = "application/json-patch+json"

// The patch error codes are the stable codes of package fhir/patch; the
// HTTP status says whether the document is malformed (400) or cannot be
// applied to this resource (422).
var patchErrorRows = map[Code]codeInfo{
	Code(patch.CodeInvalid):        {http.StatusBadRequest, "invalid", "invalid patch document"},
	Code(patch.CodeInvalidPath):    {http.StatusBadRequest, "invalid", "invalid patch path"},
	Code(patch.CodeTooLarge):       {http.StatusBadRequest, "too-costly", "too many patch operations"},
	Code(patch.CodePathNotFound):   {http.StatusUnprocessableEntity, "not-found", "patch target not found"},
	Code(patch.CodeNotSingle):      {http.StatusUnprocessableEntity, "multiple-matches", "patch path selects more than one element"},
	Code(patch.CodeIndex):          {http.StatusUnprocessableEntity, "value", "patch index out of range"},
	Code(patch.CodeTestFailed):     {http.StatusUnprocessableEntity, "conflict", "patch test failed"},
	Code(patch.CodeElementExists):  {http.StatusUnprocessableEntity, "business-rule", "element already present"},
	Code(patch.CodeUnknownElement): {http.StatusUnprocessableEntity, "structure", "unknown element"},
	Code(patch.CodeInvalidValue):   {http.StatusUnprocessableEntity, "value", "value does not fit the element"},
	Code(patch.CodeImmutable):      {http.StatusBadRequest, "business-rule", "resourceType and id cannot be patched"},
	Code(patch.CodeEvaluation):     {http.StatusUnprocessableEntity, "too-costly", "patch path evaluation failed"},
}

func init() {
	for c, info := range patchErrorRows {
		errorTable[c] = info
	}
}

// patchAPIError renders a patch error: the operation, the member and the
// position in its FHIRPath in the diagnostics, and for a FHIRPath Patch
// the operation's parameter as the issue's expression.
func patchAPIError(err error, fhirpathPatch bool) error {
	pe, ok := patch.AsError(err)
	if !ok {
		return asError(err)
	}
	var b strings.Builder
	if pe.Op >= 0 {
		b.WriteString("operation ")
		b.WriteString(strconv.Itoa(pe.Op))
		if pe.Field != "" {
			b.WriteString(", " + pe.Field)
		}
		b.WriteString(": ")
	} else if pe.Field != "" {
		b.WriteString(pe.Field + ": ")
	}
	if pe.Pos != nil {
		b.WriteString("at line " + strconv.Itoa(pe.Pos.Line) + ", column " + strconv.Itoa(pe.Pos.Column) + ": ")
	}
	b.WriteString(pe.Msg)
	e := errorf(Code(pe.Code), b.String())
	if fhirpathPatch && pe.Op >= 0 {
		expr := "Parameters.parameter[" + strconv.Itoa(pe.Op) + "]"
		if pe.Field != "" {
			expr += ".part.where(name = '" + pe.Field + "')"
		}
		e.Issues[0].Expression = []string{expr}
	}
	return e
}

// patchBody is a parsed PATCH request body.
type patchBody struct {
	p         patch.Patch
	fhirpath  bool // a FHIRPath Patch (else JSON Patch)
	ifVersion int64
}

// readPatch reads If-Match and the body, choosing the patch kind by
// Content-Type. application/json (or no Content-Type) is taken as JSON
// Patch when the body is an array and as FHIRPath Patch when it is an
// object.
func (s *Server) readPatch(w http.ResponseWriter, r *http.Request) (*patchBody, error) {
	pb := &patchBody{}
	if im := r.Header.Get("If-Match"); im != "" {
		v, err := parseETag(im)
		if err != nil {
			return nil, err
		}
		pb.ifVersion = v
	}
	ct := r.Header.Get("Content-Type")
	mt := ""
	if ct != "" {
		var params map[string]string
		var err error
		if mt, params, err = mime.ParseMediaType(ct); err != nil {
			return nil, errorf(CodeUnsupportedMedia, "unparseable Content-Type")
		}
		if cs, ok := params["charset"]; ok && mt == MediaTypeJSONPatch && !strings.EqualFold(cs, "utf-8") {
			return nil, errorf(CodeUnsupportedMedia, "charset must be UTF-8")
		}
	}
	switch mt {
	case MediaTypeJSONPatch, "":
	default:
		if err := checkJSONContentType(ct); err != nil {
			if asError(err).Code() == CodeUnsupportedMedia {
				return nil, errorf(CodeUnsupportedMedia, "PATCH takes application/json-patch+json (JSON Patch) or application/fhir+json (FHIRPath Patch)")
			}
			return nil, err
		}
	}
	data, err := s.readLimited(w, r)
	if err != nil {
		return nil, err
	}
	jsonPatch := mt == MediaTypeJSONPatch
	if mt == "" || mt == "application/json" {
		jsonPatch = bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("["))
	}
	if jsonPatch {
		p, err := patch.ParseJSONPatch(data)
		if err != nil {
			return nil, patchAPIError(err, false)
		}
		pb.p = p
		return pb, nil
	}
	res, err := s.parseResource(data)
	if err != nil {
		return nil, err
	}
	p, err := s.fhirpathPatch(res)
	if err != nil {
		return nil, err
	}
	pb.p, pb.fhirpath = p, true
	return pb, nil
}

// fhirpathPatch reads a Parameters resource as a FHIRPath Patch.
func (s *Server) fhirpathPatch(res *fhir.Resource) (patch.Patch, error) {
	if res.Type != "Parameters" {
		return nil, errorf(Code(patch.CodeInvalid), "a FHIRPath Patch body is a Parameters resource")
	}
	if issues := fhir.Validate(res); hasErrors(issues) {
		return nil, validationError(issues)
	}
	p, err := patch.ParseFHIRPathPatch(res.Object)
	if err != nil {
		return nil, patchAPIError(err, true)
	}
	return p, nil
}

func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request) error {
	typ, id, err := instance(r)
	if err != nil {
		return err
	}
	pb, err := s.readPatch(w, r)
	if err != nil {
		return err
	}
	var out *writeResult
	err = s.runTx(r.Context(), func(tx store.Tx) error {
		var err error
		out, err = s.patchOne(r.Context(), tx, typ, id, pb.p, pb.fhirpath, pb.ifVersion)
		return err
	})
	if err != nil {
		return err
	}
	s.writeRecord(w, r, out.status, out.rec, true)
	return nil
}

// handleConditionalPatch is PATCH [type]?criteria: exactly one match is
// patched; none answers 404, more than one 412.
func (s *Server) handleConditionalPatch(w http.ResponseWriter, r *http.Request) error {
	typ := r.PathValue("type")
	if err := checkType(typ); err != nil {
		return err
	}
	if r.URL.RawQuery == "" {
		return errorf(CodeMethodNotAllowed, "PATCH needs an id or a search condition")
	}
	pb, err := s.readPatch(w, r)
	if err != nil {
		return err
	}
	var out *writeResult
	err = s.runTx(r.Context(), func(tx store.Tx) error {
		id, err := s.patchTarget(r.Context(), tx, typ, r.URL.RawQuery)
		if err != nil {
			return err
		}
		out, err = s.patchOne(r.Context(), tx, typ, id, pb.p, pb.fhirpath, pb.ifVersion)
		return err
	})
	if err != nil {
		return err
	}
	s.writeRecord(w, r, out.status, out.rec, true)
	return nil
}

// patchTarget resolves a conditional patch's criteria to one id.
func (s *Server) patchTarget(ctx context.Context, rd store.Reader, typ, query string) (string, error) {
	recs, err := s.matchCondition(ctx, rd, typ, query, 1)
	if err != nil {
		if ae := asError(err); ae.Code() == CodeMultipleMatches {
			return "", errorf(CodeMultipleMatches, "the patch condition matched more than one resource")
		}
		return "", err
	}
	if len(recs) == 0 {
		return "", errorf(CodeNotFound, "the patch condition matched no resource")
	}
	return recs[0].ID, nil
}

// patchOne applies p to the current version of typ/id inside tx and stores
// the result as the next version through the update path. ifVersion > 0 is
// If-Match. The update is conditioned on the version read, so a concurrent
// writer makes the transaction retry against the new version.
func (s *Server) patchOne(ctx context.Context, tx store.Tx, typ, id string, p patch.Patch, fhirpathPatch bool, ifVersion int64) (*writeResult, error) {
	cur, err := tx.Read(ctx, typ, id)
	if err != nil {
		return nil, storeError(err)
	}
	if ifVersion > 0 && cur.Version != ifVersion {
		return nil, errorf(CodeVersionConflict, "If-Match does not name the current version")
	}
	// A patch applies to what a reader sees: the plaintext, with protection on.
	if cur, err = s.plain(ctx, cur); err != nil {
		return nil, err
	}
	stored, err := fhir.Parse(cur.Body, fhir.ParseOptions{})
	if err != nil {
		return nil, &internalError{err}
	}
	obj, err := p.ApplyTo(stored.Object)
	if err != nil {
		return nil, patchAPIError(err, fhirpathPatch)
	}
	// The patched object is written and parsed again: the same strict
	// parser and limits as a PUT body, then the same validation.
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, errorf(Code(patch.CodeInvalidValue), "the patched resource cannot be serialized")
	}
	res, err := s.parseResource(data)
	if err != nil {
		return nil, err
	}
	if err := validate(ctx, res); err != nil {
		return nil, err
	}
	return s.update(ctx, tx, res, id, cur.Version)
}

// parsePatchEntry reads a Bundle entry with request.method PATCH: the url
// is [type]/[id] or [type]?criteria, and the resource is a Parameters
// (FHIRPath Patch) or a Binary whose data is a base64 JSON Patch.
func (s *Server) parsePatchEntry(e *bundleEntry, obj map[string]any) error {
	u := e.url
	if u.Type == "" || u.Op != "" || u.VID != "" || (u.ID == "" && !u.HasQuery) || (u.ID != "" && u.HasQuery) {
		return errorf(CodeInvalidBundle, "entry.request.url does not fit the method")
	}
	ro, ok := obj["resource"].(map[string]any)
	if !ok {
		return errorf(CodeInvalidBundle, "entry.resource (Parameters or Binary) is required for PATCH")
	}
	rt, _ := ro["resourceType"].(string)
	switch rt {
	case "Parameters":
		p, err := s.fhirpathPatch(&fhir.Resource{Type: rt, Object: ro})
		if err != nil {
			return err
		}
		e.patch, e.fhirpathPatch = p, true
	case "Binary":
		ct, _ := ro["contentType"].(string)
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != MediaTypeJSONPatch {
			return errorf(CodeUnsupportedMedia, "a Binary PATCH entry has contentType application/json-patch+json")
		}
		b64, _ := ro["data"].(string)
		data, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return errorf(Code(patch.CodeInvalid), "Binary.data is not base64")
		}
		p, err := patch.ParseJSONPatch(data)
		if err != nil {
			return patchAPIError(err, false)
		}
		e.patch = p
	default:
		return errorf(CodeInvalidBundle, "a PATCH entry's resource is a Parameters or a Binary")
	}
	return nil
}

// planPatch fixes the target id of a PATCH entry.
func (s *Server) planPatch(ctx context.Context, rd store.Reader, e *bundleEntry) error {
	if !e.url.HasQuery {
		e.id = e.url.ID
		return nil
	}
	id, err := s.patchTarget(ctx, rd, e.url.Type, e.url.Query)
	if err != nil {
		return err
	}
	e.id = id
	return nil
}
