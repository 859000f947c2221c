package pki

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"sync"
	"time"
)

// RFC 5280 CRLReason codes accepted by RevokeCertificate.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
)

// ReasonNames maps CLI names to reason codes.
var ReasonNames = map[string]int{
	"unspecified": ReasonUnspecified, "keyCompromise": ReasonKeyCompromise,
	"affiliationChanged": ReasonAffiliationChanged, "superseded": ReasonSuperseded,
	"cessationOfOperation": ReasonCessationOfOperation, "certificateHold": ReasonCertificateHold,
}

// RevokeCertificate records serial as revoked. The serial must be in the
// issuance log; revoking twice is a no-op. The next CRL carries it.
func (ca *CA) RevokeCertificate(ctx context.Context, serial *big.Int, reason int) error {
	if serial == nil || serial.Sign() <= 0 {
		return errorf(CodeBadRequest, "serial must be positive")
	}
	switch reason {
	case ReasonUnspecified, ReasonKeyCompromise, ReasonAffiliationChanged, ReasonSuperseded,
		ReasonCessationOfOperation, ReasonCertificateHold:
	default:
		return errorf(CodeBadRequest, "unsupported revocation reason %d", reason)
	}
	s := SerialString(serial)
	if _, ok, err := ca.store.Issued(ctx, s); err != nil {
		return err
	} else if !ok {
		return errorf(CodeUnknownSerial, "serial %s was not issued by this CA", s)
	}
	if done, err := ca.isRevoked(ctx, s); err != nil || done {
		return err
	}
	if err := ca.store.AppendRevoked(ctx, RevokedRecord{Serial: s, Reason: reason, RevokedAt: ca.opts.Now().UTC()}); err != nil {
		return err
	}
	ca.revocations.Add(1)
	return nil
}

func (ca *CA) isRevoked(ctx context.Context, serial string) (bool, error) {
	rs, err := ca.store.Revoked(ctx)
	if err != nil {
		return false, err
	}
	for _, r := range rs {
		if r.Serial == serial {
			return true, nil
		}
	}
	return false, nil
}

// CRL returns a freshly signed X.509 CRL (DER) of every revocation, valid
// from now until now+CRLValidity. Its number is the signing time in
// nanoseconds, so numbers increase across restarts and replicas.
func (ca *CA) CRL(ctx context.Context) ([]byte, error) {
	rs, err := ca.store.Revoked(ctx)
	if err != nil {
		return nil, err
	}
	now := ca.opts.Now()
	entries := make([]x509.RevocationListEntry, 0, len(rs))
	for _, r := range rs {
		n, err := ParseSerial(r.Serial)
		if err != nil {
			continue
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: r.RevokedAt, ReasonCode: r.Reason})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(now.UnixNano()),
		ThisUpdate:                now.Add(-Backdate),
		NextUpdate:                now.Add(ca.opts.CRLValidity),
		RevokedCertificateEntries: entries,
	}, ca.cert, ca.key)
	if err != nil {
		return nil, wrap(CodeCRLInvalid, err, "sign CRL")
	}
	return der, nil
}

// CRLSource yields the current CRL, DER or PEM. The verifier calls it on
// every handshake and re-parses only when the bytes change.
type CRLSource func(ctx context.Context) ([]byte, error)

// CRLSource returns a source that serves this CA's CRL, re-signing when
// half of the current one's validity has passed and at once after a
// revocation through this CA value. Revocations made by another process
// (the CLI) reach it at the next re-signing; publish a CRL file for
// immediate effect.
func (ca *CA) CRLSource() CRLSource {
	var mu sync.Mutex
	var cur []byte
	var refresh time.Time
	var gen uint64
	return func(ctx context.Context) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		g := ca.revocations.Load()
		if cur == nil || ca.opts.Now().After(refresh) || g != gen {
			der, err := ca.CRL(ctx)
			if err != nil {
				return nil, err
			}
			cur, gen, refresh = der, g, ca.opts.Now().Add(ca.opts.CRLValidity/2)
		}
		return cur, nil
	}
}

// CRLFile is a source reading path (DER or PEM), re-read when its size or
// modification time changes, so an operator can drop in a new CRL.
func CRLFile(path string) CRLSource {
	var mu sync.Mutex
	var cur []byte
	var mod time.Time
	var size int64 = -1
	return func(context.Context) ([]byte, error) {
		st, err := os.Stat(path)
		if err != nil {
			return nil, wrap(CodeCRLInvalid, err, "CRL file")
		}
		mu.Lock()
		defer mu.Unlock()
		if cur != nil && st.ModTime().Equal(mod) && st.Size() == size {
			return cur, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, wrap(CodeCRLInvalid, err, "CRL file")
		}
		cur, mod, size = b, st.ModTime(), st.Size()
		return cur, nil
	}
}

// EncodeCRLPEM wraps a DER CRL in PEM.
func EncodeCRLPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// crlState is a verified CRL, ready for lookups.
type crlState struct {
	raw        []byte
	nextUpdate time.Time
	revoked    map[string]struct{}
}

// loadCRL parses raw (DER or PEM) and checks it is signed by ca.
func loadCRL(raw []byte, ca *x509.Certificate) (*crlState, error) {
	der := raw
	if b, _ := pem.Decode(raw); b != nil {
		if b.Type != "X509 CRL" {
			return nil, errorf(CodeCRLInvalid, "PEM block is %q, not X509 CRL", b.Type)
		}
		der = b.Bytes
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, wrap(CodeCRLInvalid, err, "parse CRL")
	}
	if !bytes.Equal(rl.RawIssuer, ca.RawSubject) {
		return nil, errorf(CodeCRLInvalid, "CRL is not from the network CA")
	}
	if err := rl.CheckSignatureFrom(ca); err != nil {
		return nil, errorf(CodeCRLInvalid, "CRL signature does not verify against the network CA")
	}
	if rl.NextUpdate.IsZero() {
		return nil, errorf(CodeCRLInvalid, "CRL has no next update")
	}
	st := &crlState{raw: raw, nextUpdate: rl.NextUpdate, revoked: make(map[string]struct{}, len(rl.RevokedCertificateEntries))}
	for _, e := range rl.RevokedCertificateEntries {
		if e.SerialNumber != nil {
			st.revoked[SerialString(e.SerialNumber)] = struct{}{}
		}
	}
	return st, nil
}
