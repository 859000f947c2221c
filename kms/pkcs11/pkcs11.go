//go:build cgo

package pkcs11

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"phix/kms"
	"phix/suite"
)

// payloadGCM tags a payload wrapped with CKM_AES_GCM (12-byte IV, 128-bit tag).
const payloadGCM = 0x01

// module reference-counts C_Initialize per library, so several backends
// share one and the last Close finalizes it.
type module struct {
	ctx  *p11.Ctx
	refs int
}

var (
	modMu   sync.Mutex
	modules = map[string]*module{}
)

func acquire(path string) (*p11.Ctx, error) {
	modMu.Lock()
	defer modMu.Unlock()
	if m, ok := modules[path]; ok {
		m.refs++
		return m.ctx, nil
	}
	ctx := p11.New(path)
	if ctx == nil {
		return nil, kms.Errorf(kms.CodeBackend, "cannot load PKCS#11 module %s", path)
	}
	if err := ctx.Initialize(); err != nil && !isRV(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, kms.Wrapf(kms.CodeBackend, err, "initialize PKCS#11 module")
	}
	modules[path] = &module{ctx: ctx, refs: 1}
	return ctx, nil
}

func release(path string) {
	modMu.Lock()
	defer modMu.Unlock()
	m, ok := modules[path]
	if !ok {
		return
	}
	if m.refs--; m.refs == 0 {
		_ = m.ctx.Finalize()
		m.ctx.Destroy()
		delete(modules, path)
	}
}

func isRV(err error, rv uint) bool {
	var e p11.Error
	return errors.As(err, &e) && uint(e) == rv
}

// Backend is a kms.Backend on a PKCS#11 token.
type Backend struct {
	cfg  Config
	ctx  *p11.Ctx
	slot uint
	pool chan p11.SessionHandle
	all  []p11.SessionHandle

	mu   sync.Mutex
	objs map[string]p11.ObjectHandle // hex CKA_ID -> object
}

var _ kms.Backend = (*Backend)(nil)

