package auditpg_test

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"phix/audit"
	"phix/audit/auditpg"
	"phix/audit/audittest"
	"phix/internal/testenv"
)

// TestCrashChild is the appender process of TestCrash.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(audittest.CrashEnv)
	if path == "" {
		t.Skip("only runs as the child of TestCrash")
	}
	b, err := auditpg.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	audittest.CrashChild(t, b)
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	path := testenv.Postgres(t)
	audittest.Crash(t, 8, func(int) *exec.Cmd {
		c := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		c.Env = append(os.Environ(), audittest.CrashEnv+"="+path)
		return c
	}, func(t *testing.T) audit.Backend {
		b, err := auditpg.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}
