package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"sync/atomic"
	"time"
)

// Renewer holds the current certificate of a server or client and replaces
// it before it expires, with no restart: its GetCertificate and
// GetClientCertificate read the current certificate on every handshake.
type Renewer struct {
	obtain   func(ctx context.Context) (*tls.Certificate, error)
	cur      atomic.Pointer[tls.Certificate]
	renewAt  atomic.Int64 // unix nanoseconds
	fraction float64
	now      func() time.Time
	// OnRenew, if set before Run, is called after each successful swap (or
	// with the error of a failed attempt). Keep it cheap.
	OnRenew func(cert *tls.Certificate, err error)
}

// RenewFraction is the share of a certificate's remaining lifetime, at the
// time it was obtained, after which the Renewer fetches the next one.
const RenewFraction = 2.0 / 3.0

// NewRenewer obtains the first certificate. obtain must return a
// certificate with Leaf set (or a parsable Certificate[0]); it is typically
// a call to the CA, or a load of freshly written files.
func NewRenewer(ctx context.Context, obtain func(ctx context.Context) (*tls.Certificate, error)) (*Renewer, error) {
	r := &Renewer{obtain: obtain, fraction: RenewFraction, now: time.Now}
	if err := r.renew(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Renewer) renew(ctx context.Context) error {
	c, err := r.obtain(ctx)
	if err != nil {
		return err
	}
	if c == nil || len(c.Certificate) == 0 {
		return errorf(CodeBadCert, "renewal produced no certificate")
	}
	if c.Leaf == nil {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return wrap(CodeBadCert, err, "renewed certificate")
		}
		c.Leaf = leaf
	}
	now := r.now()
	if !now.Before(c.Leaf.NotAfter) {
		return errorf(CodeExpired, "renewal produced an expired certificate")
	}
	at := now.Add(time.Duration(float64(c.Leaf.NotAfter.Sub(now)) * r.fraction))
	r.cur.Store(c)
	r.renewAt.Store(at.UnixNano())
	return nil
}

// Current returns the certificate in use.
func (r *Renewer) Current() *tls.Certificate { return r.cur.Load() }

// RenewAt is when the next renewal is due.
func (r *Renewer) RenewAt() time.Time { return time.Unix(0, r.renewAt.Load()) }

// GetCertificate is for tls.Config.GetCertificate.
func (r *Renewer) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// GetClientCertificate is for tls.Config.GetClientCertificate.
func (r *Renewer) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// Run renews until ctx ends. A failed attempt is retried after a tenth of
// the time left (between 1s and 1 min), so a CA outage shorter than the last
// third of a lifetime goes unnoticed by peers. Run returns ctx.Err().
func (r *Renewer) Run(ctx context.Context) error {
	for {
		wait := time.Until(r.RenewAt())
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		err := r.renew(ctx)
		if r.OnRenew != nil {
			r.OnRenew(r.cur.Load(), err)
		}
		if err != nil {
			left := r.cur.Load().Leaf.NotAfter.Sub(r.now())
			retry := min(max(left/10, time.Second), time.Minute)
			r.renewAt.Store(r.now().Add(retry).UnixNano())
		}
	}
}
