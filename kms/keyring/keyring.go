// Package keyring is the local kms backend: each KEK version is random key
// material sealed (AEAD of the KEK's suite) under a sealing key derived from
// the master key, and stored as the version's handle in the kms store. The
// master key never touches the store; a check value detects a wrong one.
package keyring

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strconv"
	"sync"

	"golang.org/x/crypto/argon2"

	"phix/kms"
	"phix/suite"
)

// Name is the backend name recorded in blobs.
const Name = "local"

const (
	metaParams = "keyring.params" // JSON params: suite, salt, passphrase KDF cost
	checkText  = "phix-keyring-check-v1"
)

// Argon2Params is the passphrase-stretching cost.
type Argon2Params struct {
	Time    uint32 `json:"time"`
	MemKiB  uint32 `json:"memKiB"`
	Threads uint8  `json:"threads"`
}

// DefaultArgon2 is the RFC 9106 second recommended option (t=3, 64 MiB).
var DefaultArgon2 = Argon2Params{Time: 3, MemKiB: 64 * 1024, Threads: 4}

type params struct {
	Suite  string        `json:"suite"`
	Salt   []byte        `json:"salt"`
	Argon2 *Argon2Params `json:"argon2,omitempty"`
	Check  []byte        `json:"check"`
}

// Options tune Open.
type Options struct {
	// Suite seals the check value of a new keyring (default intl). KEKs are
	// sealed with their own suite.
	Suite string
	// Argon2 is the passphrase cost for a new keyring (default DefaultArgon2).
	Argon2 *Argon2Params
}

// Backend is the local keyring.
type Backend struct {
	root []byte // 32 bytes: the master key or the stretched passphrase
	salt []byte

	mu    sync.Mutex
	cache map[string][]byte // handle digest key -> KEK material
}

var _ kms.Backend = (*Backend)(nil)

// Open opens the keyring in st with master, creating its parameters on
// first use. A master key that did not create the keyring fails with
// kms.ErrWrongMasterKey.
func Open(ctx context.Context, st kms.Store, master Master, opt Options) (*Backend, error) {
	if master.key == nil && master.passphrase == nil {
		return nil, kms.Errorf(kms.CodeBadInput, "no master key")
	}
	// Refuse another backend's keyring before writing anything to it.
	if name, err := st.Meta(ctx, kms.MetaBackend); err == nil && string(name) != Name {
		return nil, kms.Errorf(kms.CodeBackendMismatched, "keyring belongs to backend %q, not %q", name, Name)
	} else if err != nil && !errors.Is(err, kms.ErrNotFound) {
		return nil, err
	}
	raw, err := st.Meta(ctx, metaParams)
	var p params
	switch {
	case errors.Is(err, kms.ErrNotFound):
		p, err = newParams(master, opt)
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(p)
		if err := st.PutMeta(ctx, metaParams, b); err != nil {
			if !errors.Is(err, kms.ErrExists) {
				return nil, err
			}
			// Someone created it concurrently: use theirs.
			if raw, err = st.Meta(ctx, metaParams); err != nil {
				return nil, err
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, kms.Errorf(kms.CodeBackend, "keyring parameters are corrupt")
			}
		}
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(raw, &p); err != nil || len(p.Salt) < 16 {
			return nil, kms.Errorf(kms.CodeBackend, "keyring parameters are corrupt")
		}
	}
	if master.IsPassphrase() != (p.Argon2 != nil) {
		if p.Argon2 != nil {
			return nil, kms.Errorf(kms.CodeWrongMasterKey, "this keyring is sealed by a passphrase, not a master key")
		}
		return nil, kms.Errorf(kms.CodeWrongMasterKey, "this keyring is sealed by a master key, not a passphrase")
	}
	b := &Backend{root: rootKey(master, p), salt: p.Salt, cache: map[string][]byte{}}
	s, err := suite.Lookup(suite.ID(p.Suite))
	if err != nil {
		return nil, kms.Errorf(kms.CodeUnknownSuite, "keyring suite %q unknown", p.Suite)
	}
	if _, err := b.open(s, []byte(checkText), p.Check); err != nil {
		return nil, kms.Errorf(kms.CodeWrongMasterKey, "the master key or passphrase does not open this keyring")
	}
	return b, nil
}

func newParams(master Master, opt Options) (params, error) {
	p := params{Suite: opt.Suite, Salt: make([]byte, 32)}
	if p.Suite == "" {
		p.Suite = string(suite.Intl)
	}
	s, err := suite.Lookup(suite.ID(p.Suite))
	if err != nil {
		return params{}, kms.Errorf(kms.CodeUnknownSuite, "unknown suite %q", p.Suite)
	}
	_, _ = rand.Read(p.Salt)
	if master.IsPassphrase() {
		a := DefaultArgon2
		if opt.Argon2 != nil {
			a = *opt.Argon2
		}
		p.Argon2 = &a
	}
	b := &Backend{root: rootKey(master, p), salt: p.Salt}
	p.Check, err = b.seal(s, []byte(checkText), nil)
	return p, err
}

func rootKey(m Master, p params) []byte {
	if m.passphrase != nil {
		a := p.Argon2
		return argon2.IDKey(m.passphrase, p.Salt, a.Time, a.MemKiB, a.Threads, MasterKeySize)
	}
	return bytes.Clone(m.key)
}

// sealKey derives the sealing key of one purpose (aad) under s.
func (b *Backend) sealKey(s suite.Suite, aad []byte) ([]byte, error) {
	k, err := s.KDF(b.root, b.salt, append([]byte("phix-keyring-seal-v1\x00"), aad...), s.AEADKeySize())
	if err != nil {
		return nil, kms.Errorf(kms.CodeBackend, "derive sealing key")
	}
	return k, nil
}

