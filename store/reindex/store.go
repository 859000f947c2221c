package reindex

import (
	"context"
	"fmt"
	"slices"
	"time"

	"phix/fhir"
	"phix/fhir/search"
	"phix/store"
)

// Store returns the store with the Manager's write hooks: use it for every
// read and write. Its transactions hold the registration lock shared (see
// Manager.Extract), refuse an invalid SearchParameter with an error
// wrapping store.ErrInvalid and the *search.DefinitionError, and, once
// they commit, apply the SearchParameters they wrote. Close closes the
// Manager and then the underlying store.
func (m *Manager) Store() store.Store { return &hooked{Store: m.st, m: m} }

type hooked struct {
	store.Store
	m *Manager
}

func (h *hooked) Tx(ctx context.Context, fn func(store.Tx) error) error {
	var defs []*store.Record
	h.m.regMu.RLock()
	err := h.Store.Tx(ctx, func(tx store.Tx) error {
		defs = defs[:0] // PostgreSQL may run fn again
		return fn(&hookedTx{Tx: tx, defs: &defs})
	})
	h.m.regMu.RUnlock()
	if err != nil {
		return err
	}
	for _, rec := range defs {
		h.m.apply(ctx, rec)
	}
	return nil
}

func (h *hooked) Close() error {
	h.m.Close()
	return h.Store.Close()
}

type hookedTx struct {
	store.Tx
	defs *[]*store.Record
}

func (t *hookedTx) Put(ctx context.Context, w *store.Write) (*store.Record, error) {
	if w.Type == "SearchParameter" && !w.Deleted {
		res, err := fhir.Parse(w.Body, fhir.ParseOptions{MaxDepth: 1 << 10})
		if err != nil {
			return nil, fmt.Errorf("%w: SearchParameter body does not parse", store.ErrInvalid)
		}
		if _, err := search.ParseDefinition(res.Object); err != nil {
			return nil, fmt.Errorf("%w: %w", store.ErrInvalid, err)
		}
	}
	rec, err := t.Tx.Put(ctx, w)
	if err == nil && w.Type == "SearchParameter" {
		*t.defs = append(*t.defs, rec)
	}
	return rec, err
}

// sameDefinition reports whether two parameters index the same entries.
func sameDefinition(a, b *search.Param) bool {
	return a.Code == b.Code && a.Type == b.Type && a.Expression == b.Expression &&
		slices.Equal(a.Base, b.Base) && slices.Equal(a.Targets, b.Targets)
}

// apply registers, replaces or removes the parameter a committed
// SearchParameter version defines, under the exclusive registration lock
// (no write transaction is between extraction and commit meanwhile).
func (m *Manager) apply(ctx context.Context, rec *store.Record) {
	m.applied(rec)
	var d *search.Definition
	if !rec.Deleted {
		var err error
		if d, err = definitionOf(rec); err != nil {
			m.log.Error("reindex: committed SearchParameter does not parse", "id", rec.ID)
			return
		}
	}
	// A code whose old entries are still being dropped is registered only
	// when the drop is over: it would delete the new entries.
	for {
		if d != nil && d.Active() {
			if err := m.waitDrop(ctx, d.Param.Code); err != nil {
				m.log.Error("reindex: SearchParameter not registered before the request ended; it will be at the next open", "id", rec.ID)
				return
			}
		}
		m.regMu.Lock()
		if d == nil || !d.Active() || !m.dropping(d.Param.Code) {
			break
		}
		m.regMu.Unlock()
	}
	defer m.regMu.Unlock()
	m.mu.Lock()
	oldURL := m.defIDs[rec.ID]
	m.mu.Unlock()
	old, oldFP, oldReady := m.custom.ByURL(oldURL)
	if d == nil || !d.Active() || oldURL != d.Param.URL {
		// Deleted, retired or renamed: the old parameter goes, and so do
		// its entries.
		if old != nil {
			m.custom.Remove(oldURL)
			m.dropLater(old.Base, old.Code)
		}
		m.mu.Lock()
		delete(m.defIDs, rec.ID)
		m.mu.Unlock()
		if d == nil || !d.Active() {
			return
		}
		old = nil
	}
	if m.custom.Conflict(d) {
		m.log.Error("reindex: committed SearchParameter conflicts with another", "id", rec.ID)
		return
	}
	if old != nil && sameDefinition(old, d.Param) {
		// Only descriptive elements changed: the index stays valid.
		_ = m.custom.Register(d, oldFP, oldReady)
		return
	}
	if old != nil {
		// The code or bases changed: drop what the new job will not rewrite.
		var gone []string
		for _, b := range old.Base {
			if old.Code != d.Param.Code || !slices.Contains(d.Param.Base, b) {
				gone = append(gone, b)
			}
		}
		if len(gone) > 0 {
			m.dropLater(gone, old.Code)
		}
	}
	fp := fingerprint(d.Param)
	if err := m.custom.Register(d, fp, false); err != nil {
		m.log.Error("reindex: cannot register SearchParameter", "id", rec.ID)
		return
	}
	m.mu.Lock()
	m.defIDs[rec.ID] = d.Param.URL
	m.mu.Unlock()
	// The write has committed: the job must start even if the request that
	// made it is gone.
	if _, err := m.start(context.WithoutCancel(ctx), d.Param.Base, []ParamRef{{URL: d.Param.URL, Code: d.Param.Code, Fingerprint: fp}}); err != nil {
		// The job is recreated at the next Open (an active parameter
		// without a job gets one).
		m.log.Error("reindex: cannot start job", "id", rec.ID, "err", err)
	}
}

// dropLater removes a retired parameter's entries in the background (a
// persisted job, resumed after a restart).
func (m *Manager) dropLater(types []string, code string) {
	if err := m.drop(context.Background(), types, code); err != nil {
		m.log.Error("reindex: cannot start dropping the entries of a removed parameter", "err", err)
	}
}

func (m *Manager) dropping(code string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.drops[code] > 0
}

// waitDrop waits until no drop of code is running.
func (m *Manager) waitDrop(ctx context.Context, code string) error {
	for m.dropping(code) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
