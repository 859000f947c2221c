package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"

	"phix/audit"
	"phix/blob"
	"phix/queue"
)

// Error is a coordinator error with a stable code. Its Detail never holds PHI
// or a token: it is built from constants and identifiers only.
type Error struct {
	Code   string
	Status int
	Title  string
	Detail string
	// Reasons lists policy reasons for a denial (codes, no PHI).
	Reasons []string
}

func (e *Error) Error() string { return e.Code + " " + e.Title + ": " + e.Detail }

// Stable error codes. docs/api/transfers.md has the table.
const (
	CodeBadRequest       = "TRF-1001"
	CodeInvalidManifest  = "TRF-1002"
	CodeInvalidFileName  = "TRF-1003"
	CodeTooLarge         = "TRF-1004"
	CodeUnauthenticated  = "TRF-1101"
	CodeForbidden        = "TRF-1102"
	CodeOutsideNetwork   = "TRF-1103"
	CodeSuspended        = "TRF-1104"
	CodeCapInvalid       = "TRF-1201"
	CodeCapForeign       = "TRF-1202"
	CodeCapExpired       = "TRF-1203"
	CodeCapUsed          = "TRF-1204"
	CodePolicyDenied     = "TRF-1301"
	CodeConsentWithdrawn = "TRF-1302"
	CodeNotFound         = "TRF-1401"
	CodeConflict         = "TRF-1402"
	CodeOffsetMismatch   = "TRF-1501"
	CodeChecksumMismatch = "TRF-1502"
	CodeLengthExceeded   = "TRF-1503"
	CodeUnsupportedTus   = "TRF-1504"
	CodeHashMismatch     = "TRF-1601"
	CodeIncomplete       = "TRF-1602"
	CodeBadSignature     = "TRF-1603"
	CodeRangeInvalid     = "TRF-1701"
	CodeUnavailable      = "TRF-1901"
	CodeInternal         = "TRF-1999"
)

// StatusChecksumMismatch is tus's "460 Checksum Mismatch".
const StatusChecksumMismatch = 460

// ErrNotFound, ErrExists and ErrConflict are returned by Store implementations.
var (
	ErrNotFound = errors.New("transfer: not found")
	ErrExists   = errors.New("transfer: already exists")
	ErrConflict = errors.New("transfer: concurrent update")
)

func errf(status int, code, title, detail string) *Error {
	return &Error{Code: code, Status: status, Title: title, Detail: detail}
}

type problem struct {
	Type    string   `json:"type"`
	Title   string   `json:"title"`
	Status  int      `json:"status"`
	Detail  string   `json:"detail,omitempty"`
	Code    string   `json:"code"`
	Reasons []string `json:"reasons,omitempty"`
}

// writeProblem answers err as application/problem+json; anything that is not
// an *Error is an internal error whose text is not shown.
func writeProblem(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = errf(http.StatusInternalServerError, CodeInternal, "Internal error", "the coordinator could not complete the request")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(problem{
		Type:    "https://phix.example/problems/" + e.Code,
		Title:   e.Title,
		Status:  e.Status,
		Detail:  e.Detail,
		Code:    e.Code,
		Reasons: e.Reasons,
	})
}

// ErrorKind names err for a log line without its text, the way the FHIR
// store logs database errors: driver, network and filesystem messages may
// quote SQL, values, paths or object keys (which carry transfer ids), so
// only a stable code or class is kept.
func ErrorKind(err error) string {
	switch {
	case err == nil:
		return "none"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	case errors.Is(err, ErrNotFound):
		return "not found"
	case errors.Is(err, ErrExists):
		return "already exists"
	case errors.Is(err, ErrConflict):
		return "concurrent update"
	}
	// blob and queue sentinels start with their stable code ("BLOB-002 ...").
	for _, s := range []error{blob.ErrInvalidKey, blob.ErrNotFound, blob.ErrExists, blob.ErrOffsetMismatch,
		blob.ErrSealed, blob.ErrNotSealed, blob.ErrRange, blob.ErrCorrupt,
		queue.ErrInvalid, queue.ErrUnavailable, queue.ErrClosed} {
		if errors.Is(err, s) {
			code, _, _ := strings.Cut(s.Error(), " ")
			return code
		}
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return "database error SQLSTATE " + pg.SQLState()
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		return "sqlite error code " + strconv.Itoa(lite.Code())
	}
	var fe *audit.FieldError
	if errors.As(err, &fe) {
		return "invalid audit field " + fe.Field
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return "filesystem error " + pe.Op
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return "network timeout"
		}
		return "network error"
	}
	return fmt.Sprintf("error %T", err)
}
