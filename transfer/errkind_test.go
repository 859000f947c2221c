package transfer_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"testing"

	"phix/blob"
	"phix/queue"
	"phix/transfer"
)

// TestErrorKind checks that log kinds keep the class and drop the text
// (paths, keys and SQL may carry transfer ids or values).
func TestErrorKind(t *testing.T) {
	const secret = "t0123456789abcdef/0 patient-pseudonym-xyz"
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "none"},
		{fmt.Errorf("read %s: %w", secret, context.Canceled), "canceled"},
		{fmt.Errorf("%s: %w", secret, transfer.ErrConflict), "concurrent update"},
		{fmt.Errorf("stat %s: %w", secret, blob.ErrNotFound), "BLOB-002"},
		{fmt.Errorf("%s: %w", secret, queue.ErrUnavailable), "QUEUE-002"},
		{&fs.PathError{Op: "open", Path: "/data/blobs/" + secret, Err: fs.ErrPermission}, "filesystem error open"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New(secret)}, "network error"},
		{sqlStateErr{}, "database error SQLSTATE 23505"},
		{errors.New(secret), "error *errors.errorString"},
	} {
		got := transfer.ErrorKind(c.err)
		if got != c.want {
			t.Errorf("ErrorKind(%v) = %q, want %q", c.err, got, c.want)
		}
		if strings.Contains(got, "patient") || strings.Contains(got, "t0123") {
			t.Errorf("ErrorKind leaks text: %q", got)
		}
	}
}

type sqlStateErr struct{}

func (sqlStateErr) Error() string    { return "duplicate key value (patient)=(secret)" }
func (sqlStateErr) SQLState() string { return "23505" }
