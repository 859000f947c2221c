package auditsqlite_test

import (
	"path/filepath"
	"testing"

	"phix/audit/audittest"
)

// TestCrashChild is the appender process of TestCrash.
func TestCrashChild(t *testing.T) { audittest.RunCrashChild(t, open) }

func TestCrash(t *testing.T) {
	audittest.RunCrash(t, filepath.Join(t.TempDir(), "audit.db"), open)
}