// Open loads the module, finds the token, opens a session pool and logs in.
func Open(cfg Config) (*Backend, error) {
	if cfg.Module == "" {
		cfg.Module = DefaultModule
	}
	if cfg.Sessions <= 0 {
		cfg.Sessions = 4
	}
	if cfg.PIN == "" {
		return nil, kms.Errorf(kms.CodeBadInput, "PKCS#11 user PIN required (%s)", EnvPIN)
	}
	ctx, err := acquire(cfg.Module)
	if err != nil {
		return nil, err
	}
	b := &Backend{cfg: cfg, ctx: ctx, objs: map[string]p11.ObjectHandle{}}
	if err := b.init(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Backend) init() error {
	slots, err := b.ctx.GetSlotList(true)
	if err != nil {
		return kms.Wrapf(kms.CodeBackend, err, "list PKCS#11 slots")
	}
	found := false
	for _, s := range slots {
		if b.cfg.Slot != nil {
			if s == *b.cfg.Slot {
				b.slot, found = s, true
				break
			}
			continue
		}
		ti, err := b.ctx.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if strings.TrimRight(ti.Label, " \x00") == b.cfg.TokenLabel {
			b.slot, found = s, true
			break
		}
	}
	if !found {
		return kms.Errorf(kms.CodeNotFound, "no PKCS#11 token labelled %q (or slot) found", b.cfg.TokenLabel)
	}
	mechs, err := b.ctx.GetMechanismList(b.slot)
	if err != nil {
		return kms.Wrapf(kms.CodeBackend, err, "list token mechanisms")
	}
	have := map[uint]bool{}
	for _, m := range mechs {
		have[m.Mechanism] = true
	}
	if !have[p11.CKM_AES_GCM] || !have[p11.CKM_AES_KEY_GEN] {
		return kms.Errorf(kms.CodeUnsupported, "the token lacks CKM_AES_GCM or CKM_AES_KEY_GEN")
	}
	b.pool = make(chan p11.SessionHandle, b.cfg.Sessions)
	for range b.cfg.Sessions {
		sh, err := b.ctx.OpenSession(b.slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
		if err != nil {
			return kms.Wrapf(kms.CodeBackend, err, "open PKCS#11 session")
		}
		b.all = append(b.all, sh)
		b.pool <- sh
	}
	// One login covers every session of the application on this token.
	if err := b.ctx.Login(b.all[0], p11.CKU_USER, b.cfg.PIN); err != nil && !isRV(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
		if isRV(err, p11.CKR_PIN_INCORRECT) || isRV(err, p11.CKR_PIN_LEN_RANGE) {
			return kms.Errorf(kms.CodeWrongMasterKey, "the token refused the PIN")
		}
		return kms.Wrapf(kms.CodeBackend, err, "log in to token")
	}
	return nil
}

// Close closes the sessions and releases the module.
func (b *Backend) Close() {
	for _, sh := range b.all {
		_ = b.ctx.CloseSession(sh)
	}
	b.all = nil
	if b.ctx != nil {
		release(b.cfg.Module)
		b.ctx = nil
	}
}

func (b *Backend) session(ctx context.Context) (p11.SessionHandle, error) {
	select {
	case sh := <-b.pool:
		return sh, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (b *Backend) done(sh p11.SessionHandle) { b.pool <- sh }

// Name implements kms.Backend.
func (b *Backend) Name() string { return Name }

func (b *Backend) checkSuite(ref kms.KEKRef) error {
	switch suite.ID(ref.Suite) {
	case suite.Intl:
		return nil
	case suite.GM:
		if b.cfg.AllowAESWrapForGM {
			return nil
		}
		return kms.Errorf(kms.CodeUnsupported, "the HSM has no SM4: a gm KEK needs an SM4-capable HSM, or AllowAESWrapForGM (docs/kms.md)")
	}
	return kms.Errorf(kms.CodeUnknownSuite, "unknown suite %q", ref.Suite)
}

const handlePrefix = "pkcs11:id:"

func parseHandle(h []byte) ([]byte, error) {
	s, ok := strings.CutPrefix(string(h), handlePrefix)
	if !ok {
		return nil, kms.Errorf(kms.CodeBackend, "not a PKCS#11 key handle")
	}
	id, err := hex.DecodeString(s)
	if err != nil || len(id) != 16 {
		return nil, kms.Errorf(kms.CodeBackend, "malformed PKCS#11 key handle")
	}
	return id, nil
}

// NewKEK implements kms.Backend: an AES-256 key generated in the token,
// sensitive, not extractable, usable only to encrypt and decrypt.
func (b *Backend) NewKEK(ctx context.Context, ref kms.KEKRef) ([]byte, error) {
	if err := b.checkSuite(ref); err != nil {
		return nil, err
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	sh, err := b.session(ctx)
	if err != nil {
		return nil, err
	}
	defer b.done(sh)
	tmpl := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
		p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_ENCRYPT, true),
		p11.NewAttribute(p11.CKA_DECRYPT, true),
		p11.NewAttribute(p11.CKA_WRAP, false),
		p11.NewAttribute(p11.CKA_UNWRAP, false),
		p11.NewAttribute(p11.CKA_SIGN, false),
		p11.NewAttribute(p11.CKA_VERIFY, false),
		p11.NewAttribute(p11.CKA_DERIVE, false),
		p11.NewAttribute(p11.CKA_ID, id),
		p11.NewAttribute(p11.CKA_LABEL, "phix-kek "+ref.KEK+"@"+strconv.Itoa(ref.Version)),
	}
	obj, err := b.ctx.GenerateKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, tmpl)
	if err != nil {
		return nil, kms.Wrapf(kms.CodeBackend, err, "generate KEK %s version %d in the token", ref.KEK, ref.Version)
	}
	b.mu.Lock()
	b.objs[hex.EncodeToString(id)] = obj
	b.mu.Unlock()
	return []byte(handlePrefix + hex.EncodeToString(id)), nil
}

// find returns the objects with CKA_ID id.
func (b *Backend) find(sh p11.SessionHandle, id []byte) ([]p11.ObjectHandle, error) {
	if err := b.ctx.FindObjectsInit(sh, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_ID, id),
	}); err != nil {
		return nil, kms.Wrapf(kms.CodeBackend, err, "find KEK in token")
	}
	objs, _, err := b.ctx.FindObjects(sh, 8)
	if ferr := b.ctx.FindObjectsFinal(sh); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, kms.Wrapf(kms.CodeBackend, err, "find KEK in token")
	}
	return objs, nil
}

