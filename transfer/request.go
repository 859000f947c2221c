package transfer

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Request is the body of POST /v1/transfers: seed 000's metadata. It holds
// no PHI: the patient is a pseudonym or token and file names are checked to
// be plain names.
type Request struct {
	Patient        string       `json:"patient"`
	ConsentID      string       `json:"consent_id"`
	ConsentProof   ConsentProof `json:"consent_proof"`
	Purpose        string       `json:"purpose"`
	DataClass      string       `json:"data_class"`
	RetentionUntil time.Time    `json:"retention_until"`
	Receiver       string       `json:"receiver"`
	Files          []FileSpec   `json:"files"`
	// Signature is the sender's suite signature (base64) over CanonicalManifest.
	Signature string `json:"signature"`
}

// FileSpec is one manifest entry.
type FileSpec struct {
	Name      string   `json:"name"`
	Size      int64    `json:"size"`
	HashAlg   string   `json:"hash_alg"`
	Hash      string   `json:"hash"`
	Sensitive []string `json:"sensitivity,omitempty"`
}

// ConsentProof is a compact signed consent statement: Statement is the
// base64 of the canonical ConsentStatement JSON, Signature the sender's suite
// signature (base64) over those bytes.
type ConsentProof struct {
	Statement string `json:"statement"`
	Signature string `json:"signature"`
}

// ConsentStatement binds a consent to a patient pseudonym and a receiver.
type ConsentStatement struct {
	ConsentID string    `json:"consent_id"`
	Patient   string    `json:"patient"`
	Receiver  string    `json:"receiver"`
	Purposes  []string  `json:"purposes"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Receipt is the receiver's signed acknowledgement of a transfer.
type Receipt struct {
	ReceivedAt time.Time `json:"received_at"`
	// Signature is the receiver's suite signature (base64) over ReceiptMessage.
	Signature string `json:"signature"`
}

// Limits on request fields.
const (
	MaxFiles       = 1000
	MaxFileNameLen = 255
	MaxRequestBody = 1 << 20
)

// Known purposes of use (HL7 v3 PurposeOfUse) and data classes.
var (
	KnownPurposes    = []string{"TREAT", "ETREAT", "HRESCH", "HPAYMT", "HOPERAT", "PUBHLTH", "COC", "PATRQT"}
	KnownDataClasses = []string{"clinical", "imaging", "laboratory", "genomic", "mental-health", "substance-use", "administrative", "research-deidentified"}
)

var (
	idRe     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	fhirIDRe = regexp.MustCompile(`^[A-Za-z0-9.-]{1,64}$`)
	tokenRe  = regexp.MustCompile(`^[A-Za-z0-9._:-]{8,128}$`)
	tagRe    = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
	regionRe = regexp.MustCompile(`^[A-Z]{2}-[A-Z0-9]{1,3}$`)
)

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ValidateFileName refuses anything but a plain file name: no separators,
// no traversal, no control characters, valid UTF-8, at most MaxFileNameLen bytes.
func ValidateFileName(name string) error {
	bad := name == "" || name == "." || name == ".." || len(name) > MaxFileNameLen || !utf8.ValidString(name) ||
		strings.ContainsAny(name, `/\:`) || strings.HasPrefix(name, ".")
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			bad = true
		}
	}
	if bad {
		return errf(400, CodeInvalidFileName, "Invalid file name", "file names must be plain names without separators or traversal, at most 255 bytes")
	}
	return nil
}

// Validate checks the request's syntax (not its policy).
func (r *Request) Validate() error {
	bad := func(d string) error { return errf(400, CodeBadRequest, "Invalid transfer request", d) }
	switch {
	case !tokenRe.MatchString(r.Patient):
		return bad("patient must be a pseudonym or token (8-128 of [A-Za-z0-9._:-])")
	case !fhirIDRe.MatchString(r.ConsentID):
		return bad("consent_id is required")
	case r.ConsentProof.Statement == "" || r.ConsentProof.Signature == "":
		return bad("consent_proof is required")
	case r.Purpose == "":
		return bad("purpose is required")
	case r.DataClass == "":
		return bad("data_class is required")
	case r.RetentionUntil.IsZero():
		return bad("retention_until is required")
	case !idRe.MatchString(r.Receiver):
		return bad("receiver must be a hospital id")
	case len(r.Files) == 0 || len(r.Files) > MaxFiles:
		return errf(400, CodeInvalidManifest, "Invalid manifest", "a manifest lists 1 to 1000 files")
	case r.Signature == "":
		return bad("signature is required")
	}
	seen := map[string]bool{}
	for _, f := range r.Files {
		if err := ValidateFileName(f.Name); err != nil {
			return err
		}
		if seen[f.Name] {
			return errf(400, CodeInvalidManifest, "Invalid manifest", "file names must be unique")
		}
		seen[f.Name] = true
		if f.Size < 0 {
			return errf(400, CodeInvalidManifest, "Invalid manifest", "file sizes must not be negative")
		}
		if f.HashAlg != "sha256" && f.HashAlg != "sm3" {
			return errf(400, CodeInvalidManifest, "Invalid manifest", "hash_alg must be sha256 or sm3")
		}
		if h, err := hex.DecodeString(f.Hash); err != nil || len(h) != 32 {
			return errf(400, CodeInvalidManifest, "Invalid manifest", "hash must be 64 hex digits")
		}
		for _, t := range f.Sensitive {
			if !tagRe.MatchString(t) {
				return errf(400, CodeInvalidManifest, "Invalid manifest", "sensitivity tags are lowercase codes")
			}
		}
	}
	return nil
}

// CanonicalManifest is what the sender signs: the whole request except the
// signatures, as compact JSON with fixed field order, bound to the sender.
func CanonicalManifest(sender string, r *Request) []byte {
	type canon struct {
		V              int        `json:"v"`
		Sender         string     `json:"sender"`
		Receiver       string     `json:"receiver"`
		Patient        string     `json:"patient"`
		ConsentID      string     `json:"consent_id"`
		Purpose        string     `json:"purpose"`
		DataClass      string     `json:"data_class"`
		RetentionUntil string     `json:"retention_until"`
		Files          []FileSpec `json:"files"`
	}
	b, _ := json.Marshal(canon{1, sender, r.Receiver, r.Patient, r.ConsentID, r.Purpose, r.DataClass,
		r.RetentionUntil.UTC().Format(time.RFC3339), r.Files})
	return b
}

// ReceiptMessage is what the receiver signs: the transfer id, both parties,
// the manifest signature it received and the receipt time.
func ReceiptMessage(t *Transfer, receivedAt time.Time) []byte {
	b, _ := json.Marshal(struct {
		V          int    `json:"v"`
		Transfer   string `json:"transfer"`
		Sender     string `json:"sender"`
		Receiver   string `json:"receiver"`
		Manifest   string `json:"manifest_signature"`
		ReceivedAt string `json:"received_at"`
	}{1, t.ID, t.Sender, t.Receiver, t.Request.Signature, receivedAt.UTC().Format(time.RFC3339Nano)})
	return b
}

func b64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
