package audittest

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"phix/audit"
)

// Opener opens a backend at where: a database file path or a DSN.
type Opener func(ctx context.Context, where string) (audit.Backend, error)

// OpenBackend opens where with open, failing tb on error, and closes the
// backend when tb ends.
func OpenBackend(tb testing.TB, where string, open Opener) audit.Backend {
	tb.Helper()
	b, err := open(context.Background(), where)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

// RunCrashChild is the body of a backend's TestCrashChild: it skips unless
// the test binary was started by RunCrash, and otherwise appends until killed.
func RunCrashChild(t *testing.T, open Opener) {
	where := os.Getenv(CrashEnv)
	if where == "" {
		t.Skip("only runs as the child of TestCrash")
	}
	b, err := open(context.Background(), where)
	if err != nil {
		t.Fatal(err)
	}
	CrashChild(t, b)
}

// RunCrash is the body of a backend's TestCrash: it re-runs the test binary's
// TestCrashChild against where eight times, killing it each time (see Crash).
func RunCrash(t *testing.T, where string, open Opener) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	Crash(t, 8, func(int) *exec.Cmd {
		c := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		c.Env = append(os.Environ(), CrashEnv+"="+where)
		return c
	}, func(t *testing.T) audit.Backend { return OpenBackend(t, where, open) })
}
