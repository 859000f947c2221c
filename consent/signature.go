package consent

import (
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"time"

	"phix/fhir"
	"phix/suite"
)

// SignatureURL is the URL of seed 002's consent-signature extension.
const SignatureURL = "http://example.org/fhir/StructureDefinition/consent-signature"

// The signature algorithms a consent may carry.
const (
	AlgMLDSA87 = "ML-DSA-87"
	AlgSM2     = "SM2"
)

// KeyResolver vouches for consent signing keys: it returns the trusted key
// with the given id (registered hospital or patient-portal keys). A public
// key embedded in a consent is never trusted on its own.
type KeyResolver interface {
	ConsentKey(keyID string) (suite.VerifyKey, bool)
}

// TrustedKeys is an in-memory KeyResolver. Safe for concurrent use.
type TrustedKeys struct {
	mu   sync.RWMutex
	keys map[string]suite.VerifyKey
}

// NewTrustedKeys returns a resolver trusting keys.
func NewTrustedKeys(keys ...suite.VerifyKey) *TrustedKeys {
	t := &TrustedKeys{keys: map[string]suite.VerifyKey{}}
	for _, k := range keys {
		t.Add(k)
	}
	return t
}

// Add trusts k.
func (t *TrustedKeys) Add(k suite.VerifyKey) {
	t.mu.Lock()
	t.keys[k.KeyID()] = k
	t.mu.Unlock()
}

// Remove stops trusting the key with id keyID.
func (t *TrustedKeys) Remove(keyID string) {
	t.mu.Lock()
	delete(t.keys, keyID)
	t.mu.Unlock()
}

// ConsentKey implements KeyResolver.
func (t *TrustedKeys) ConsentKey(keyID string) (suite.VerifyKey, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	k, ok := t.keys[keyID]
	return k, ok
}

// Sign returns a copy of consent carrying a consent-signature extension by
// key: the signature covers fhir.Canonical of the consent without that
// extension (an existing one is replaced). Only ML-DSA-87 and SM2 keys are
// accepted. The copy shares nested values with consent; neither is modified
// afterwards by this package.
func Sign(consent *fhir.Resource, key suite.SigningKey, at time.Time) (*fhir.Resource, error) {
	if consent == nil || consent.Type != "Consent" {
		return nil, errors.New("consent: Sign needs a Consent resource")
	}
	if key == nil || (key.Algorithm() != AlgMLDSA87 && key.Algorithm() != AlgSM2) {
		return nil, errors.New("consent: the signing key must be ML-DSA-87 or SM2")
	}
	unsigned := withoutSignature(consent)
	msg, err := fhir.Canonical(unsigned)
	if err != nil {
		return nil, errors.New("consent: the consent has no canonical form")
	}
	sig, err := key.Sign(msg)
	if err != nil {
		return nil, errors.New("consent: signing failed")
	}
	if at.IsZero() {
		at = time.Now()
	}
	ext := map[string]any{
		"url": SignatureURL,
		"extension": []any{
			map[string]any{"url": "algorithm", "valueString": key.Algorithm()},
			map[string]any{"url": "signature", "valueString": base64.RawURLEncoding.EncodeToString(sig)},
			map[string]any{"url": "signer-public-key", "valueString": base64.RawURLEncoding.EncodeToString(key.Public().Bytes())},
			map[string]any{"url": "key-id", "valueString": key.KeyID()},
			map[string]any{"url": "timestamp", "valueDateTime": at.UTC().Format(time.RFC3339)},
		},
	}
	out := withoutSignature(consent)
	exts, _ := out.Object["extension"].([]any)
	out.Object["extension"] = append(append([]any(nil), exts...), ext)
	return out, nil
}

// withoutSignature copies r's top level with every consent-signature
// extension removed.
func withoutSignature(r *fhir.Resource) *fhir.Resource {
	obj := make(map[string]any, len(r.Object))
	for k, v := range r.Object {
		obj[k] = v
	}
	if exts, ok := obj["extension"].([]any); ok {
		var keep []any
		for _, e := range exts {
			if str(mapOf(e)["url"]) != SignatureURL {
				keep = append(keep, e)
			}
		}
		if len(keep) == 0 {
			delete(obj, "extension")
		} else {
			obj["extension"] = keep
		}
	}
	return &fhir.Resource{Type: r.Type, ID: r.ID, Object: obj}
}

// Reasons a signature does not count; stable tokens, never content.
const (
	SigMissing     = "signature-missing"
	SigMalformed   = "signature-malformed"
	SigAlgorithm   = "signature-algorithm-unsupported"
	SigUntrusted   = "signer-key-untrusted"
	SigKeyMismatch = "signer-key-mismatch"
	SigInvalid     = "signature-invalid"
)

// verify checks r's consent-signature. It returns the signer key id and ""
// when it verifies, or a reason token.
func verify(r *fhir.Resource, keys KeyResolver) (string, string) {
	var ext map[string]any
	n := 0
	for _, e := range slice(r.Object["extension"]) {
		if m := mapOf(e); str(m["url"]) == SignatureURL {
			ext = m
			n++
		}
	}
	if n == 0 {
		return "", SigMissing
	}
	if n > 1 {
		return "", SigMalformed
	}
	f := map[string]string{}
	for _, e := range slice(ext["extension"]) {
		m := mapOf(e)
		u := str(m["url"])
		if _, dup := f[u]; dup {
			return "", SigMalformed
		}
		f[u] = str(m["valueString"]) + str(m["valueDateTime"]) + str(m["valueCode"])
	}
	alg := f["algorithm"]
	var sid suite.ID
	switch alg {
	case AlgMLDSA87:
		sid = suite.Intl
	case AlgSM2:
		sid = suite.GM
	default:
		return "", SigAlgorithm
	}
	sig, err := decodeB64(f["signature"])
	if err != nil || len(sig) == 0 {
		return "", SigMalformed
	}
	keyID := f["key-id"]
	var embedded []byte
	if s := f["signer-public-key"]; s != "" {
		if embedded, err = decodeB64(s); err != nil {
			return "", SigMalformed
		}
		id := suite.KeyID(sid, alg, embedded)
		if keyID != "" && keyID != id {
			return "", SigKeyMismatch
		}
		keyID = id
	}
	if keyID == "" {
		return "", SigMalformed
	}
	key, ok := keys.ConsentKey(keyID)
	if !ok || key == nil {
		return keyID, SigUntrusted
	}
	if key.Algorithm() != alg || (embedded != nil && !suite.Equal(key.Bytes(), embedded)) {
		return keyID, SigKeyMismatch
	}
	msg, err := fhir.Canonical(withoutSignature(r))
	if err != nil {
		return keyID, SigMalformed
	}
	if !key.Verify(msg, sig) {
		return keyID, SigInvalid
	}
	return keyID, ""
}

// decodeB64 accepts base64url (the seed's encoding) with or without padding,
// and standard base64.
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "+/") {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}
