package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
)

// ServerConfig configures ServerTLSConfig.
type ServerConfig struct {
	// Verifier checks every client. Required.
	Verifier *Verifier
	// GetCertificate supplies the server's own certificate, e.g. Renewer.GetCertificate. Required.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Roles a client may have; hospitals only if empty.
	Roles []Role
	// ClaimedPeer, if set, names the identity a connection claims, from the
	// handshake (typically a registry look-up of the SNI name, e.g.
	// "hospital-a.peers.phix"). When it reports ok, the client certificate
	// must be exactly that principal.
	ClaimedPeer func(cs tls.ConnectionState) (Principal, bool)
	// OnReject, if set, is told of every refused client with the stable
	// code; the error holds no key material and no PHI (for audit and metrics).
	OnReject func(cs tls.ConnectionState, err error)
}

// ServerTLSConfig returns a TLS 1.3-only server configuration that demands a
// client certificate and accepts it only if cfg.Verifier does.
//
// ClientAuth is RequireAnyClientCert, not RequireAndVerifyClientCert, on
// purpose: the Verifier does the same chain verification against the
// network CA (never the system roots) itself, so that every refusal carries
// a stable code instead of a generic x509 error. No client reaches a
// handler without passing it.
func ServerTLSConfig(cfg ServerConfig) (*tls.Config, error) {
	if cfg.Verifier == nil || cfg.GetCertificate == nil {
		return nil, errorf(CodeBadRequest, "server TLS needs a Verifier and GetCertificate")
	}
	roles := cfg.Roles
	if len(roles) == 0 {
		roles = []Role{RoleHospital}
	}
	byRole := ExpectRole(roles...)
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		MaxVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequireAnyClientCert,
		GetCertificate: cfg.GetCertificate,
		VerifyConnection: func(cs tls.ConnectionState) error {
			want := byRole
			if cfg.ClaimedPeer != nil {
				if claimed, ok := cfg.ClaimedPeer(cs); ok {
					want = func(p Principal) error {
						if err := byRole(p); err != nil {
							return err
						}
						return ExpectPrincipal(claimed)(p)
					}
				}
			}
			_, err := cfg.Verifier.Verify(context.Background(), cs.PeerCertificates, x509.ExtKeyUsageClientAuth, want)
			if err != nil && cfg.OnReject != nil {
				cfg.OnReject(cs, err)
			}
			return err
		},
	}, nil
}

// ClientConfig configures ClientTLSConfig.
type ClientConfig struct {
	// Verifier checks the server. Required.
	Verifier *Verifier
	// GetClientCertificate supplies this party's certificate, e.g.
	// Renewer.GetClientCertificate. Required.
	GetClientCertificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	// Server is the identity the server must prove, e.g. Coordinator("cn-east").
	Server Principal
	// ServerName is sent as SNI (optional).
	ServerName string
}

// ClientTLSConfig returns a TLS 1.3-only client configuration that presents
// a client certificate and accepts the server only if it is cfg.Server and
// passes cfg.Verifier. Go's built-in server verification (system roots and
// host names) is switched off and replaced by the Verifier, which checks
// the chain against the network CA and the identity URI instead of a host
// name: the pin and the identity are what authenticate a phix server.
func ClientTLSConfig(cfg ClientConfig) (*tls.Config, error) {
	if cfg.Verifier == nil || cfg.GetClientCertificate == nil {
		return nil, errorf(CodeBadRequest, "client TLS needs a Verifier and GetClientCertificate")
	}
	if err := cfg.Server.Validate(); err != nil {
		return nil, err
	}
	want := ExpectPrincipal(cfg.Server)
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		MaxVersion:           tls.VersionTLS13,
		ServerName:           cfg.ServerName,
		GetClientCertificate: cfg.GetClientCertificate,
		InsecureSkipVerify:   true, // replaced by VerifyConnection below, which always runs
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := cfg.Verifier.Verify(context.Background(), cs.PeerCertificates, x509.ExtKeyUsageServerAuth, want)
			return err
		},
	}, nil
}

// PeerPrincipal returns the verified peer identity of a request served with
// ServerTLSConfig (the handshake already refused anything else).
func PeerPrincipal(r *http.Request) (Principal, bool) {
	if r == nil || r.TLS == nil || !r.TLS.HandshakeComplete || len(r.TLS.PeerCertificates) == 0 {
		return Principal{}, false
	}
	p, err := principalOfURIs(r.TLS.PeerCertificates[0].URIs)
	if err != nil {
		return Principal{}, false
	}
	return p, true
}

// PeerHospital returns the hospital id of the verified client of r.
func PeerHospital(r *http.Request) (string, bool) {
	p, ok := PeerPrincipal(r)
	if !ok || p.Role != RoleHospital {
		return "", false
	}
	return p.ID, true
}

// RequireHospital checks that the verified client of r is the hospital the
// request claims to act for (a path segment, a header, a body field), and
// returns a PKI-WRONG-HOSPITAL error if not.
func RequireHospital(r *http.Request, claimed string) error {
	id, ok := PeerHospital(r)
	if !ok {
		return errorf(CodeNoIdentity, "request has no verified hospital identity")
	}
	if id != claimed {
		return errorf(CodeWrongHospital, "client is hospital %s, request claims %s", id, claimed)
	}
	return nil
}
