// Package audittest is the contract test suite every audit.Backend passes:
// appends under concurrency and from several writers, proofs, checkpoints,
// verification and the tamper cases (done with direct SQL), retention, the
// SIEM cursors, and the HTTP and AuditEvent APIs on top.
package audittest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"phix/audit"
	"phix/suite"
)

// Harness gives the suite access to one fresh database of the backend under test.
type Harness struct {
	// Open opens a new handle on the database (a second writer, or a reopen).
	Open func(t *testing.T) audit.Backend
	// Exec runs one raw SQL statement without parameters (for tampering).
	Exec func(t *testing.T, sql string)
	// Bytes renders b as a SQL literal of the backend's binary type.
	Bytes func(b []byte) string
	// Dump returns every byte the backend stored (database files, or every
	// row and column of the audit tables), for the PHI scan.
	Dump func(t *testing.T) []byte
}

// Factory returns a harness on a fresh, empty database.
type Factory func(t *testing.T) Harness

// Run runs the whole contract suite.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"AppendProveVerify", testAppendProveVerify(suite.Intl)},
		{"AppendProveVerifyGM", testAppendProveVerify(suite.GM)},
		{"ConcurrentWritersAndReopen", testWriters},
		{"RefusesBadEvents", testRefuses},
		{"Tamper", testTamper},
		{"Retention", testRetention},
		{"Cursors", testCursors},
		{"HTTP", testHTTP},
		{"AuditEventAPI", testAuditEventAPI},
		{"NoPHI", testNoPHI},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) })
	}
}

var (
	keyOnce sync.Once
	keys    map[suite.ID]suite.SigningKey
	keyErr  error
)

// SigningKey returns a process-wide test checkpoint key of suite id.
func SigningKey(t testing.TB, id suite.ID) suite.SigningKey {
	t.Helper()
	keyOnce.Do(func() {
		keys = map[suite.ID]suite.SigningKey{}
		for _, sid := range suite.IDs() {
			s, err := suite.Lookup(sid)
			if err != nil {
				keyErr = err
				return
			}
			k, err := s.GenerateSigningKey()
			if err != nil {
				keyErr = err
				return
			}
			keys[sid] = k
		}
	})
	if keyErr != nil {
		t.Fatal(keyErr)
	}
	return keys[id]
}

// Pseudonyms returns a test pseudonymizer with a random key.
func Pseudonyms(t testing.TB) *audit.Pseudonymizer {
	t.Helper()
	s, _ := suite.Lookup(suite.Intl)
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	p, err := audit.NewPseudonymizer(s, k)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// AllowAll is an Authorizer for tests.
func AllowAll(*http.Request) error { return nil }

// OpenLog opens a log with test options (small checkpoint interval).
func OpenLog(t testing.TB, b audit.Backend, mod func(*audit.Options)) *audit.Log {
	t.Helper()
	opts := audit.Options{
		Origin:             "test.phix/audit",
		Signer:             SigningKey(t, suite.Intl),
		CheckpointInterval: 50 * time.Millisecond,
		Authorizer:         AllowAll,
		PruneInterval:      -1,
	}
	if mod != nil {
		mod(&opts)
	}
	l, err := audit.Open(context.Background(), b, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// SampleEvent returns a valid event for patient n and action a.
func SampleEvent(p *audit.Pseudonymizer, n int, a audit.Action) audit.Event {
	ev := audit.Event{
		Action:    a,
		Outcome:   audit.OutcomeSuccess,
		RequestID: fmt.Sprintf("req-%d", n),
		DataClass: "clinical",
		Who: audit.Who{
			User: p.User(fmt.Sprintf("user-%d", n%3)),
			Org:  "hospital-a",
			Role: "clinician",
		},
		What: audit.What{
			ResourceType: "Observation",
			ResourceID:   p.Resource("Observation", fmt.Sprintf("obs-%d", n)),
			Patient:      p.Patient(fmt.Sprintf("pat-%d", n%5)),
		},
		Why:      &audit.Why{Purpose: "TREAT", ConsentID: "consent-1"},
		Decision: &audit.Decision{Effect: "permit", Policies: []string{"policy.treat"}},
	}
	if a == audit.ActionSecurityAlert {
		ev.Alert = audit.AlertBreakGlass
	}
	return ev
}

func mustVerify(t *testing.T, b audit.Backend, opts audit.VerifyOptions) *audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), b, opts)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return rep
}

func wantFailure(t *testing.T, err error, kind audit.FailureKind, index int64) {
	t.Helper()
	var f *audit.Failure
	if !errors.As(err, &f) {
		t.Fatalf("verify: got %v, want failure %s at %d", err, kind, index)
	}
	if f.Kind != kind || f.Index != index {
		t.Fatalf("verify: got %s at %d (%s), want %s at %d", f.Kind, f.Index, f.Detail, kind, index)
	}
}
