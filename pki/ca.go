package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"sync/atomic"
	"time"
)

// Lifetimes and limits.
const (
	DefaultLifetime    = 24 * time.Hour
	DefaultMaxLifetime = 7 * 24 * time.Hour
	DefaultCRLValidity = 4 * time.Hour
	DefaultCAValidity  = 10 * 365 * 24 * time.Hour
	// Backdate is how far NotBefore is set before issuance, for clock skew.
	Backdate = time.Minute
)

// CAConfig describes a new CA certificate.
type CAConfig struct {
	// Name is the CA's common name; default "phix network CA".
	Name string
	// Validity of the CA certificate; default DefaultCAValidity.
	Validity time.Duration
	// No name constraints: Go's x509 verifier refuses every URI SAN
	// without a host (our urn:phix: identities) under any name constraint,
	// and peers are authenticated by identity URI and pin, never by host
	// name. See docs/pki.md.
}

// Options tunes a CA's issuance.
type Options struct {
	// Store receives the issuance log and revocations. Required.
	Store Store
	// DefaultLifetime of issued certificates (DefaultLifetime if zero).
	DefaultLifetime time.Duration
	// MaxLifetime caps requested lifetimes (DefaultMaxLifetime if zero).
	MaxLifetime time.Duration
	// CRLValidity is the gap between a CRL's this-update and next-update.
	CRLValidity time.Duration
	// Now is the CA's clock (time.Now if nil); tests move it.
	Now func() time.Time
}

// CA is the network certificate authority. It is safe for concurrent use.
type CA struct {
	cert  *x509.Certificate
	key   crypto.Signer
	pool  *x509.CertPool
	store Store
	opts  Options
	// revocations counts revocations made through this value, so CRLSource
	// knows to re-sign without reading the store on every handshake.
	revocations atomic.Uint64
}

// NewCA generates a P-256 CA key and a self-signed CA certificate.
func NewCA(cfg CAConfig, opts Options) (*CA, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, wrap(CodeBadRequest, err, "generate CA key")
	}
	if cfg.Name == "" {
		cfg.Name = "phix network CA"
	}
	if cfg.Validity <= 0 {
		cfg.Validity = DefaultCAValidity
	}
	now := nowFunc(opts.Now)()
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cfg.Name, Organization: []string{"phix network"}},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(cfg.Validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true, // no intermediates: see docs/pki.md
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, wrap(CodeBadRequest, err, "create CA certificate")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, wrap(CodeBadRequest, err, "parse CA certificate")
	}
	ca, err := LoadCA(cert, key, opts)
	if err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

// LoadCA makes a CA from an existing certificate and its key.
func LoadCA(cert *x509.Certificate, key crypto.Signer, opts Options) (*CA, error) {
	if opts.Store == nil {
		return nil, errorf(CodeBadRequest, "CA needs a Store for its issuance log")
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 || cert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, errorf(CodeBadCert, "certificate is not a CA that signs certificates and CRLs")
	}
	pin, err := PublicKeyPin(key.Public())
	if err != nil || pin != SPKIHash(cert) {
		return nil, errorf(CodeKeyFile, "CA key does not match the CA certificate")
	}
	if opts.DefaultLifetime <= 0 {
		opts.DefaultLifetime = DefaultLifetime
	}
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = DefaultMaxLifetime
	}
	if opts.CRLValidity <= 0 {
		opts.CRLValidity = DefaultCRLValidity
	}
	opts.Now = nowFunc(opts.Now)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, pool: pool, store: opts.Store, opts: opts}, nil
}

func nowFunc(f func() time.Time) func() time.Time {
	if f == nil {
		return time.Now
	}
	return f
}

// Certificate returns the CA certificate (the network trust anchor).
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertificatePEM returns the CA certificate as PEM.
func (ca *CA) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// Pool returns a pool holding only the CA certificate.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// Store returns the CA's issuance log.
func (ca *CA) Store() Store { return ca.store }

