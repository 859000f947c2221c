package deid

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"math/big"
	"strings"
	"sync"

	"phix/suite"
)

// Pseudonymizer derives every keyed value of a transfer: pseudonyms, ids,
// UIDs and per-patient date shifts. The FHIR engine and the DICOM
// de-identifier share it, so a DICOM file of the same transfer gets the
// same offset and the same patient pseudonym.
type Pseudonymizer struct {
	suite    suite.ID
	mac      func() hash.Hash
	shiftMin int
	shiftMax int
	pool     sync.Pool
}

// NewPseudonymizer keys a Pseudonymizer with keys.HashKey. rng bounds the
// date shift (zero: -365..365).
func NewPseudonymizer(keys Keys, rng DateShiftRange) (*Pseudonymizer, error) {
	if keys == nil {
		return nil, failed("keys", "no keys")
	}
	k, err := keys.HashKey()
	if err != nil {
		return nil, &Error{Code: CodeDeidFailed, Rule: -1, Where: "keys", Msg: "hash key unavailable", err: err}
	}
	if len(k) < 32 {
		return nil, failed("keys", "hash key must be at least 32 bytes")
	}
	id := keys.Suite()
	if id != suite.Intl && id != suite.GM {
		return nil, failed("keys", "unknown suite")
	}
	if rng.MinDays == 0 && rng.MaxDays == 0 {
		rng = DateShiftRange{MinDays: -365, MaxDays: 365}
	}
	p := &Pseudonymizer{suite: id, mac: newMAC(id, append([]byte(nil), k...)), shiftMin: rng.MinDays, shiftMax: rng.MaxDays}
	p.pool.New = func() any { return p.mac() }
	return p, nil
}

// sum is HMAC(key, domain || 0x00 || value).
func (p *Pseudonymizer) sum(domain, value string) []byte {
	h := p.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(domain))
	h.Write([]byte{0})
	h.Write([]byte(value))
	out := h.Sum(nil)
	p.pool.Put(h)
	return out
}

// Hash is the cryptoHash method: HMAC-SHA256 or HMAC-SM3 of value under
// the project key, hex or base64url (unpadded).
func (p *Pseudonymizer) Hash(value, encoding string) string {
	s := p.sum("cryptoHash", value)
	if encoding == "base64url" {
		return base64.RawURLEncoding.EncodeToString(s)
	}
	return hex.EncodeToString(s)
}

// Pseudonym is a keyed pseudonym of value within namespace: "ps-" and 26
// base32 characters (130 bits).
func (p *Pseudonymizer) Pseudonym(namespace, value string) string {
	s := p.sum("pseudonym:"+namespace, value)
	return "ps-" + strings.ToLower(b32.EncodeToString(s[:16]))
}

// ID maps a resource id (or the UUID of a urn:uuid reference) to a keyed
// pseudonymous UUID, so ids, references and fullUrls stay consistent.
func (p *Pseudonymizer) ID(id string) string {
	s := p.sum("id", id)
	s[6] = s[6]&0x0f | 0x80 // version 8 (custom)
	s[8] = s[8]&0x3f | 0x80 // RFC 9562 variant
	return uuidString(s)
}

// uuidString formats the first 16 bytes of s as a UUID (lower-case hex,
// 8-4-4-4-12), as fmt's %x of each group would, without fmt's cost.
func uuidString(s []byte) string {
	var b [36]byte
	hex.Encode(b[0:8], s[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], s[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], s[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], s[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], s[10:16])
	return string(b[:])
}

// UID maps a DICOM UID to a 2.25 OID from a keyed hash, consistently
// within the project key.
func (p *Pseudonymizer) UID(uid string) string {
	s := p.sum("dicom-uid", uid)
	return "2.25." + new(big.Int).SetBytes(s[:16]).String()
}

// PatientKey is the pseudonym under which a patient's date shift is derived.
func (p *Pseudonymizer) PatientKey(patientID string) string {
	return p.Pseudonym("patient", patientID)
}

// DateShiftDays is the patient's day offset: a keyed hash of the patient
// pseudonym mapped into the configured range, never 0 when the range
// allows another value.
func (p *Pseudonymizer) DateShiftDays(patientID string) int {
	s := p.sum("dateShift", p.PatientKey(patientID))
	span := uint64(p.shiftMax - p.shiftMin + 1)
	zeroIn := p.shiftMin <= 0 && p.shiftMax >= 0 && span > 1
	if zeroIn {
		span--
	}
	off := p.shiftMin + int(binary.BigEndian.Uint64(s[:8])%span)
	if zeroIn && off >= 0 {
		off++
	}
	return off
}

// unit returns a keyed uniform value in [0,1) for perturbation.
func (p *Pseudonymizer) unit(seed string) float64 {
	s := p.sum("perturb", seed)
	return float64(binary.BigEndian.Uint64(s[:8])>>11) / (1 << 53)
}