// seal encrypts pt under a key derived for aad, binding aad.
func (b *Backend) seal(s suite.Suite, aad, pt []byte) ([]byte, error) {
	k, err := b.sealKey(s, aad)
	if err != nil {
		return nil, err
	}
	defer suite.Wipe(k)
	return aeadSeal(s, k, pt, aad)
}

func (b *Backend) open(s suite.Suite, aad, ct []byte) ([]byte, error) {
	k, err := b.sealKey(s, aad)
	if err != nil {
		return nil, err
	}
	defer suite.Wipe(k)
	return aeadOpen(s, k, ct, aad)
}

func aeadSeal(s suite.Suite, key, pt, aad []byte) ([]byte, error) {
	a, err := s.NewAEAD(key)
	if err != nil {
		return nil, kms.Errorf(kms.CodeBackend, "KEK does not fit suite %s", s.ID())
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(pt)+a.Overhead())
	_, _ = rand.Read(nonce)
	return a.Seal(nonce, nonce, pt, aad), nil
}

func aeadOpen(s suite.Suite, key, ct, aad []byte) ([]byte, error) {
	a, err := s.NewAEAD(key)
	if err != nil {
		return nil, kms.Errorf(kms.CodeBackend, "KEK does not fit suite %s", s.ID())
	}
	if len(ct) < a.NonceSize()+a.Overhead() {
		return nil, kms.Errorf(kms.CodeUnwrapFailed, "wrapped key too short")
	}
	pt, err := a.Open(nil, ct[:a.NonceSize()], ct[a.NonceSize():], aad)
	if err != nil {
		return nil, kms.Errorf(kms.CodeUnwrapFailed, "wrapped key does not authenticate")
	}
	return pt, nil
}

func refAAD(ref kms.KEKRef) []byte {
	return []byte("kek\x00" + ref.KEK + "\x00" + strconv.Itoa(ref.Version) + "\x00" + ref.Suite)
}

// Name implements kms.Backend.
func (b *Backend) Name() string { return Name }

// NewKEK implements kms.Backend: random material, sealed under the master key.
func (b *Backend) NewKEK(_ context.Context, ref kms.KEKRef) ([]byte, error) {
	s, err := suite.Lookup(suite.ID(ref.Suite))
	if err != nil {
		return nil, kms.Errorf(kms.CodeUnknownSuite, "unknown suite %q", ref.Suite)
	}
	material := make([]byte, s.AEADKeySize())
	_, _ = rand.Read(material)
	defer suite.Wipe(material)
	return b.seal(s, refAAD(ref), material)
}

// material opens a handle, caching the result.
func (b *Backend) material(ref kms.KEKRef, handle []byte) (suite.Suite, []byte, error) {
	s, err := suite.Lookup(suite.ID(ref.Suite))
	if err != nil {
		return nil, nil, kms.Errorf(kms.CodeUnknownSuite, "unknown suite %q", ref.Suite)
	}
	ck := string(refAAD(ref)) + "\x00" + string(handle)
	b.mu.Lock()
	m, ok := b.cache[ck]
	b.mu.Unlock()
	if ok {
		return s, m, nil
	}
	m, err = b.open(s, refAAD(ref), handle)
	if err != nil {
		return nil, nil, kms.Errorf(kms.CodeWrongMasterKey, "KEK %s version %d does not open with this master key", ref.KEK, ref.Version)
	}
	b.mu.Lock()
	b.cache[ck] = m
	b.mu.Unlock()
	return s, m, nil
}

// Wrap implements kms.Backend.
func (b *Backend) Wrap(_ context.Context, ref kms.KEKRef, handle, key, aad []byte) ([]byte, error) {
	s, m, err := b.material(ref, handle)
	if err != nil {
		return nil, err
	}
	return aeadSeal(s, m, key, aad)
}

// Unwrap implements kms.Backend.
func (b *Backend) Unwrap(_ context.Context, ref kms.KEKRef, handle, payload, aad []byte) ([]byte, error) {
	s, m, err := b.material(ref, handle)
	if err != nil {
		return nil, err
	}
	return aeadOpen(s, m, payload, aad)
}

// DestroyKEK implements kms.Backend. The sealed material lives only in the
// handle, which the Manager erases from the store; here the cached copy goes.
func (b *Backend) DestroyKEK(_ context.Context, ref kms.KEKRef, handle []byte) error {
	ck := string(refAAD(ref)) + "\x00" + string(handle)
	b.mu.Lock()
	defer b.mu.Unlock()
	// Not wiped: a concurrent Wrap may still hold the slice.
	delete(b.cache, ck)
	return nil
}

// ExportKEK implements kms.Backend.
func (b *Backend) ExportKEK(_ context.Context, ref kms.KEKRef, handle []byte) ([]byte, error) {
	_, m, err := b.material(ref, handle)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(m), nil
}

// ImportKEK implements kms.Importer: escrowed material, sealed under this
// keyring's master key.
func (b *Backend) ImportKEK(_ context.Context, ref kms.KEKRef, material []byte) ([]byte, error) {
	s, err := suite.Lookup(suite.ID(ref.Suite))
	if err != nil {
		return nil, kms.Errorf(kms.CodeUnknownSuite, "unknown suite %q", ref.Suite)
	}
	if len(material) != s.AEADKeySize() {
		return nil, kms.Errorf(kms.CodeBadInput, "imported KEK material has the wrong size for suite %s", ref.Suite)
	}
	return b.seal(s, refAAD(ref), material)
}