// IssueRequest asks for a certificate. Give exactly one of PublicKey and CSR.
type IssueRequest struct {
	Principal Principal
	// PublicKey is the subject key: *ecdsa.PublicKey (P-256 or P-384) or ed25519.PublicKey.
	PublicKey crypto.PublicKey
	// CSR supplies the key instead; its signature is checked and its
	// names are ignored (the CA decides names from the request fields).
	CSR *x509.CertificateRequest
	// DNSNames and IPAddresses are the endpoint's names (127.0.0.1 on the dev network).
	DNSNames    []string
	IPAddresses []net.IP
	// Lifetime, capped at the CA's MaxLifetime; the default if zero.
	Lifetime time.Duration

	kind   string
	renews string
}

// Issued is an issued certificate.
type Issued struct {
	Certificate *x509.Certificate
	// CertPEM is the leaf certificate as PEM.
	CertPEM []byte
	// Pin is the SPKI hash the registry must hold for the principal.
	Pin string
	// Serial is the lowercase hex serial number.
	Serial string
	// PinChanged is set by Renew when the key (and so the pin) changed.
	PinChanged bool
}

// TLSCertificate pairs the issued leaf with its private key for tls.Config.
func (is *Issued) TLSCertificate(key crypto.Signer) *tls.Certificate {
	return &tls.Certificate{Certificate: [][]byte{is.Certificate.Raw}, PrivateKey: key, Leaf: is.Certificate}
}

// Issue signs a certificate for req and records it in the issuance log
// before returning it: a certificate the log does not know is never handed out.
func (ca *CA) Issue(ctx context.Context, req IssueRequest) (*Issued, error) {
	if err := req.Principal.Validate(); err != nil {
		return nil, err
	}
	pub := req.PublicKey
	if req.CSR != nil {
		if pub != nil {
			return nil, errorf(CodeBadRequest, "give a public key or a CSR, not both")
		}
		if err := req.CSR.CheckSignature(); err != nil {
			return nil, wrap(CodeBadRequest, err, "CSR signature")
		}
		pub = req.CSR.PublicKey
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	for _, d := range req.DNSNames {
		if !validDNSName(d) {
			return nil, errorf(CodeBadRequest, "bad DNS name %q", d)
		}
	}
	for _, ip := range req.IPAddresses {
		if ip == nil || (ip.To4() == nil && ip.To16() == nil) {
			return nil, errorf(CodeBadRequest, "bad IP address")
		}
	}
	life := req.Lifetime
	if life == 0 {
		life = ca.opts.DefaultLifetime
	}
	if life < 0 {
		return nil, errorf(CodeBadRequest, "lifetime must be positive")
	}
	if life > ca.opts.MaxLifetime {
		return nil, errorf(CodeBadRequest, "lifetime %s exceeds the CA cap %s", life, ca.opts.MaxLifetime)
	}
	now := ca.opts.Now()
	notAfter := now.Add(life)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	uri, _ := url.Parse(req.Principal.URI())
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         req.Principal.ID,
			OrganizationalUnit: []string{string(req.Principal.Role)},
			Organization:       []string{"phix network"},
		},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPAddresses,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, wrap(CodeBadRequest, err, "sign certificate")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, wrap(CodeBadRequest, err, "parse issued certificate")
	}
	kind := req.kind
	if kind == "" {
		kind = "issue"
	}
	rec := IssuedRecord{
		Serial: SerialString(cert.SerialNumber), Kind: kind, Principal: req.Principal.URI(),
		Pin: SPKIHash(cert), DNSNames: req.DNSNames, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
		IssuedAt: now.UTC(), Renews: req.renews,
	}
	for _, ip := range req.IPAddresses {
		rec.IPs = append(rec.IPs, ip.String())
	}
	if err := ca.store.AppendIssued(ctx, rec); err != nil {
		return nil, err
	}
	return &Issued{
		Certificate: cert,
		CertPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Pin:         rec.Pin,
		Serial:      rec.Serial,
	}, nil
}

