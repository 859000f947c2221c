package transfer

import (
	"context"
	"time"
)

// Hospital statuses.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
)

// Hospital is one registry entry. It holds public material only.
type Hospital struct {
	ID     string `json:"id"`
	NameZH string `json:"name_zh"`
	NameEN string `json:"name_en"`
	// Region is an ISO 3166-2 style code such as CN-BJ or US-CA.
	Region string `json:"region"`
	// Networks are the CIDRs the hospital's gateways call from.
	Networks []string `json:"networks"`
	// Partners maps a receiving hospital id to what this hospital may send it.
	Partners map[string]Partner `json:"partners,omitempty"`
	// Suite is the hospital's algorithm suite ("intl" or "gm").
	Suite string `json:"suite"`
	// SigningKey is the suite verify key (base64 of VerifyKey.Bytes).
	SigningKey string `json:"signing_key"`
	// WrapKey is the recipient key-wrap public key (base64 of RecipientPublicKey.Bytes).
	WrapKey string `json:"wrap_key"`
	// Pins are the allowed SPKI pins of the hospital's TLS certificates.
	Pins   []string `json:"pins"`
	Status string   `json:"status"`
}

// Partner is what a hospital may send one partner.
type Partner struct {
	DataClasses []string `json:"data_classes"`
	Purposes    []string `json:"purposes"`
}

// Transfer statuses.
const (
	TransferUploading = "uploading"
	TransferReady     = "ready"
	TransferDelivered = "delivered"
	TransferFailed    = "failed"
	TransferCancelled = "cancelled"
	// TransferWithdrawn: the sender withdrew the consent before delivery.
	TransferWithdrawn = "withdrawn"
	// TransferExpired: retention_until passed before delivery.
	TransferExpired = "expired"
)

// File statuses.
const (
	FilePending  = "pending"
	FileComplete = "complete"
)

// Transfer is a transfer session: seed 000's metadata, no PHI (the patient is
// a pseudonym or token).
type Transfer struct {
	ID       string    `json:"id"`
	Sender   string    `json:"sender"`
	Receiver string    `json:"receiver"`
	Status   string    `json:"status"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	// Request is the accepted request body, kept for verification of
	// receipts and for the receiver.
	Request Request `json:"request"`
	// Receipt is the receiver's signed receipt once delivered.
	Receipt *Receipt `json:"receipt,omitempty"`
	// Reason is the failure code for a failed transfer.
	Reason string `json:"reason,omitempty"`
	// Erased is when the ciphertext (and with it the wrapped keys, which
	// travel inside the sealed objects) was deleted; zero while stored.
	Erased time.Time `json:"erased,omitzero"`
}

// File is one declared file and its upload state.
type File struct {
	Transfer string `json:"-"`
	Index    int    `json:"index"`
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	Offset   int64  `json:"offset"`
	Status   string `json:"status"`
	// HashState is the marshaled running hash of bytes [0, Offset); nil if
	// it had to be discarded (finalize then re-reads the object).
	HashState []byte `json:"-"`
}

// Capability kinds.
const (
	CapUpload   = "upload"
	CapDownload = "download"
)

// Capability is a stored capability: only the SHA-256 of the token is kept.
type Capability struct {
	Hash     string
	Kind     string
	Transfer string
	File     int
	Hospital string
	CertFP   string
	Expires  time.Time
	Dead     bool
}

// Store is the coordinator's metadata store (transfer/transfersql for SQLite
// and PostgreSQL). Updates that race use compare-and-set and return
// ErrConflict; missing rows give ErrNotFound.
type Store interface {
	AddHospital(ctx context.Context, h Hospital) error
	Hospital(ctx context.Context, id string) (Hospital, error)
	Hospitals(ctx context.Context) ([]Hospital, error)
	SetHospitalStatus(ctx context.Context, id, status string) error

	// CreateTransfer stores a transfer, its files and capabilities at once.
	CreateTransfer(ctx context.Context, t Transfer, files []File, caps []Capability) error
	Transfer(ctx context.Context, id string) (Transfer, []File, error)
	// Transfers lists a hospital's transfers as "sender" or "receiver",
	// newest first; the receiver sees only ready or delivered ones.
	Transfers(ctx context.Context, hospital, role string, limit int) ([]Transfer, error)
	// SetTransferStatus moves a transfer from one of from to to, storing
	// receipt and reason when set.
	SetTransferStatus(ctx context.Context, id string, from []string, to string, receipt *Receipt, reason string) error

	// AdvanceFile moves a file from offset old to the file's new state.
	AdvanceFile(ctx context.Context, f File, old int64) error

	AddCapability(ctx context.Context, c Capability) error
	Capability(ctx context.Context, hash string) (Capability, error)
	// TouchCapability refreshes a live capability's expiry.
	TouchCapability(ctx context.Context, hash string, expires time.Time) error
	// KillCapabilities marks every capability of one file (kind, transfer,
	// file; file < 0 for all files) dead.
	KillCapabilities(ctx context.Context, kind, transfer string, file int) error

	// WithdrawConsent records that sender withdrew consentID; it reports
	// whether this call recorded it (false if it already was).
	WithdrawConsent(ctx context.Context, sender, consentID string, at time.Time) (bool, error)
	// ConsentWithdrawn reports whether sender withdrew consentID.
	ConsentWithdrawn(ctx context.Context, sender, consentID string) (bool, error)
	// TransfersByConsent lists sender's transfers bound to consentID.
	TransfersByConsent(ctx context.Context, sender, consentID string) ([]Transfer, error)
	// DueForErasure lists up to limit transfers not yet erased that are
	// closed (failed, cancelled, withdrawn, expired), delivered at or before
	// deliveredBefore, or past their retention_until at now.
	DueForErasure(ctx context.Context, deliveredBefore, now time.Time, limit int) ([]Transfer, error)
	// MarkErased records when a transfer's stored objects were deleted.
	MarkErased(ctx context.Context, id string, at time.Time) error

	Ping(ctx context.Context) error
	Close() error
}
