package fhirserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"sync"

	"phix/audit"
)

// auditNote is what a handler tells the audit event of its request beyond
// the route and status: for a batch or transaction Bundle, its type, entry
// count and the resources it wrote (issue #7: one event per Bundle).
type auditNote struct {
	mu      sync.Mutex
	bundle  string // "batch" or "transaction"; "" for other requests
	entries int
	written []provTarget
}

const auditNoteKey ctxKey = 2

// withAuditNote gives a request's context a note for its audit event.
func withAuditNote(ctx context.Context) context.Context {
	return context.WithValue(ctx, auditNoteKey, &auditNote{})
}

func auditNoteFrom(ctx context.Context) *auditNote {
	n, _ := ctx.Value(auditNoteKey).(*auditNote)
	return n
}

// noteBundle records the Bundle type and entry count of the request.
func noteBundle(ctx context.Context, typ string, entries int) {
	if n := auditNoteFrom(ctx); n != nil {
		n.mu.Lock()
		n.bundle, n.entries = typ, entries
		n.mu.Unlock()
	}
}

// recordsWrites reports whether the note wants the versions written.
func (n *auditNote) recordsWrites() bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.bundle != ""
}

// noteWrites adds the versions a committed store transaction wrote.
func noteWrites(ctx context.Context, ts []provTarget) {
	if n := auditNoteFrom(ctx); n != nil && len(ts) > 0 {
		n.mu.Lock()
		n.written = append(n.written, ts...)
		n.mu.Unlock()
	}
}

// bundleEvent fills ev for a batch or transaction: action, entry count, the
// hash of the pseudonymous targets and, when the Bundle wrote exactly one
// Patient, that patient. ok is false for other requests.
func (a *auditor) bundleEvent(n *auditNote, ev *audit.Event) bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch n.bundle {
	case "transaction":
		ev.Action = audit.ActionTransaction
	case "batch":
		ev.Action = audit.ActionBatch
	default:
		return false
	}
	ev.What.ResourceType = "Bundle"
	ev.What.Entries = n.entries
	if len(n.written) == 0 {
		return true
	}
	seen := map[string]bool{}
	ps := make([]string, 0, len(n.written))
	var patients []string
	for _, t := range n.written {
		key := t.typ + "/" + t.id
		if seen[key] {
			continue
		}
		seen[key] = true
		p := a.ps.Resource(t.typ, t.id)
		ps = append(ps, p)
		if t.typ == "Patient" {
			patients = append(patients, p)
		}
	}
	sort.Strings(ps)
	sum := sha256.Sum256([]byte(strings.Join(ps, "\n")))
	ev.What.TargetsHash = hex.EncodeToString(sum[:])
	if len(patients) == 1 {
		ev.What.Patient = patients[0]
	}
	return true
}