// IssueWithNewKey generates a P-256 key and issues for it.
func (ca *CA) IssueWithNewKey(ctx context.Context, req IssueRequest) (*Issued, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, wrap(CodeBadRequest, err, "generate key")
	}
	req.PublicKey, req.CSR = key.Public(), nil
	is, err := ca.Issue(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	return is, key, nil
}

// Renew re-issues current (a certificate this CA issued, not revoked, not yet
// expired) with the same principal and names. newKey nil keeps the key and so
// the pin; a new key changes the pin (Issued.PinChanged), which the registry
// must learn before the new certificate is used.
func (ca *CA) Renew(ctx context.Context, current *x509.Certificate, newKey crypto.PublicKey, lifetime time.Duration) (*Issued, error) {
	if current == nil {
		return nil, errorf(CodeBadRequest, "no certificate to renew")
	}
	if err := current.CheckSignatureFrom(ca.cert); err != nil {
		return nil, errorf(CodeUntrusted, "certificate was not issued by this CA")
	}
	serial := SerialString(current.SerialNumber)
	if _, ok, err := ca.store.Issued(ctx, serial); err != nil {
		return nil, err
	} else if !ok {
		return nil, errorf(CodeUnknownSerial, "serial %s is not in the issuance log", serial)
	}
	if ca.opts.Now().After(current.NotAfter) {
		return nil, errorf(CodeExpired, "certificate %s has expired: issue a new one instead", serial)
	}
	revoked, err := ca.isRevoked(ctx, serial)
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, errorf(CodeRevoked, "certificate %s is revoked", serial)
	}
	p, err := principalOfURIs(current.URIs)
	if err != nil {
		return nil, err
	}
	req := IssueRequest{
		Principal: p, PublicKey: newKey, DNSNames: current.DNSNames, IPAddresses: current.IPAddresses,
		Lifetime: lifetime, kind: "renew", renews: serial,
	}
	if newKey == nil {
		req.PublicKey = current.PublicKey
	}
	is, err := ca.Issue(ctx, req)
	if err != nil {
		return nil, err
	}
	is.PinChanged = is.Pin != SPKIHash(current)
	return is, nil
}

func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return errorf(CodeBadRequest, "ECDSA keys must be P-256 or P-384")
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return errorf(CodeBadRequest, "bad Ed25519 key")
		}
	case nil:
		return errorf(CodeBadRequest, "no public key")
	default:
		return errorf(CodeBadRequest, "key type %T not allowed: use ECDSA P-256/P-384 or Ed25519", pub)
	}
	return nil
}

func validDNSName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	label := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			label++
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		default:
			return false
		}
		if label > 63 {
			return false
		}
	}
	return label > 0
}

// randomSerial returns a random positive 128-bit serial (RFC 5280: at most
// 20 octets, positive; CA/B Forum: at least 64 bits of randomness).
func randomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, wrap(CodeBadRequest, err, "random serial")
		}
		n := new(big.Int).SetBytes(b)
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// SerialString is the canonical serial form: lowercase hex, no leading zeros.
func SerialString(n *big.Int) string { return n.Text(16) }

// ParseSerial reads a serial in hex, tolerating a 0x prefix, colons and case.
func ParseSerial(s string) (*big.Int, error) {
	clean := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			clean = append(clean, s[i])
		}
	}
	t := string(clean)
	if len(t) > 2 && (t[:2] == "0x" || t[:2] == "0X") {
		t = t[2:]
	}
	if len(t) == 0 || len(t) > 40 {
		return nil, errorf(CodeBadRequest, "serial must be 1 to 40 hex digits")
	}
	n, ok := new(big.Int).SetString(t, 16)
	if !ok || n.Sign() <= 0 {
		return nil, errorf(CodeBadRequest, "serial is not positive hex")
	}
	return n, nil
}
