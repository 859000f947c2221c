package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"time"

	"phix/suite"
)

// BindingType is the type tag of a signed identity binding.
const BindingType = "phix-identity-binding"

// bindingContext prefixes the signed bytes so a binding signature can never
// be mistaken for a signature over anything else the CA key signs.
const bindingContext = "phix-identity-binding-v1\x00"

// IdentityBinding is the CA's statement that a principal's suite signing
// key (ML-DSA-87 under intl, SM2 under gm) is PublicKey, from NotBefore to
// NotAfter. A coordinator that trusts the network CA can then trust
// signatures (manifests, consents, checkpoints) made with that key.
type IdentityBinding struct {
	Principal string    `json:"principal"` // urn:phix:hospital:<id>
	Suite     suite.ID  `json:"suite"`
	Algorithm string    `json:"alg"`
	KeyID     string    `json:"kid"`
	PublicKey []byte    `json:"pub"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Serial    string    `json:"serial"`
	Issuer    string    `json:"issuer"` // SPKI pin of the CA that signed
}

// signedBinding is the wire form: the exact payload bytes that were signed,
// and the signature over bindingContext||payload.
type signedBinding struct {
	Type      string `json:"type"`
	Version   int    `json:"v"`
	Payload   string `json:"payload"` // base64 (std) of the payload JSON
	Algorithm string `json:"sig_alg"` // "ECDSA-SHA256" or "Ed25519"
	Signature string `json:"sig"`     // base64 (std)
}

// Limits on binding sizes: ML-DSA-87 public keys are 2592 bytes.
const (
	maxBindingSize = 16 << 10
	maxPublicKey   = 4096
)

// BindIdentity signs a binding of key to p for lifetime (capped at the
// CA certificate's end; bindings may outlive TLS certificates, since suite
// signing keys rotate rarely) and logs it. key must be an intl or gm suite key.
func (ca *CA) BindIdentity(ctx context.Context, p Principal, key suite.VerifyKey, lifetime time.Duration) ([]byte, *IdentityBinding, error) {
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	if key == nil {
		return nil, nil, errorf(CodeBadRequest, "no signing key")
	}
	s, err := suite.Lookup(key.Suite())
	if err != nil {
		return nil, nil, errorf(CodeBadRequest, "signing key is not an intl or gm suite key")
	}
	if key.Algorithm() != s.SignatureAlgorithm() {
		return nil, nil, errorf(CodeBadRequest, "signing key algorithm does not match suite %s", s.ID())
	}
	if lifetime <= 0 {
		return nil, nil, errorf(CodeBadRequest, "binding lifetime must be positive")
	}
	now := ca.opts.Now()
	notAfter := now.Add(lifetime)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	b := &IdentityBinding{
		Principal: p.URI(), Suite: s.ID(), Algorithm: key.Algorithm(), KeyID: key.KeyID(),
		PublicKey: key.Bytes(), NotBefore: now.Add(-Backdate).UTC().Truncate(time.Second),
		NotAfter: notAfter.UTC().Truncate(time.Second), Serial: SerialString(serial), Issuer: SPKIHash(ca.cert),
	}
	payload, err := json.Marshal(b)
	if err != nil {
		return nil, nil, wrap(CodeBadBinding, err, "encode binding")
	}
	sigAlg, sig, err := signBinding(ca.key, payload)
	if err != nil {
		return nil, nil, err
	}
	out, err := json.Marshal(signedBinding{
		Type: BindingType, Version: 1, Payload: base64.StdEncoding.EncodeToString(payload),
		Algorithm: sigAlg, Signature: base64.StdEncoding.EncodeToString(sig),
	})
	if err != nil {
		return nil, nil, wrap(CodeBadBinding, err, "encode binding")
	}
	rec := IssuedRecord{Serial: b.Serial, Kind: "identity", Principal: b.Principal, KeyID: b.KeyID,
		NotBefore: b.NotBefore, NotAfter: b.NotAfter, IssuedAt: now.UTC()}
	if err := ca.store.AppendIssued(ctx, rec); err != nil {
		return nil, nil, err
	}
	return append(out, '\n'), b, nil
}

func signBinding(key crypto.Signer, payload []byte) (string, []byte, error) {
	msg := append([]byte(bindingContext), payload...)
	switch key.Public().(type) {
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		sig, err := key.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			return "", nil, wrap(CodeBadBinding, err, "sign binding")
		}
		return "ECDSA-SHA256", sig, nil
	case ed25519.PublicKey:
		sig, err := key.Sign(rand.Reader, msg, crypto.Hash(0))
		if err != nil {
			return "", nil, wrap(CodeBadBinding, err, "sign binding")
		}
		return "Ed25519", sig, nil
	default:
		return "", nil, errorf(CodeBadBinding, "CA key type cannot sign bindings")
	}
}

// ParsedBinding is a binding read from the wire but not yet verified.
type ParsedBinding struct {
	Binding   IdentityBinding
	payload   []byte
	sigAlg    string
	signature []byte
}

// ParseIdentityBinding reads the wire form and its payload, checking syntax
// only. Use VerifyIdentityBinding before trusting anything in it.
func ParseIdentityBinding(b []byte) (*ParsedBinding, error) {
	if len(b) > maxBindingSize {
		return nil, errorf(CodeBadBinding, "binding larger than %d bytes", maxBindingSize)
	}
	var sb signedBinding
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sb); err != nil {
		return nil, errorf(CodeBadBinding, "binding is not valid JSON of the expected shape")
	}
	if sb.Type != BindingType || sb.Version != 1 {
		return nil, errorf(CodeBadBinding, "not a version 1 identity binding")
	}
	if sb.Algorithm != "ECDSA-SHA256" && sb.Algorithm != "Ed25519" {
		return nil, errorf(CodeBadBinding, "unknown signature algorithm")
	}
	payload, err1 := base64.StdEncoding.Strict().DecodeString(sb.Payload)
	sig, err2 := base64.StdEncoding.Strict().DecodeString(sb.Signature)
	if err1 != nil || err2 != nil || len(sig) == 0 {
		return nil, errorf(CodeBadBinding, "payload or signature is not base64")
	}
	pb := &ParsedBinding{payload: payload, sigAlg: sb.Algorithm, signature: sig}
	pd := json.NewDecoder(bytes.NewReader(payload))
	pd.DisallowUnknownFields()
	if err := pd.Decode(&pb.Binding); err != nil {
		return nil, errorf(CodeBadBinding, "payload is not a binding")
	}
	bd := &pb.Binding
	if _, err := ParsePrincipal(bd.Principal); err != nil {
		return nil, errorf(CodeBadBinding, "binding principal is not a phix identity")
	}
	if bd.Suite != suite.Intl && bd.Suite != suite.GM {
		return nil, errorf(CodeBadBinding, "binding suite must be intl or gm")
	}
	if len(bd.PublicKey) == 0 || len(bd.PublicKey) > maxPublicKey || bd.KeyID == "" {
		return nil, errorf(CodeBadBinding, "binding key is missing or too large")
	}
	if !bd.NotBefore.Before(bd.NotAfter) {
		return nil, errorf(CodeBadBinding, "binding validity is empty")
	}
	if _, _, err := ParsePin(bd.Issuer); err != nil {
		return nil, errorf(CodeBadBinding, "binding issuer is not a pin")
	}
	return pb, nil
}

// VerifiedBinding is a binding whose CA signature, validity and key checked out.
type VerifiedBinding struct {
	IdentityBinding
	// Principal is the parsed identity.
	Subject Principal
	// Key verifies signatures made by the bound key.
	Key suite.VerifyKey
}

// VerifyIdentityBinding checks b: its syntax, the CA's signature, the
// validity at now, that the key parses under the named suite, and that the
// key id is the one the suite derives from that key.
func VerifyIdentityBinding(b []byte, ca *x509.Certificate, now time.Time) (*VerifiedBinding, error) {
	pb, err := ParseIdentityBinding(b)
	if err != nil {
		return nil, err
	}
	bd := pb.Binding
	if bd.Issuer != SPKIHash(ca) {
		return nil, errorf(CodeBindingSig, "binding was issued by another CA")
	}
	msg := append([]byte(bindingContext), pb.payload...)
	alg := x509.ECDSAWithSHA256
	if pb.sigAlg == "Ed25519" {
		alg = x509.PureEd25519
	}
	if err := ca.CheckSignature(alg, msg, pb.signature); err != nil {
		return nil, errorf(CodeBindingSig, "binding signature does not verify against the network CA")
	}
	if now.Before(bd.NotBefore) || now.After(bd.NotAfter) {
		return nil, errorf(CodeBindingTime, "binding for %s is outside its validity", bd.Principal)
	}
	s, err := suite.Lookup(bd.Suite)
	if err != nil {
		return nil, errorf(CodeBadBinding, "unknown suite")
	}
	if bd.Algorithm != s.SignatureAlgorithm() {
		return nil, errorf(CodeBadBinding, "binding algorithm does not match its suite")
	}
	key, err := s.ParseVerifyKey(bd.PublicKey)
	if err != nil {
		return nil, errorf(CodeBadBinding, "bound key does not parse under suite %s", bd.Suite)
	}
	if key.KeyID() != bd.KeyID {
		return nil, errorf(CodeBadBinding, "bound key id does not match the key")
	}
	p, _ := ParsePrincipal(bd.Principal)
	return &VerifiedBinding{IdentityBinding: bd, Subject: p, Key: key}, nil
}
