package fhirserver

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"phix/fhir"
	"phix/fhir/invariant"
)

// readBody reads a JSON request body within the size limit, refusing other
// content types with 415 and oversize bodies with 413.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	return s.readLimited(w, r)
}

func (s *Server) readLimited(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, errorf(CodeTooLarge, "request body exceeds the configured limit")
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(CodeTooLarge, "request body exceeds the configured limit")
		}
		return nil, errorf(CodeInvalidRequest, "could not read the request body")
	}
	return data, nil
}

// checkJSONContentType accepts the FHIR JSON media types (and a missing
// header, which curl users often forget).
func checkJSONContentType(ct string) error {
	if ct == "" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return errorf(CodeUnsupportedMedia, "unparseable Content-Type")
	}
	switch mt {
	case "application/fhir+json", "application/json", "application/json+fhir":
	default:
		return errorf(CodeUnsupportedMedia, "Content-Type must be application/fhir+json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errorf(CodeUnsupportedMedia, "charset must be UTF-8")
	}
	for k, v := range params {
		if strings.EqualFold(k, "fhirVersion") && !isR4(v) {
			e := errorf(CodeUnsupportedVersion, "only FHIR R4 (4.0) is supported")
			e.Status = http.StatusUnsupportedMediaType
			return e
		}
	}
	return nil
}

// parseResource parses a resource and maps parse failures to 400s.
func (s *Server) parseResource(data []byte) (*fhir.Resource, error) {
	res, err := fhir.Parse(data, fhir.ParseOptions{MaxDepth: s.cfg.MaxDepth})
	if err != nil {
		return nil, parseError(err)
	}
	if !fhir.IsResourceType(res.Type) {
		return nil, &Error{Status: http.StatusBadRequest, Issues: []Issue{{
			Severity: "error", Type: "not-supported", Code: CodeValidation,
			Diagnostics: "resourceType is not an R4 resource type", Expression: []string{"resourceType"},
		}}}
	}
	return res, nil
}

func parseError(err error) error {
	var pe *fhir.ParseError
	if !errors.As(err, &pe) {
		return errorf(CodeInvalidJSON, "malformed JSON")
	}
	msg := pe.Msg + " (at byte " + strconv.FormatInt(pe.Offset, 10) + ")"
	switch pe.Code {
	case fhir.ParseCodeDepth:
		return errorf(CodeTooDeep, msg)
	case fhir.ParseCodeResourceType, fhir.ParseCodeID:
		e := errorf(CodeValidation, msg)
		e.Status = http.StatusBadRequest
		return e
	default:
		return errorf(CodeInvalidJSON, msg)
	}
}

// validate runs structural validation, then the FHIRPath invariants of
// fhir/invariant. A structural error fails with PHI-6007 and 400 (R4 answers
// 400 for resources that fail basic FHIR validation); an error- or
// fatal-level invariant fails with PHI-6007 and 422 (well-formed but breaking
// a business rule). Warnings never reject a write.
func validate(ctx context.Context, res *fhir.Resource) error {
	issues := append(fhir.Validate(res), fhir.ValidateSecurityLabels(res)...)
	if hasErrors(issues) {
		return validationError(issues)
	}
	inv := invariant.Check(ctx, res, invariant.Options{})
	if hasErrors(inv) {
		e := validationError(inv)
		e.Status = http.StatusUnprocessableEntity
		return e
	}
	return nil
}

func validationError(issues []fhir.Issue) *Error {
	return &Error{Status: errorTable[CodeValidation].status, Issues: convertIssues(issues)}
}

func hasErrors(issues []fhir.Issue) bool {
	for _, i := range issues {
		if i.Severity == "error" || i.Severity == "fatal" {
			return true
		}
	}
	return false
}

func convertIssues(issues []fhir.Issue) []Issue {
	out := make([]Issue, 0, len(issues))
	for _, i := range issues {
		out = append(out, Issue{Severity: i.Severity, Type: i.Code, Code: CodeValidation, Diagnostics: i.Diagnostics, Expression: i.Expression, Key: i.Key})
	}
	return out
}

// validID reports whether id is a FHIR id: [A-Za-z0-9\-\.]{1,64}.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func checkID(id string) error {
	if !validID(id) {
		return errorf(CodeInvalidID, "ids are 1-64 characters of A-Z, a-z, 0-9, '-' and '.'")
	}
	return nil
}

// instance returns the resource type and id of an instance-level route
// ([type]/[id]...), checked.
func instance(r *http.Request) (typ, id string, err error) {
	typ, id = r.PathValue("type"), r.PathValue("id")
	if err := checkType(typ); err != nil {
		return "", "", err
	}
	if err := checkID(id); err != nil {
		return "", "", err
	}
	return typ, id, nil
}

func checkType(typ string) error {
	if !fhir.IsResourceType(typ) {
		return errorf(CodeUnknownType, "unknown resource type")
	}
	return nil
}

// mismatch is the 400 for a body that does not match the URL.
func mismatch(diag, expr string) error {
	return &Error{Status: http.StatusBadRequest, Issues: []Issue{{Severity: "error", Type: "invariant", Code: CodeValidation, Diagnostics: diag, Expression: []string{expr}}}}
}
