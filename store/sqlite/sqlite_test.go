package sqlite_test

import (
	"path/filepath"
	"sync"
	"testing"

	"phix/store"
	"phix/store/sqlite"
	"phix/store/storetest"
)

// fileOpener gives every test its own database file, reopened on later calls.
func fileOpener() storetest.Opener {
	var mu sync.Mutex
	paths := map[*testing.T]string{}
	return func(t *testing.T) store.Store {
		mu.Lock()
		p, ok := paths[t]
		if !ok {
			p = filepath.Join(t.TempDir(), "phix.db")
			paths[t] = p
		}
		mu.Unlock()
		s, err := sqlite.Open(p)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func TestContract(t *testing.T) {
	storetest.Run(t, fileOpener())
}
