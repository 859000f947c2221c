// Package kms manages the keys of a phix node: the key hierarchy (root key,
// per-hospital key-encryption keys by purpose, per-patient and per-file data
// keys), versioned KEKs with resumable rotation, cryptographic erasure, dual
// control by key custodians and the key-operation log.
//
// The KEK operations run in a Backend (kms/keyring for the local keyring
// sealed by a master key, kms/pkcs11 for an HSM); the state lives in a Store
// (kms/sqlstore: SQLite or PostgreSQL). Algorithms come from package suite;
// this package names none. See docs/kms.md.
package kms

import (
	"regexp"
	"strings"
	"time"
)

// Purpose separates the KEKs of a hospital: a key is only ever used for one.
type Purpose string

// The purposes of a hospital's KEKs.
const (
	// PurposeData wraps per-patient and per-file data keys.
	PurposeData Purpose = "data"
	// PurposeBlindIndex holds the secret blind-index keys are derived from.
	PurposeBlindIndex Purpose = "blind-index"
	// PurposeHMAC holds the master HMAC key per-patient and per-resource
	// HMAC keys are derived from (seed 002).
	PurposeHMAC Purpose = "hmac"
	// PurposeSigning holds the hospital's signing key (ML-DSA-87 or SM2).
	PurposeSigning Purpose = "signing"
	// PurposeRecipient holds the key pair other hospitals wrap file keys for
	// (HPKE or SM2 encryption).
	PurposeRecipient Purpose = "recipient"
)

// Purposes lists every purpose, in the order init creates them.
func Purposes() []Purpose {
	return []Purpose{PurposeData, PurposeBlindIndex, PurposeHMAC, PurposeSigning, PurposeRecipient}
}

func (p Purpose) valid() bool {
	for _, q := range Purposes() {
		if p == q {
			return true
		}
	}
	return false
}

// KEK is a versioned key-encryption key of one hospital and purpose.
type KEK struct {
	ID       string // "<hospital>/<purpose>"
	Hospital string
	Purpose  Purpose
	Suite    string
	Backend  string
	// Current is the version new wraps use.
	Current int
	// MinDecryption is the lowest version still allowed to unwrap.
	MinDecryption int
	Created       time.Time
}

// KEKVersion is one version of a KEK.
type KEKVersion struct {
	KEK     string
	Version int
	// Handle is the backend's reference to the key material: sealed
	// material (local keyring) or an object label (HSM). Empty once destroyed.
	Handle []byte
	// Secret is, for the purposes other than data, this version's secret
	// (HMAC or blind-index master key, signing or recipient private key)
	// wrapped under this version's KEK. Empty once destroyed.
	Secret []byte
	// Public is the public key of a signing or recipient version.
	Public    []byte
	Created   time.Time
	Destroyed time.Time // zero while the version exists
}

// DataKey is a stored, wrapped per-patient or per-file data key.
type DataKey struct {
	ID         string // "<hospital>/<kind>/<name>"
	KEK        string
	KEKVersion int
	Wrapped    []byte // a Blob
	Created    time.Time
}

// Custodian is a person enrolled to approve dual-control operations.
type Custodian struct {
	ID      string
	Suite   string
	Public  []byte // suite.VerifyKey bytes
	Created time.Time
}

// Rotation is the persisted state of a KEK rotation job.
type Rotation struct {
	KEK       string
	ToVersion int
	Total     int    // data keys below ToVersion when the job started
	Done      int    // data keys re-wrapped so far
	Cursor    string // last data key id processed
	Finished  bool
	Started   time.Time
	Updated   time.Time
}

// Op is one entry of the key-operation log. It names keys and people, never
// key material.
type Op struct {
	Seq       int64
	Time      time.Time
	Actor     string
	Action    string // create, rotate, rewrap, destroy, export, approve, enroll, ...
	Key       string
	Version   int
	Approvers []string
	Outcome   string // "ok" or an error code
	Detail    string
}

// Limits on names; ids appear in blobs, log lines and HSM labels.
var (
	hospitalRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`) // covers FHIR ids and UUIDs
)

// KEKID returns the id of a hospital's KEK for a purpose.
func KEKID(hospital string, p Purpose) string { return hospital + "/" + string(p) }

// splitKEKID is the inverse of KEKID.
func splitKEKID(id string) (hospital string, p Purpose, err error) {
	h, ps, ok := strings.Cut(id, "/")
	if !ok || !hospitalRE.MatchString(h) || !Purpose(ps).valid() {
		return "", "", Errorf(CodeBadInput, "malformed KEK id")
	}
	return h, Purpose(ps), nil
}

func checkHospital(h string) error {
	if !hospitalRE.MatchString(h) {
		return Errorf(CodeBadInput, "hospital id must match %s", hospitalRE)
	}
	return nil
}
