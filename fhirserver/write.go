package fhirserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"time"

	"phix/fhir"
	"phix/store"
)

// writeResult is what a write interaction produced.
type writeResult struct {
	status  int           // 200 or 201 (or 204 for a delete)
	rec     *store.Record // the stored version; nil when a delete found nothing
	created bool
}

// newID returns a server-assigned id (a random UUID, version 4).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// instant formats a time as a FHIR instant.
func instant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.999999Z07:00") }

// stamp sets id, meta.versionId and meta.lastUpdated, keeping the client's
// other meta elements (tag, security, profile, source).
func stamp(res *fhir.Resource, id string, version int64, at time.Time) {
	res.ID = id
	res.Object["id"] = id
	old, _ := res.Object["meta"].(map[string]any)
	meta := make(map[string]any, len(old)+2)
	for k, v := range old {
		meta[k] = v
	}
	meta["versionId"] = strconv.FormatInt(version, 10)
	meta["lastUpdated"] = instant(at)
	res.Object["meta"] = meta
}

// put stamps res as version `version` of typ/id and stores it (sealed, with
// protection on) with its index entries.
func (s *Server) put(ctx context.Context, tx store.Tx, res *fhir.Resource, id string, version, ifVersion int64, method string, mustNotExist bool) (*store.Record, error) {
	at := now()
	stamp(res, id, version, at)
	return s.sealWrite(ctx, tx, &store.Write{
		Type: res.Type, ID: id, IfVersion: ifVersion, MustNotExist: mustNotExist,
		Method: method, LastUpdated: at, Version: version,
	}, res)
}

// create stores res under a new server id (or the given one, when a
// transaction pre-assigned it).
func (s *Server) create(ctx context.Context, tx store.Tx, res *fhir.Resource, id string) (*writeResult, error) {
	if id == "" {
		id = newID()
	}
	if err := s.enforceCreate(ctx, res); err != nil {
		return nil, err
	}
	stripClientSignatures(res)
	rec, err := s.put(ctx, tx, res, id, 1, 0, http.MethodPost, true)
	if err != nil {
		return nil, err
	}
	return &writeResult{status: http.StatusCreated, rec: rec, created: true}, nil
}

// update stores res as the next version of typ/id, creating it when absent
// (update-as-create with a client-chosen id). ifVersion > 0 is If-Match.
func (s *Server) update(ctx context.Context, tx store.Tx, res *fhir.Resource, id string, ifVersion int64) (*writeResult, error) {
	var version int64 = 1
	created := true
	cur, err := tx.Read(ctx, res.Type, id)
	switch {
	case err == nil:
		version, created = cur.Version+1, false
	case errors.Is(err, store.ErrDeleted):
		version = cur.Version + 1
	case errors.Is(err, store.ErrNotFound):
	default:
		return nil, storeError(err)
	}
	if ifVersion > 0 && (cur == nil || cur.Version != ifVersion) {
		return nil, errorf(CodeVersionConflict, "If-Match does not name the current version")
	}
	if err := s.guardServerProvenance(cur); err != nil {
		return nil, err
	}
	if err := s.enforceUpdate(ctx, res, cur); err != nil {
		return nil, err
	}
	stripClientSignatures(res)
	rec, err := s.put(ctx, tx, res, id, version, ifVersion, http.MethodPut, version == 1)
	if err != nil {
		return nil, err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return &writeResult{status: status, rec: rec, created: created}, nil
}

// remove writes a deletion version of typ/id. Deleting what does not exist,
// or is already deleted, changes nothing and succeeds.
func (s *Server) remove(ctx context.Context, tx store.Tx, typ, id string, ifVersion int64) (*writeResult, error) {
	cur, err := tx.Read(ctx, typ, id)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrDeleted), errors.Is(err, store.ErrNotFound):
		if ifVersion > 0 {
			return nil, errorf(CodeVersionConflict, "If-Match does not name the current version")
		}
		return &writeResult{status: http.StatusNoContent}, nil
	default:
		return nil, storeError(err)
	}
	if ifVersion > 0 && cur.Version != ifVersion {
		return nil, errorf(CodeVersionConflict, "If-Match does not name the current version")
	}
	if err := s.guardServerProvenance(cur); err != nil {
		return nil, err
	}
	if err := s.enforceDelete(ctx, cur); err != nil {
		return nil, err
	}
	rec, err := tx.Put(ctx, &store.Write{
		Type: typ, ID: id, IfVersion: ifVersion, Deleted: true, Method: http.MethodDelete,
		LastUpdated: now(), Version: cur.Version + 1,
	})
	if err != nil {
		return nil, storeError(err)
	}
	return &writeResult{status: http.StatusNoContent, rec: rec}, nil
}

// storeError maps the store's sentinel errors to API errors; anything else
// is a 500 without details.
func storeError(err error) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, store.ErrNotFound):
		return errorf(CodeNotFound, "resource not found")
	case errors.Is(err, store.ErrDeleted):
		return errorf(CodeGone, "resource deleted")
	case errors.Is(err, store.ErrVersionConflict):
		return errorf(CodeVersionConflict, "the resource's current version does not match")
	case errors.Is(err, store.ErrConflict):
		return errorf(CodeConflict, "a concurrent update won; retry")
	case errors.Is(err, store.ErrUnsupported):
		e := errorf(CodeInvalidSearch, "this search feature is not supported yet")
		e.Issues[0].Type = "not-supported"
		return e
	case errors.Is(err, store.ErrTooMany):
		e := errorf(CodeInvalidSearch, "the search would include more resources than the server allows; narrow it or page it")
		e.Issues[0].Type = "too-costly"
		return e
	case errors.Is(err, store.ErrInvalid):
		return errorf(CodeInvalidRequest, "the request was rejected as invalid by the store")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return errorf(CodeUnavailable, "request cancelled or timed out")
	}
	return &internalError{err}
}

// internalError keeps the cause for the server log's error kind but renders
// as a detail-free 500.
type internalError struct{ cause error }

func (e *internalError) Error() string { return "internal error" }
func (e *internalError) Unwrap() error { return e.cause }

// runTx runs fn in a store transaction, retrying a few times when a
// concurrent writer won (store.ErrConflict): every interaction re-reads its
// state, so a retry is safe.
func (s *Server) runTx(ctx context.Context, fn func(store.Tx) error) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		var written []provTarget
		err = s.cfg.Store.Tx(ctx, s.withProvenance(ctx, fn, &written))
		if err == nil {
			noteWrites(ctx, written)
			s.enforceCommitted(ctx)
		}
		if !isConflict(err) {
			return err
		}
	}
	return err
}

func isConflict(err error) bool {
	if errors.Is(err, store.ErrConflict) {
		return true
	}
	var e *Error
	return errors.As(err, &e) && e.Code() == CodeConflict
}

// parseETag reads a version from an ETag/If-Match value: W/"3", "3" or 3.
func parseETag(v string) (int64, error) {
	if len(v) > 2 && (v[:2] == "W/" || v[:2] == "w/") {
		v = v[2:]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, errorf(CodeInvalidRequest, "If-Match must be a weak ETag such as W/\"1\"")
	}
	return n, nil
}

func etag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }
