package kms

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"phix/suite"
)

// Operations that need dual control.
const (
	OpDestroyKEK      = "destroy-kek"
	OpExportKEK       = "export-kek"
	OpEnrollCustodian = "enroll-custodian"
)

// MaxApprovalTTL bounds how far in the future an approval may expire.
const MaxApprovalTTL = 24 * time.Hour

// Approval is a custodian's signed consent to one operation on one key
// version. It is single use (its nonce is spent) and expires.
type Approval struct {
	Custodian string    `json:"custodian"`
	Operation string    `json:"operation"`
	Key       string    `json:"key"`
	Version   int       `json:"version"`
	Target    string    `json:"target,omitempty"` // export recipient key id; enrolled custodian's key id
	Nonce     string    `json:"nonce"`
	Expires   time.Time `json:"expires"`
	Signature []byte    `json:"signature"`
}

// Statement returns the bytes a custodian signs.
func (a *Approval) Statement() []byte {
	var b bytes.Buffer
	b.WriteString("phix-kms-approval-v1\n")
	for _, f := range []string{a.Custodian, a.Operation, a.Key, strconv.Itoa(a.Version), a.Target, a.Nonce,
		strconv.FormatInt(a.Expires.Unix(), 10)} {
		b.WriteString(strconv.Itoa(len(f)))
		b.WriteByte(':')
		b.WriteString(f)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// SignApproval makes an approval by custodian (whose signing key is sk) for
// operation on key version, valid for ttl from now.
func SignApproval(sk suite.SigningKey, custodian, operation, key string, version int, target string, now time.Time, ttl time.Duration) (Approval, error) {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	a := Approval{Custodian: custodian, Operation: operation, Key: key, Version: version, Target: target,
		Nonce: hex.EncodeToString(nonce[:]), Expires: now.Add(ttl).UTC().Truncate(time.Second)}
	sig, err := sk.Sign(a.Statement())
	if err != nil {
		return Approval{}, Wrapf(CodeBackend, err, "sign approval")
	}
	a.Signature = sig
	return a, nil
}

// EnrollCustodian enrols a key custodian with a suite signing public key.
// The first two custodians enrol freely (bootstrap); after that, enrolling
// needs approvals of two enrolled custodians for OpEnrollCustodian on key id
// with target the new public key's KeyID.
func (m *Manager) EnrollCustodian(ctx context.Context, id, suiteID string, public []byte, approvals []Approval) error {
	if !nameRE.MatchString(id) {
		return Errorf(CodeBadInput, "custodian id must match %s", nameRE)
	}
	s, err := lookupSuite(suiteID)
	if err != nil {
		return err
	}
	vk, err := s.ParseVerifyKey(public)
	if err != nil {
		return Errorf(CodeBadInput, "custodian public key does not parse for suite %s", suiteID)
	}
	existing, err := m.st.Custodians(ctx)
	if err != nil {
		return err
	}
	var approvers []string
	if len(existing) >= 2 {
		approvers, err = m.checkApprovals(ctx, OpEnrollCustodian, id, 0, vk.KeyID(), approvals)
	}
	if err == nil {
		err = m.st.PutCustodian(ctx, Custodian{ID: id, Suite: suiteID, Public: public, Created: m.now().UTC()})
	}
	return m.record(ctx, Op{Action: "enroll-custodian", Key: id, Approvers: approvers, Detail: "key " + vk.KeyID()}, err)
}

// checkApprovals verifies that approvals are all valid signatures of at
// least two different enrolled custodians for exactly this operation, then
// spends their nonces. Nothing is spent unless all are valid.
func (m *Manager) checkApprovals(ctx context.Context, op, key string, version int, target string, approvals []Approval) ([]string, error) {
	valid, err := m.validApprovals(ctx, op, key, version, target, approvals)
	if err != nil {
		return nil, err
	}
	return m.spendApprovals(ctx, op, key, version, valid)
}

// CheckApprovals reports whether approvals would authorise the operation
// (signatures, custodians, expiry, two different custodians) without
// spending them: a caller checks them before asking for a second factor,
// so that a refused set does not use up the operator's code.
func (m *Manager) CheckApprovals(ctx context.Context, op, key string, version int, target string, approvals []Approval) error {
	_, err := m.validApprovals(ctx, op, key, version, target, approvals)
	return err
}

func (m *Manager) validApprovals(ctx context.Context, op, key string, version int, target string, approvals []Approval) ([]Approval, error) {
	// Strict: one bad approval in the set fails the whole operation, so a
	// forged or stale approval is always noticed, never silently skipped.
	now := m.now()
	seen := map[string]bool{}
	var valid []Approval
	for i := range approvals {
		a := &approvals[i]
		if err := m.checkApproval(ctx, a, op, key, version, target, now); err != nil {
			return nil, err
		}
		if seen[a.Custodian] {
			return nil, Errorf(CodeApprovalInvalid, "custodian %s approved twice: two different custodians are required", a.Custodian)
		}
		seen[a.Custodian] = true
		valid = append(valid, *a)
	}
	if len(valid) < 2 {
		return nil, Errorf(CodeApprovalRequired, "%s of %s needs approvals by two different custodians, got %d", op, key, len(valid))
	}
	return valid, nil
}

func (m *Manager) spendApprovals(ctx context.Context, op, key string, version int, valid []Approval) ([]string, error) {
	var who []string
	nonces := make([]Nonce, 0, len(valid))
	for _, a := range valid {
		who = append(who, a.Custodian)
		nonces = append(nonces, Nonce{Value: a.Nonce, Expires: a.Expires})
	}
	if err := m.st.UseNonces(ctx, nonces); err != nil {
		if errors.Is(err, ErrExists) {
			err = Errorf(CodeApprovalInvalid, "an approval of %s was already used", op)
		}
		return nil, m.record(ctx, Op{Action: "approve", Key: key, Version: version, Approvers: who, Detail: op}, err)
	}
	for _, c := range who {
		if err := m.record(ctx, Op{Action: "approve", Key: key, Version: version, Approvers: []string{c}, Detail: op}, nil); err != nil {
			return nil, err
		}
	}
	return who, nil
}

func (m *Manager) checkApproval(ctx context.Context, a *Approval, op, key string, version int, target string, now time.Time) error {
	if a.Operation != op || a.Key != key || a.Version != version || a.Target != target {
		return Errorf(CodeApprovalInvalid, "approval by %s is for another operation", truncate(a.Custodian))
	}
	if !now.Before(a.Expires) {
		return Errorf(CodeApprovalInvalid, "approval by %s expired", truncate(a.Custodian))
	}
	if a.Expires.After(now.Add(MaxApprovalTTL + time.Minute)) {
		return Errorf(CodeApprovalInvalid, "approval by %s is valid for longer than %s", truncate(a.Custodian), MaxApprovalTTL)
	}
	if len(a.Nonce) < 32 {
		return Errorf(CodeApprovalInvalid, "approval by %s has no proper nonce", truncate(a.Custodian))
	}
	c, err := m.st.Custodian(ctx, a.Custodian)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Errorf(CodeApprovalInvalid, "approval by unknown custodian %q", truncate(a.Custodian))
		}
		return err
	}
	s, err := lookupSuite(c.Suite)
	if err != nil {
		return err
	}
	vk, err := s.ParseVerifyKey(c.Public)
	if err != nil {
		return Errorf(CodeApprovalInvalid, "custodian %s key does not parse", c.ID)
	}
	if !vk.Verify(a.Statement(), a.Signature) {
		return Errorf(CodeApprovalInvalid, "approval by %s has a bad signature", c.ID)
	}
	return nil
}

// DestroyKEKVersion destroys one version of a KEK under dual control: the
// backend material (the HSM object) and the stored handle and secret are
// erased, so every key wrapped under it, and all data under those keys,
// becomes undecryptable for good.
func (m *Manager) DestroyKEKVersion(ctx context.Context, kekID string, version int, approvals []Approval) error {
	k, err := m.st.KEK(ctx, kekID)
	if err != nil {
		return err
	}
	v, err := m.st.KEKVersion(ctx, kekID, version)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Errorf(CodeNotFound, "KEK %s has no version %d", kekID, version)
		}
		return err
	}
	if !v.Destroyed.IsZero() {
		return Errorf(CodeDestroyed, "KEK %s version %d is already destroyed", kekID, version)
	}
	approvers, err := m.checkApprovals(ctx, OpDestroyKEK, kekID, version, "", approvals)
	if err != nil {
		return m.record(ctx, Op{Action: "destroy", Key: kekID, Version: version}, err)
	}
	// Backend first: once the HSM object is gone nothing can unwrap, even if
	// the store update below fails (the version then reports a backend error).
	err = m.be.DestroyKEK(ctx, KEKRef{KEK: kekID, Version: version, Suite: k.Suite}, v.Handle)
	if err == nil {
		err = m.st.DestroyKEKVersion(ctx, kekID, version, m.now().UTC())
	}
	m.forget(kekID, version)
	m.forgetKEK(kekID)
	return m.record(ctx, Op{Action: "destroy", Key: kekID, Version: version, Approvers: approvers}, err)
}

// ExportedKEK is a KEK version wrapped for an escrow recipient.
type ExportedKEK struct {
	Suite     string `json:"suite"`
	KEK       string `json:"kek"`
	Version   int    `json:"version"`
	Recipient string `json:"recipient"` // key id of the recipient public key
	Wrapped   []byte `json:"wrapped"`   // the KEK material, wrapped for the recipient
	Secret    []byte `json:"secret,omitempty"`
	Public    []byte `json:"public,omitempty"`
}

func exportAAD(kek string, version int) []byte {
	return []byte("phix-kms-export-v1\x00" + kek + "\x00" + strconv.Itoa(version))
}

// ExportKEK wraps the material of a KEK version for an escrow recipient's
// public key (suite key wrap), under dual control: the approvals must name
// OpExportKEK, the key version and the recipient's key id as target. An HSM
// backend refuses with ErrNotExportable, and no approval is spent then.
func (m *Manager) ExportKEK(ctx context.Context, kekID string, version int, recipient []byte, approvals []Approval) (ExportedKEK, error) {
	k, err := m.st.KEK(ctx, kekID)
	if err != nil {
		return ExportedKEK{}, err
	}
	s, err := lookupSuite(k.Suite)
	if err != nil {
		return ExportedKEK{}, err
	}
	pub, err := s.ParseRecipientPublicKey(recipient)
	if err != nil {
		return ExportedKEK{}, Errorf(CodeBadInput, "recipient public key does not parse for suite %s", k.Suite)
	}
	v, err := m.st.KEKVersion(ctx, kekID, version)
	if err != nil {
		return ExportedKEK{}, err
	}
	if !v.Destroyed.IsZero() {
		return ExportedKEK{}, Errorf(CodeDestroyed, "KEK %s version %d is destroyed", kekID, version)
	}
	// Validate without spending, so a refusal by the backend spends nothing.
	now := m.now()
	for i := range approvals {
		if err := m.checkApproval(ctx, &approvals[i], OpExportKEK, kekID, version, pub.KeyID(), now); err != nil {
			return ExportedKEK{}, m.record(ctx, Op{Action: "export", Key: kekID, Version: version}, err)
		}
	}
	ref := KEKRef{KEK: kekID, Version: version, Suite: k.Suite}
	material, err := m.be.ExportKEK(ctx, ref, v.Handle)
	if err != nil {
		return ExportedKEK{}, m.record(ctx, Op{Action: "export", Key: kekID, Version: version}, err)
	}
	defer suite.Wipe(material)
	approvers, err := m.checkApprovals(ctx, OpExportKEK, kekID, version, pub.KeyID(), approvals)
	if err != nil {
		return ExportedKEK{}, m.record(ctx, Op{Action: "export", Key: kekID, Version: version}, err)
	}
	wrapped, err := s.WrapKey(pub, material, exportAAD(kekID, version))
	if err != nil {
		return ExportedKEK{}, m.record(ctx, Op{Action: "export", Key: kekID, Version: version, Approvers: approvers},
			Wrapf(CodeBackend, err, "wrap KEK for recipient"))
	}
	out := ExportedKEK{Suite: k.Suite, KEK: kekID, Version: version, Recipient: pub.KeyID(), Wrapped: wrapped, Secret: v.Secret, Public: v.Public}
	if err := m.record(ctx, Op{Action: "export", Key: kekID, Version: version, Approvers: approvers, Detail: "recipient " + pub.KeyID()}, nil); err != nil {
		return ExportedKEK{}, err
	}
	return out, nil
}

