package kms

import (
	"context"
	"crypto/rand"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"phix/suite"
)

// Config assembles a Manager.
type Config struct {
	Store   Store
	Backend Backend
	// Auditor receives every key operation; nil means StoreAuditor{Store}.
	Auditor Auditor
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Manager is the kms: it owns the key hierarchy of every hospital in its
// keyring. It is safe for concurrent use.
type Manager struct {
	st  Store
	be  Backend
	aud Auditor
	now func() time.Time

	mu      sync.Mutex
	secrets map[string]cachedSecret // "<kek>@<version>" -> unwrapped per-version secret
	keks    map[string]cachedKEK    // KEK records for the derivation hot path

	wraps, unwraps atomic.Int64
}

// MetaBackend is the Store setting recording which backend a keyring
// belongs to: blobs and handles of one backend mean nothing to another.
const MetaBackend = "kms.backend"

// Open returns a Manager over cfg's store and backend. The first Open of a
// keyring records the backend; a later Open with another backend fails with
// ErrBackendMismatched.
func Open(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Store == nil || cfg.Backend == nil {
		return nil, Errorf(CodeBadInput, "kms.Open needs a store and a backend")
	}
	m := &Manager{st: cfg.Store, be: cfg.Backend, aud: cfg.Auditor, now: cfg.Now, secrets: map[string]cachedSecret{}, keks: map[string]cachedKEK{}}
	if m.aud == nil {
		m.aud = StoreAuditor{Store: cfg.Store}
	}
	if m.now == nil {
		m.now = time.Now
	}
	name, err := m.st.Meta(ctx, MetaBackend)
	switch {
	case errors.Is(err, ErrNotFound):
		if err := m.st.PutMeta(ctx, MetaBackend, []byte(m.be.Name())); err != nil && !errors.Is(err, ErrExists) {
			return nil, err
		}
	case err != nil:
		return nil, err
	case string(name) != m.be.Name():
		return nil, Errorf(CodeBackendMismatched, "keyring belongs to backend %q, not %q", name, m.be.Name())
	}
	return m, nil
}

// Store returns the manager's store.
func (m *Manager) Store() Store { return m.st }

// Stats counts the wraps and unwraps this Manager performed (they are too
// frequent for the operation log).
type Stats struct{ Wraps, Unwraps int64 }

// Stats returns the wrap and unwrap counters.
func (m *Manager) Stats() Stats { return Stats{Wraps: m.wraps.Load(), Unwraps: m.unwraps.Load()} }

type actorKey struct{}

// WithActor names who performs the operations made with ctx (a user, a
// service); it is recorded in the operation log.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

func actorOf(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "system"
}

// record sends op to the auditor. The operation's own error, if any, wins;
// otherwise an auditor failure is returned so nothing goes unrecorded.
func (m *Manager) record(ctx context.Context, op Op, opErr error) error {
	op.Time = m.now().UTC()
	op.Actor = actorOf(ctx)
	op.Outcome = "ok"
	if opErr != nil {
		op.Outcome = string(CodeOf(opErr))
		if op.Outcome == "" {
			op.Outcome = "error"
		}
	}
	// The record must survive a cancelled request context.
	if err := m.aud.Record(context.WithoutCancel(ctx), op); err != nil && opErr == nil {
		return Wrapf(CodeBackend, err, "record key operation")
	}
	return opErr
}

func lookupSuite(id string) (suite.Suite, error) {
	s, err := suite.Lookup(suite.ID(id))
	if err != nil {
		return nil, Errorf(CodeUnknownSuite, "unknown suite %q", truncate(id))
	}
	return s, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

func versionKey(kek string, v int) string { return kek + "@" + strconv.Itoa(v) }

// InitHospital creates the KEKs of every purpose for a hospital under suite
// suiteID, each at version 1. KEKs that already exist are kept; it returns
// the ids it created.
func (m *Manager) InitHospital(ctx context.Context, hospital, suiteID string) ([]string, error) {
	if err := checkHospital(hospital); err != nil {
		return nil, err
	}
	if _, err := lookupSuite(suiteID); err != nil {
		return nil, err
	}
	var created []string
	for _, p := range Purposes() {
		id := KEKID(hospital, p)
		k, err := m.st.KEK(ctx, id)
		if err == nil {
			if k.Suite != suiteID {
				return created, Errorf(CodeExists, "KEK %s exists with suite %s", id, k.Suite)
			}
			continue
		}
		if !errors.Is(err, ErrNotFound) {
			return created, err
		}
		k = KEK{ID: id, Hospital: hospital, Purpose: p, Suite: suiteID, Backend: m.be.Name(),
			Current: 1, MinDecryption: 1, Created: m.now().UTC()}
		v, err := m.newVersion(ctx, k, 1)
		if err == nil {
			err = m.st.CreateKEK(ctx, k, v)
			if err != nil {
				m.discard(ctx, k, v)
			}
		}
		if err := m.record(ctx, Op{Action: "create", Key: id, Version: 1}, err); err != nil {
			return created, err
		}
		created = append(created, id)
	}
	return created, nil
}

// newVersion makes the material of version n of k: the backend KEK and, for
// the purposes other than data, the version's secret wrapped under it.
func (m *Manager) newVersion(ctx context.Context, k KEK, n int) (KEKVersion, error) {
	s, err := lookupSuite(k.Suite)
	if err != nil {
		return KEKVersion{}, err
	}
	ref := KEKRef{KEK: k.ID, Version: n, Suite: k.Suite}
	handle, err := m.be.NewKEK(ctx, ref)
	if err != nil {
		return KEKVersion{}, err
	}
	v := KEKVersion{KEK: k.ID, Version: n, Handle: handle, Created: m.now().UTC()}
	var secret []byte
	switch k.Purpose {
	case PurposeData:
		return v, nil
	case PurposeHMAC, PurposeBlindIndex:
		// 48 bytes: the HMAC key length of seed 002 (384 bits), also ample
		// for the gm suite's HMAC-SM3.
		secret = make([]byte, derivedKeySize)
		_, _ = rand.Read(secret)
	case PurposeSigning:
		sk, err := s.GenerateSigningKey()
		if err != nil {
			return KEKVersion{}, Wrapf(CodeBackend, err, "generate signing key for %s", k.ID)
		}
		secret, v.Public = sk.Bytes(), sk.Public().Bytes()
	case PurposeRecipient:
		rk, err := s.GenerateRecipientKey()
		if err != nil {
			return KEKVersion{}, Wrapf(CodeBackend, err, "generate recipient key for %s", k.ID)
		}
		secret, v.Public = rk.Bytes(), rk.Public().Bytes()
	}
	defer suite.Wipe(secret)
	blob, err := m.wrapWith(ctx, k, v, secretKeyID(k.ID, n), secret)
	if err != nil {
		_ = m.be.DestroyKEK(ctx, ref, handle)
		return KEKVersion{}, err
	}
	v.Secret = blob
	return v, nil
}

// discard destroys backend material whose version never reached the store.
func (m *Manager) discard(ctx context.Context, k KEK, v KEKVersion) {
	_ = m.be.DestroyKEK(context.WithoutCancel(ctx), KEKRef{KEK: k.ID, Version: v.Version, Suite: k.Suite}, v.Handle)
}

func secretKeyID(kek string, v int) string { return "secret:" + versionKey(kek, v) }

// wrapWith wraps key under version v of k, labelled keyID.
func (m *Manager) wrapWith(ctx context.Context, k KEK, v KEKVersion, keyID string, key []byte) ([]byte, error) {
	if !v.Destroyed.IsZero() || len(v.Handle) == 0 {
		return nil, Errorf(CodeDestroyed, "KEK %s version %d is destroyed", k.ID, v.Version)
	}
	b := &Blob{Suite: k.Suite, Backend: m.be.Name(), KEK: k.ID, KEKVersion: v.Version, KeyID: keyID}
	hdr, err := b.Header()
	if err != nil {
		return nil, err
	}
	b.Payload, err = m.be.Wrap(ctx, KEKRef{KEK: k.ID, Version: v.Version, Suite: k.Suite}, v.Handle, key, hdr)
	if err != nil {
		return nil, err
	}
	m.wraps.Add(1)
	return b.Marshal()
}

// unwrapBlob checks everything a blob claims and unwraps it. keyID, when
// not empty, must be the blob's label, so a blob cannot stand in for
// another key.
func (m *Manager) unwrapBlob(ctx context.Context, raw []byte, keyID string) ([]byte, *Blob, error) {
	b, err := ParseBlob(raw)
	if err != nil {
		return nil, nil, err
	}
	if _, err := lookupSuite(b.Suite); err != nil {
		return nil, nil, err
	}
	if b.Backend != m.be.Name() {
		return nil, nil, Errorf(CodeBackendMismatched, "wrapped key belongs to backend %q", truncate(b.Backend))
	}
	if keyID != "" && b.KeyID != keyID {
		return nil, nil, Errorf(CodeUnwrapFailed, "wrapped key is labelled for another key")
	}
	k, v, err := m.st.KEKAndVersion(ctx, b.KEK, b.KEKVersion)
	switch {
	case errors.Is(err, ErrNotFound) && k.ID == "":
		return nil, nil, Errorf(CodeNotFound, "no KEK %q", truncate(b.KEK))
	case errors.Is(err, ErrNotFound):
		return nil, nil, Errorf(CodeNotFound, "KEK %s has no version %d", k.ID, b.KEKVersion)
	case err != nil:
		return nil, nil, err
	}
	if k.Suite != b.Suite {
		return nil, nil, Errorf(CodeUnwrapFailed, "wrapped key names suite %s but KEK %s is %s", truncate(b.Suite), k.ID, k.Suite)
	}
	if b.KEKVersion < k.MinDecryption {
		return nil, nil, Errorf(CodeRetiredVersion, "KEK %s version %d is retired (min_decryption_version %d)", k.ID, b.KEKVersion, k.MinDecryption)
	}
	if !v.Destroyed.IsZero() || len(v.Handle) == 0 {
		return nil, nil, Errorf(CodeDestroyed, "KEK %s version %d is destroyed", k.ID, v.Version)
	}
	hdr, err := b.Header()
	if err != nil {
		return nil, nil, Errorf(CodeMalformedBlob, "wrapped key: bad header")
	}
	key, err := m.be.Unwrap(ctx, KEKRef{KEK: k.ID, Version: v.Version, Suite: k.Suite}, v.Handle, b.Payload, hdr)
	if err != nil {
		return nil, nil, err
	}
	m.unwraps.Add(1)
	return key, b, nil
}

// currentVersion returns the KEK of hospital and purpose and its current version.
func (m *Manager) currentVersion(ctx context.Context, hospital string, p Purpose) (KEK, KEKVersion, error) {
	if err := checkHospital(hospital); err != nil {
		return KEK{}, KEKVersion{}, err
	}
	k, v, err := m.st.KEKAndVersion(ctx, KEKID(hospital, p), 0)
	if err != nil {
		if errors.Is(err, ErrNotFound) && k.ID == "" {
			return KEK{}, KEKVersion{}, Errorf(CodeNotFound, "no %s KEK for hospital %s (run phix keys init)", p, hospital)
		}
		return KEK{}, KEKVersion{}, err
	}
	return k, v, nil
}

// secretTTL bounds how long an unwrapped secret is reused without checking
// the store, so a version destroyed or retired by another process stops
// being used here within this time.
const secretTTL = 30 * time.Second

type cachedSecret struct {
	secret  []byte
	fetched time.Time
}

type cachedKEK struct {
	kek     KEK
	fetched time.Time
}

// cachedKEKRecord reads a KEK through a cache of at most secretTTL; this
// process's own rotations, retirements and destructions invalidate it at once.
func (m *Manager) cachedKEKRecord(ctx context.Context, id string) (KEK, error) {
	m.mu.Lock()
	c, ok := m.keks[id]
	m.mu.Unlock()
	if ok && time.Since(c.fetched) < secretTTL {
		return c.kek, nil
	}
	k, err := m.st.KEK(ctx, id)
	if err != nil {
		return KEK{}, err
	}
	m.mu.Lock()
	m.keks[id] = cachedKEK{kek: k, fetched: time.Now()}
	m.mu.Unlock()
	return k, nil
}

func (m *Manager) forgetKEK(id string) {
	m.mu.Lock()
	delete(m.keks, id)
	m.mu.Unlock()
}

// versionSecret returns the unwrapped secret of version n (0: current) of a
// hospital's purpose KEK, caching it in memory.
func (m *Manager) versionSecret(ctx context.Context, hospital string, p Purpose, n int) ([]byte, KEK, int, error) {
	if err := checkHospital(hospital); err != nil {
		return nil, KEK{}, 0, err
	}
	k, err := m.cachedKEKRecord(ctx, KEKID(hospital, p))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, KEK{}, 0, Errorf(CodeNotFound, "no %s KEK for hospital %s (run phix keys init)", p, hospital)
		}
		return nil, KEK{}, 0, err
	}
	if n == 0 {
		n = k.Current
	}
	if n < k.MinDecryption {
		return nil, k, n, Errorf(CodeRetiredVersion, "KEK %s version %d is retired (min_decryption_version %d)", k.ID, n, k.MinDecryption)
	}
	ck := versionKey(k.ID, n)
	m.mu.Lock()
	c, ok := m.secrets[ck]
	m.mu.Unlock()
	if ok && time.Since(c.fetched) < secretTTL {
		return c.secret, k, n, nil
	}
	v, err := m.st.KEKVersion(ctx, k.ID, n)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, k, n, Errorf(CodeNotFound, "KEK %s has no version %d", k.ID, n)
		}
		return nil, k, n, err
	}
	if !v.Destroyed.IsZero() || len(v.Secret) == 0 {
		return nil, k, n, Errorf(CodeDestroyed, "KEK %s version %d is destroyed", k.ID, n)
	}
	s, _, err := m.unwrapBlob(ctx, v.Secret, secretKeyID(k.ID, n))
	if err != nil {
		return nil, k, n, err
	}
	m.mu.Lock()
	m.secrets[ck] = cachedSecret{secret: s, fetched: time.Now()}
	m.mu.Unlock()
	return s, k, n, nil
}

func (m *Manager) forget(kek string, v int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Not wiped: a concurrent caller may still hold the slice; dropping the
	// reference is what stops further use.
	delete(m.secrets, versionKey(kek, v))
}
