package fhirserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"phix/audit"
	"phix/audit/auditsqlite"
	"phix/deid"
	"phix/kms"
	"phix/kms/keyring"
	"phix/kms/sqlstore"
	"phix/phi"
	"phix/suite"
)

// Node holds what a FHIR server needs beside its store: the key manager
// (a local keyring), the tamper-evident audit log and the de-identification
// keys. OpenNode builds it in a data directory; Close releases it.
type Node struct {
	Keys       *kms.Manager
	Audit      *audit.Log
	Pseudonyms *audit.Pseudonymizer
	DeidKeys   deid.Keys
	// Protector seals and opens stored resources under the keyring's keys
	// (Config.Protector); Eraser destroys a patient's data key under dual
	// control (Config.Eraser).
	Protector *phi.Protector
	Eraser    KeyEraser
	// Signing is the hospital's signing key for $sign/$verify and Provenance.
	Signing *Signing

	closers []func() error
}

// NodeOptions configures OpenNode.
type NodeOptions struct {
	Dir      string // data directory: keyring.db, master.key and audit.db live here
	Hospital string // the keyring's hospital id (a kms hospital name, e.g. "hospital-a")
	Suite    string // "intl" (default) or "gm"
	// Auth is the server's authenticator; the audit endpoints admit only
	// its RoleAuditor tokens.
	Auth   Authenticator
	Logger *slog.Logger
}

// Derivation labels under the blind-index KEK (the purpose for keyed,
// deterministic pseudonyms). They are pinned to KEK version 1 so that
// rotating that KEK does not change every pseudonym in the audit log.
const (
	auditPseudonymLabel = "audit-pseudonym"
	deidProjectLabel    = "deid-project"
)

// OpenNode opens (creating on first start) the local keyring, the hospital's
// keys and the audit log in opts.Dir.
//
// The keyring's master key is a file, Dir/master.key (mode 0600, base64),
// next to the keyring: this is for development and single-machine pilots
// only. Production sets PHIX_MASTER_KEY (or uses the HSM backend) so that the
// master key does not sit beside the data it protects.
func OpenNode(ctx context.Context, opts NodeOptions) (_ *Node, err error) {
	if opts.Dir == "" || opts.Hospital == "" || opts.Auth == nil {
		return nil, errors.New("fhirserver: NodeOptions needs Dir, Hospital and Auth")
	}
	if opts.Suite == "" {
		opts.Suite = string(suite.Intl)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	master, err := loadOrCreateMaster(filepath.Join(opts.Dir, "master.key"))
	if err != nil {
		return nil, err
	}
	st, err := sqlstore.OpenSQLite(ctx, filepath.Join(opts.Dir, "keyring.db"))
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, st.Close)
	be, err := keyring.Open(ctx, st, master, keyring.Options{Suite: opts.Suite})
	if err != nil {
		return nil, err
	}
	m, err := kms.Open(ctx, kms.Config{Store: st, Backend: be})
	if err != nil {
		return nil, err
	}
	if _, err := m.InitHospital(ctx, opts.Hospital, opts.Suite); err != nil {
		return nil, err
	}
	n.Keys = m
	signer, _, err := m.Signer(ctx, opts.Hospital, 0)
	if err != nil {
		return nil, err
	}
	s, err := suite.Lookup(suite.ID(opts.Suite))
	if err != nil {
		return nil, err
	}
	if n.Protector, err = phi.New(phi.Config{KMS: m, Hospital: opts.Hospital, Suite: s}); err != nil {
		return nil, err
	}
	n.Eraser = kmsEraser{m: m, hospital: opts.Hospital}
	if n.Signing, err = NewSigning(ctx, m, opts.Hospital); err != nil {
		return nil, err
	}
	pk, err := m.DeriveBlindIndexKey(ctx, opts.Hospital, 1, "AuditEvent", auditPseudonymLabel)
	if err != nil {
		return nil, err
	}
	if n.Pseudonyms, err = audit.NewPseudonymizer(s, pk.Key); err != nil {
		return nil, err
	}
	dk, err := m.DeriveBlindIndexKey(ctx, opts.Hospital, 1, "Bundle", deidProjectLabel)
	if err != nil {
		return nil, err
	}
	if n.DeidKeys, err = deid.DeriveKeys(suite.ID(opts.Suite), dk.Key); err != nil {
		return nil, err
	}
	ab, err := auditsqlite.Open(ctx, filepath.Join(opts.Dir, "audit.db"))
	if err != nil {
		return nil, err
	}
	n.closers = append(n.closers, ab.Close)
	l, err := audit.Open(ctx, ab, audit.Options{
		Origin: opts.Hospital + ".phix/audit", Signer: signer, Pseudonyms: n.Pseudonyms,
		Authorizer: AuditAuthorizer(opts.Auth), Logger: opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	n.Audit = l
	// The log is closed before its backend: closers run in reverse.
	n.closers = append(n.closers, l.Close)
	return n, nil
}

// Close closes the audit log (signing a final checkpoint) and the stores.
func (n *Node) Close() error {
	var errs []error
	for i := len(n.closers) - 1; i >= 0; i-- {
		errs = append(errs, n.closers[i]())
	}
	n.closers = nil
	return errors.Join(errs...)
}

// loadOrCreateMaster reads the base64 master key file, creating it (0600)
// with 32 random bytes when absent.
func loadOrCreateMaster(path string) (keyring.Master, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		k := make([]byte, keyring.MasterKeySize)
		if _, err := rand.Read(k); err != nil {
			return keyring.Master{}, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return keyring.Master{}, fmt.Errorf("create master key file: %w", err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return keyring.Master{}, werr
		}
	}
	return keyring.MasterKeyFromFile(path)
}

// kmsEraser destroys patient data keys through kms dual control.
type kmsEraser struct {
	m        *kms.Manager
	hospital string
}

func (e kmsEraser) ErasePatientKey(ctx context.Context, patientID string, approvals []kms.Approval) error {
	return e.m.DestroyDataKeyApproved(ctx, e.hospital, kms.KindPatient, patientID, approvals)
}

func (e kmsEraser) PatientKeyID(patientID string) (string, error) {
	return kms.DataKeyID(e.hospital, kms.KindPatient, patientID)
}
