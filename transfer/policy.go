package transfer

import (
	"encoding/json"
	"path"
	"strings"
	"time"

	"phix/suite"
)

// Policy reason codes: every evaluated rule records one, "ok" or a denial.
const (
	ReasonSenderInactive      = "sender-inactive"
	ReasonReceiverUnknown     = "receiver-unknown"
	ReasonReceiverInactive    = "receiver-inactive"
	ReasonConsentSignature    = "consent-signature-invalid"
	ReasonConsentExpired      = "consent-expired"
	ReasonConsentWithdrawn    = "consent-withdrawn"
	ReasonConsentStale        = "consent-too-old"
	ReasonConsentNotYet       = "consent-not-yet-valid"
	ReasonConsentBinding      = "consent-binding-mismatch"
	ReasonConsentPurpose      = "consent-purpose-mismatch"
	ReasonPurposeUnknown      = "purpose-unknown"
	ReasonPurposeNotPermitted = "purpose-not-permitted"
	ReasonDataClassUnknown    = "data-class-unknown"
	ReasonNotEntitled         = "receiver-not-entitled"
	ReasonResidency           = "residency-not-allowed"
	ReasonCrossBorder         = "cross-border-route"
	ReasonStorageResidency    = "storage-residency-not-allowed"
	ReasonManifestSignature   = "manifest-signature-invalid"
	ReasonRetention           = "retention-invalid"
)

// PolicyConfig tunes policy evaluation.
type PolicyConfig struct {
	// AllowedRegions are region patterns (path.Match, e.g. "CN-*"); default CN-*.
	AllowedRegions []string
	// ConsentMaxAge bounds how long ago a consent proof may have been issued (default 30 days).
	ConsentMaxAge time.Duration
	// MaxRetention bounds retention_until from now (default 90 days).
	MaxRetention time.Duration
}

func (c *PolicyConfig) defaults() {
	if len(c.AllowedRegions) == 0 {
		c.AllowedRegions = []string{"CN-*"}
	}
	if c.ConsentMaxAge == 0 {
		c.ConsentMaxAge = 30 * 24 * time.Hour
	}
	if c.MaxRetention == 0 {
		c.MaxRetention = 90 * 24 * time.Hour
	}
}

func (c *PolicyConfig) regionAllowed(region string) bool {
	for _, p := range c.AllowedRegions {
		if ok, _ := path.Match(p, region); ok {
			return true
		}
	}
	return false
}

func country(region string) string {
	c, _, _ := strings.Cut(region, "-")
	return c
}

// Decision is the outcome of a policy evaluation with all its reasons.
type Decision struct {
	Permit  bool
	Reasons []string
	// Rules are the rule ids evaluated, for the audit log.
	Rules []string
}

func verifyWith(h Hospital, msg []byte, sigB64 string) bool {
	s, err := suite.Lookup(suite.ID(h.Suite))
	if err != nil {
		return false
	}
	kb, err := b64(h.SigningKey)
	if err != nil {
		return false
	}
	vk, err := s.ParseVerifyKey(kb)
	if err != nil {
		return false
	}
	sig, err := b64(sigB64)
	if err != nil {
		return false
	}
	return vk.Verify(msg, sig)
}

// Evaluate applies the transfer policy. receiver is nil when unknown;
// storageRegions are the regions of every configured storage backend.
func (c *PolicyConfig) Evaluate(sender Hospital, receiver *Hospital, req *Request, storageRegions []string, now time.Time) Decision {
	var d Decision
	deny := func(reason string) { d.Reasons = append(d.Reasons, reason) }
	d.Rules = []string{"parties-active", "manifest-signature", "consent", "purpose", "data-class", "entitlement", "residency", "retention"}

	if sender.Status != StatusActive {
		deny(ReasonSenderInactive)
	}
	if receiver == nil {
		deny(ReasonReceiverUnknown)
	} else if receiver.Status != StatusActive {
		deny(ReasonReceiverInactive)
	}
	if !verifyWith(sender, CanonicalManifest(sender.ID, req), req.Signature) {
		deny(ReasonManifestSignature)
	}

	// Consent: signed by the sender, fresh, bound to this patient and receiver.
	stmt, err := b64(req.ConsentProof.Statement)
	if err != nil || !verifyWith(sender, stmt, req.ConsentProof.Signature) {
		deny(ReasonConsentSignature)
	} else {
		var cs ConsentStatement
		if err := json.Unmarshal(stmt, &cs); err != nil {
			deny(ReasonConsentSignature)
		} else {
			switch {
			case !cs.ExpiresAt.After(now):
				deny(ReasonConsentExpired)
			case cs.IssuedAt.After(now.Add(5 * time.Minute)):
				deny(ReasonConsentNotYet)
			case now.Sub(cs.IssuedAt) > c.ConsentMaxAge:
				deny(ReasonConsentStale)
			}
			if cs.ConsentID != req.ConsentID || !suite.EqualString(cs.Patient, req.Patient) || cs.Receiver != req.Receiver {
				deny(ReasonConsentBinding)
			}
			if !contains(cs.Purposes, req.Purpose) {
				deny(ReasonConsentPurpose)
			}
		}
	}

	if !contains(KnownPurposes, req.Purpose) {
		deny(ReasonPurposeUnknown)
	}
	if !contains(KnownDataClasses, req.DataClass) {
		deny(ReasonDataClassUnknown)
	}
	if receiver != nil {
		p, ok := sender.Partners[receiver.ID]
		if contains(KnownPurposes, req.Purpose) && (!ok || !contains(p.Purposes, req.Purpose)) {
			deny(ReasonPurposeNotPermitted)
		}
		if contains(KnownDataClasses, req.DataClass) && (!ok || !contains(p.DataClasses, req.DataClass)) {
			deny(ReasonNotEntitled)
		}
		if !c.regionAllowed(sender.Region) || !c.regionAllowed(receiver.Region) {
			deny(ReasonResidency)
		}
		if country(sender.Region) != country(receiver.Region) {
			deny(ReasonCrossBorder)
		}
	}
	for _, r := range storageRegions {
		if !c.regionAllowed(r) || (receiver != nil && country(r) != country(sender.Region)) {
			deny(ReasonStorageResidency)
			break
		}
	}
	if !req.RetentionUntil.After(now) || req.RetentionUntil.After(now.Add(c.MaxRetention)) {
		deny(ReasonRetention)
	}
	d.Permit = len(d.Reasons) == 0
	return d
}
