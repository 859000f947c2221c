// Package phi is phix's PHI-isolation layer (seed 002, Layer 6): it seals the
// PHI elements a policy names with the patient's data key, adds blind-index
// search entries for the encrypted search parameters, and authenticates each
// stored version with HMAC-SHA3-384 (HMAC-SM3 under gm) over seed 002's
// canonical form. See docs/phi-isolation.md and docs/searchable-encryption.md.
package phi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"phix/errcode"
	"phix/kms"
	"phix/phi/policy"
	"phix/suite"
)

// Extension URLs of seed 002 and of phix's sealed values.
const (
	ExtHMAC       = "http://example.org/fhir/StructureDefinition/hmac-authentication"
	ExtMetadata   = "http://example.org/fhir/StructureDefinition/encryption-metadata"
	ExtSignature  = "http://example.org/fhir/StructureDefinition/ml-dsa-signature"
	ExtEncrypted  = "urn:phix:fhir:StructureDefinition:encrypted-value"
	fieldKDFLabel = "phix-phi-field-v1"
)

// ErrKeyDestroyed is returned (wrapped) by Open when the patient's data key was
// erased; the server answers 410 Gone.
var ErrKeyDestroyed = errors.New("phi: patient data key destroyed")

// Config assembles a Protector.
type Config struct {
	KMS      *kms.Manager
	Hospital string
	// Suite is the hospital's suite (AEAD and MAC); it must match the KEKs.
	Suite suite.Suite
	// Policy names what to seal; nil means policy.Default().
	Policy *policy.Policy
	// Floor is the policy the final check enforces on every sealed output:
	// a PHI element it names that is still in clear refuses the write with
	// PHI-6006. nil means policy.Default().
	Floor *policy.Policy
	// CacheSize bounds the per-patient key cache (default 4096 patients);
	// CacheTTL bounds how long a key lives there (default 5 minutes).
	CacheSize int
	CacheTTL  time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Protector seals, opens and verifies resources. It is safe for concurrent use.
type Protector struct {
	cfg   Config
	keys  *cache
	alg   string
	mac   string
	blind *cache
	words *cache // full-text word -> blind token
}

// New returns a Protector.
func New(cfg Config) (*Protector, error) {
	if cfg.KMS == nil || cfg.Suite == nil || cfg.Hospital == "" {
		return nil, errors.New("phi: config needs KMS, Suite and Hospital")
	}
	if cfg.Policy == nil {
		cfg.Policy = policy.Default()
	}
	if cfg.Floor == nil {
		cfg.Floor = policy.Default()
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 4096
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Protector{cfg: cfg, keys: newCache(cfg.CacheSize, cfg.CacheTTL, cfg.Now), blind: newCache(1024, cfg.CacheTTL, cfg.Now),
		words: newCache(1<<16, cfg.CacheTTL, cfg.Now)}
	switch cfg.Suite.ID() {
	case suite.GM:
		p.alg, p.mac = "SM4-GCM", "HMAC-SM3"
	default:
		p.alg, p.mac = "AES-256-GCM", "HMAC-SHA3-384"
	}
	return p, nil
}

// Forget drops a patient's cached keys. The server calls it right after
// erasing the patient (kms DestroyDataKey) so no cached key outlives it.
func (p *Protector) Forget(patientID string) {
	p.keys.drop("d\x00" + patientID)
	p.keys.dropPrefix("h\x00" + patientID + "\x00")
}

// fieldKey returns the patient's field-encryption key: HKDF of the kms data
// key (one HKDF per patient, cached). create makes the data key on first use.
func (p *Protector) fieldKey(ctx context.Context, patientID string, create bool) ([]byte, error) {
	ck := "d\x00" + patientID
	if k, ok := p.keys.get(ck); ok {
		return k.([]byte), nil
	}
	var dk []byte
	var err error
	if create {
		dk, err = p.cfg.KMS.EnsureDataKey(ctx, p.cfg.Hospital, kms.KindPatient, patientID)
	} else {
		dk, err = p.cfg.KMS.DataKey(ctx, p.cfg.Hospital, kms.KindPatient, patientID)
	}
	if err != nil {
		if c := kms.CodeOf(err); c == kms.CodeDestroyed || (!create && c == kms.CodeNotFound) {
			return nil, fmt.Errorf("%w (%s)", ErrKeyDestroyed, c)
		}
		return nil, fmt.Errorf("phi: data key: %w", err)
	}
	k, err := p.cfg.Suite.KDF(dk, nil, []byte(fieldKDFLabel), p.cfg.Suite.AEADKeySize())
	suite.Wipe(dk)
	if err != nil {
		return nil, err
	}
	p.keys.put(ck, k)
	return k, nil
}

// hmacKey returns the per-resource HMAC key of seed 002 under HMAC KEK
// version n (0: current), with the patient step cached.
func (p *Protector) hmacKey(ctx context.Context, n int, patientID, typ, id string) ([]byte, string, int, error) {
	ck := fmt.Sprintf("h\x00%s\x00%d", patientID, n)
	var pk kms.DerivedKey
	if v, ok := p.keys.get(ck); ok {
		pk = v.(kms.DerivedKey)
	} else {
		var err error
		if pk, err = p.cfg.KMS.PatientHMACKeyAt(ctx, p.cfg.Hospital, n, patientID); err != nil {
			return nil, "", 0, fmt.Errorf("phi: hmac key: %w", err)
		}
		p.keys.put(ck, pk)
		if n == 0 {
			p.keys.put(fmt.Sprintf("h\x00%s\x00%d", patientID, pk.Version), pk)
		}
	}
	k, err := kms.DeriveResourceHMACKey(p.cfg.Suite, pk.Key, typ, id)
	return k, pk.KEK, pk.Version, err
}

func phiErr(c errcode.Code, format string, args ...any) error { return errcode.New(c, format, args...) }
