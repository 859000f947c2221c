package auditsqlite_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"phix/audit"
	"phix/audit/auditsqlite"
	"phix/audit/audittest"
)

// TestCrashChild is the appender process of TestCrash.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(audittest.CrashEnv)
	if path == "" {
		t.Skip("only runs as the child of TestCrash")
	}
	b, err := auditsqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	audittest.CrashChild(t, b)
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	path := filepath.Join(t.TempDir(), "audit.db")
	audittest.Crash(t, 8, func(int) *exec.Cmd {
		c := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		c.Env = append(os.Environ(), audittest.CrashEnv+"="+path)
		return c
	}, func(t *testing.T) audit.Backend {
		b, err := auditsqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}