func (b *Backend) object(sh p11.SessionHandle, ref kms.KEKRef, handle []byte) (p11.ObjectHandle, error) {
	id, err := parseHandle(handle)
	if err != nil {
		return 0, err
	}
	key := hex.EncodeToString(id)
	b.mu.Lock()
	obj, ok := b.objs[key]
	b.mu.Unlock()
	if ok {
		return obj, nil
	}
	objs, err := b.find(sh, id)
	if err != nil {
		return 0, err
	}
	if len(objs) != 1 {
		return 0, kms.Errorf(kms.CodeDestroyed, "KEK %s version %d is not in the token", ref.KEK, ref.Version)
	}
	b.mu.Lock()
	b.objs[key] = objs[0]
	b.mu.Unlock()
	return objs[0], nil
}

// Wrap implements kms.Backend.
func (b *Backend) Wrap(ctx context.Context, ref kms.KEKRef, handle, key, aad []byte) ([]byte, error) {
	if err := b.checkSuite(ref); err != nil {
		return nil, err
	}
	sh, err := b.session(ctx)
	if err != nil {
		return nil, err
	}
	defer b.done(sh)
	obj, err := b.object(sh, ref, handle)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, 12)
	_, _ = rand.Read(iv)
	params := p11.NewGCMParams(iv, aad, 128)
	defer params.Free()
	if err := b.ctx.EncryptInit(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, obj); err != nil {
		return nil, kms.Wrapf(kms.CodeBackend, err, "wrap under KEK %s version %d", ref.KEK, ref.Version)
	}
	ct, err := b.ctx.Encrypt(sh, key)
	if err != nil {
		return nil, kms.Wrapf(kms.CodeBackend, err, "wrap under KEK %s version %d", ref.KEK, ref.Version)
	}
	out := make([]byte, 0, 1+len(iv)+len(ct))
	out = append(out, payloadGCM)
	out = append(out, iv...)
	return append(out, ct...), nil
}

// Unwrap implements kms.Backend.
func (b *Backend) Unwrap(ctx context.Context, ref kms.KEKRef, handle, payload, aad []byte) ([]byte, error) {
	if err := b.checkSuite(ref); err != nil {
		return nil, err
	}
	if len(payload) < 1+12+16 || payload[0] != payloadGCM {
		return nil, kms.Errorf(kms.CodeUnwrapFailed, "wrapped key is not an HSM AES-GCM payload")
	}
	sh, err := b.session(ctx)
	if err != nil {
		return nil, err
	}
	defer b.done(sh)
	obj, err := b.object(sh, ref, handle)
	if err != nil {
		return nil, err
	}
	params := p11.NewGCMParams(payload[1:13], aad, 128)
	defer params.Free()
	if err := b.ctx.DecryptInit(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, obj); err != nil {
		return nil, kms.Wrapf(kms.CodeBackend, err, "unwrap under KEK %s version %d", ref.KEK, ref.Version)
	}
	pt, err := b.ctx.Decrypt(sh, payload[13:])
	if err != nil {
		return nil, kms.Errorf(kms.CodeUnwrapFailed, "wrapped key does not authenticate under KEK %s version %d", ref.KEK, ref.Version)
	}
	return pt, nil
}

// DestroyKEK implements kms.Backend: C_DestroyObject on the KEK.
func (b *Backend) DestroyKEK(ctx context.Context, ref kms.KEKRef, handle []byte) error {
	id, err := parseHandle(handle)
	if err != nil {
		return err
	}
	sh, err := b.session(ctx)
	if err != nil {
		return err
	}
	defer b.done(sh)
	b.mu.Lock()
	delete(b.objs, hex.EncodeToString(id))
	b.mu.Unlock()
	objs, err := b.find(sh, id)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := b.ctx.DestroyObject(sh, o); err != nil {
			return kms.Wrapf(kms.CodeBackend, err, "destroy KEK %s version %d in the token", ref.KEK, ref.Version)
		}
	}
	return nil
}

// ExportKEK implements kms.Backend: HSM keys never leave the token.
func (b *Backend) ExportKEK(context.Context, kms.KEKRef, []byte) ([]byte, error) {
	return nil, kms.Errorf(kms.CodeNotExportable, "KEKs in the HSM are not extractable; back them up with the HSM vendor's own key-backup procedure")
}

// Exists reports whether the token holds the object behind handle (for
// tests and operators verifying an erasure).
func (b *Backend) Exists(ctx context.Context, handle []byte) (bool, error) {
	id, err := parseHandle(handle)
	if err != nil {
		return false, err
	}
	sh, err := b.session(ctx)
	if err != nil {
		return false, err
	}
	defer b.done(sh)
	objs, err := b.find(sh, id)
	return len(objs) > 0, err
}
