package auditpg_test

import (
	"testing"

	"phix/audit/audittest"
	"phix/internal/testenv"
)

// TestCrashChild is the appender process of TestCrash.
func TestCrashChild(t *testing.T) { audittest.RunCrashChild(t, open) }

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	audittest.RunCrash(t, testenv.Postgres(t), open)
}
