package fhirserver

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"phix/kms"
	"phix/kms/keyring"
	"phix/kms/sqlstore"
	"phix/phi"
	"phix/suite"
)

// testHospital is the hospital of the tests' shared keyring.
const testHospital = "test-hospital"

var (
	protOnce sync.Once
	protDir  string
	protKMS  *kms.Manager
	protP    *phi.Protector
	protErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if protDir != "" {
		_ = os.RemoveAll(protDir)
	}
	os.Exit(code)
}

// testProtector returns the package's shared Protector over one keyring in
// a temporary directory (every test server seals with it, as phix fhir
// does by default).
func testProtector(t testing.TB) *phi.Protector {
	t.Helper()
	protOnce.Do(func() {
		ctx := context.Background()
		if protDir, protErr = os.MkdirTemp("", "fhirserver-kms-"); protErr != nil {
			return
		}
		raw := make([]byte, keyring.MasterKeySize)
		_, _ = rand.Read(raw)
		master, err := keyring.MasterKey(raw)
		if err != nil {
			protErr = err
			return
		}
		st, err := sqlstore.OpenSQLite(ctx, filepath.Join(protDir, "keyring.db"))
		if err != nil {
			protErr = err
			return
		}
		be, err := keyring.Open(ctx, st, master, keyring.Options{Suite: "intl"})
		if err != nil {
			protErr = err
			return
		}
		if protKMS, err = kms.Open(ctx, kms.Config{Store: st, Backend: be}); err != nil {
			protErr = err
			return
		}
		if _, err := protKMS.InitHospital(ctx, testHospital, "intl"); err != nil {
			protErr = err
			return
		}
		s, _ := suite.Lookup(suite.Intl)
		protP, protErr = phi.New(phi.Config{KMS: protKMS, Hospital: testHospital, Suite: s})
	})
	if protErr != nil {
		t.Fatalf("test protector: %v", protErr)
	}
	return protP
}

// noProtect turns protection off (the plaintext baseline).
func noProtect(c *Config) { c.Protector = nil }

// wantCode fails unless the answer's OperationOutcome carries code.
func (r *resp) wantCode(t testing.TB, code string) *resp {
	t.Helper()
	if got := r.errCode(); got != code {
		t.Fatalf("error code %q, want %q; body %s", got, code, r.body)
	}
	return r
}

// raceSubset keeps a third of the Synthea bundles (the first by name) under
// -race, where sealing every resource of all of them takes minutes; the full
// set runs without -race.
func raceSubset(bundles map[string][]byte) map[string][]byte {
	if !raceEnabled {
		return bundles
	}
	names := make([]string, 0, len(bundles))
	for n := range bundles {
		names = append(names, n)
	}
	sort.Strings(names)
	out := map[string][]byte{}
	for _, n := range names[:max(1, len(names)/3)] {
		out[n] = bundles[n]
	}
	return out
}