// ImportKEK restores an escrowed KEK version (the output of ExportKEK) into
// this keyring, opening it with the escrow's private key: blobs made under
// that version in the exporting keyring unwrap here, and derived keys and
// signatures come out the same. The backend must implement Importer (the
// local keyring does; an HSM does not take key material in).
func (m *Manager) ImportKEK(ctx context.Context, x ExportedKEK, escrow suite.RecipientKey) error {
	hospital, p, err := splitKEKID(x.KEK)
	if err != nil {
		return err
	}
	s, err := lookupSuite(x.Suite)
	if err != nil {
		return err
	}
	imp, ok := m.be.(Importer)
	if !ok {
		return Errorf(CodeUnsupported, "backend %s cannot import KEK material", m.be.Name())
	}
	if x.Version < 1 {
		return Errorf(CodeBadInput, "exported KEK has no version")
	}
	material, err := s.UnwrapKey(escrow, x.Wrapped, exportAAD(x.KEK, x.Version))
	if err != nil {
		return m.record(ctx, Op{Action: "import", Key: x.KEK, Version: x.Version}, Errorf(CodeUnwrapFailed, "the escrow key does not open this export"))
	}
	defer suite.Wipe(material)
	ref := KEKRef{KEK: x.KEK, Version: x.Version, Suite: x.Suite}
	handle, err := imp.ImportKEK(ctx, ref, material)
	if err != nil {
		return m.record(ctx, Op{Action: "import", Key: x.KEK, Version: x.Version}, err)
	}
	// The version's secret must open under the imported material before the
	// version is stored: a mismatched export is refused, not half-imported.
	if p != PurposeData {
		b, err := ParseBlob(x.Secret)
		if err == nil && (b.KEK != x.KEK || b.KEKVersion != x.Version || b.KeyID != secretKeyID(x.KEK, x.Version) || b.Backend != m.be.Name()) {
			err = Errorf(CodeUnwrapFailed, "the exported secret belongs to another key")
		}
		if err == nil {
			var hdr, sec []byte
			hdr, err = b.Header()
			if err == nil {
				sec, err = m.be.Unwrap(ctx, ref, handle, b.Payload, hdr)
				suite.Wipe(sec)
			}
		}
		if err != nil {
			return m.record(ctx, Op{Action: "import", Key: x.KEK, Version: x.Version}, err)
		}
	}
	now := m.now().UTC()
	k := KEK{ID: x.KEK, Hospital: hospital, Purpose: p, Suite: x.Suite, Backend: m.be.Name(), Current: x.Version, MinDecryption: 1, Created: now}
	v := KEKVersion{KEK: x.KEK, Version: x.Version, Handle: handle, Secret: x.Secret, Public: x.Public, Created: now}
	err = m.st.ImportKEKVersion(ctx, k, v)
	m.forgetKEK(x.KEK)
	return m.record(ctx, Op{Action: "import", Key: x.KEK, Version: x.Version, Detail: "escrow " + escrow.KeyID()}, err)
}
