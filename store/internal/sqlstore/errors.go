package sqlstore

import (
	"context"
	"errors"
	"strconv"
)

// dbError wraps a driver error. Its message carries the operation and the
// engine's error code but never the driver's text, which can quote values
// (PostgreSQL details name key values; they may be PHI).
type dbError struct {
	op  string
	err error
}

func (e *dbError) Error() string { return "store: " + e.op + ": " + safeText(e.err) }
func (e *dbError) Unwrap() error { return e.err }

// DBError wraps a driver error for op; nil stays nil.
func DBError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &dbError{op: op, err: err}
}

func safeText(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return "database error SQLSTATE " + pg.SQLState()
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		return "sqlite error code " + strconv.Itoa(lite.Code())
	}
	return "database error"
}
