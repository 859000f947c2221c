package sqlstore

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"phix/store"
)

// validText reports whether s can be stored and compared the same way by both
// engines: valid UTF-8 without NUL (PostgreSQL text refuses NUL).
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// ValidateWrite checks a Write's fields; the error names the field, never its
// value.
func ValidateWrite(w *store.Write) error {
	switch {
	case w == nil:
		return fmt.Errorf("%w: nil write", store.ErrInvalid)
	case w.Type == "" || !validText(w.Type) || len(w.Type) > 64:
		return fmt.Errorf("%w: write type is empty or malformed", store.ErrInvalid)
	case w.ID == "" || !validText(w.ID) || len(w.ID) > 64:
		return fmt.Errorf("%w: write id is empty or malformed", store.ErrInvalid)
	case w.Version < 1:
		return fmt.Errorf("%w: write version must be at least 1", store.ErrInvalid)
	case w.IfVersion < 0:
		return fmt.Errorf("%w: write if-version is negative", store.ErrInvalid)
	case w.Method == "" || !validText(w.Method):
		return fmt.Errorf("%w: write method is empty", store.ErrInvalid)
	case w.LastUpdated.IsZero():
		return fmt.Errorf("%w: write lastUpdated is zero", store.ErrInvalid)
	case w.LastUpdated.Year() < 1678 || w.LastUpdated.Year() > 2261:
		return fmt.Errorf("%w: write lastUpdated is out of range", store.ErrInvalid)
	case !w.Deleted && len(w.Body) == 0:
		return fmt.Errorf("%w: write body is empty", store.ErrInvalid)
	}
	return nil
}

// CheckVersion applies the Write preconditions against the current version
// (0 when the resource has none).
func CheckVersion(w *store.Write, current int64) error {
	if w.MustNotExist && current != 0 {
		return fmt.Errorf("%w: resource already exists", store.ErrVersionConflict)
	}
	if w.IfVersion != 0 && w.IfVersion != current {
		return fmt.Errorf("%w: current version differs from If-Match", store.ErrVersionConflict)
	}
	if w.Version != current+1 {
		return fmt.Errorf("%w: version is not current+1", store.ErrConflict)
	}
	return nil
}
