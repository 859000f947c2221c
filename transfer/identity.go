package transfer

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"net/http"
	"strings"

	"phix/audit"
	"phix/pki"
)

// Identifier names the hospital behind a request and its certificate
// fingerprint (lowercase hex SHA-256 of the leaf certificate).
type Identifier interface {
	Identify(r *http.Request) (hospitalID, certFP string, err error)
}

// TLSIdentifier reads the identity of a client verified by pki's mutual TLS
// (pki.ServerTLSConfig): the urn:phix:hospital:<id> URI of the leaf.
type TLSIdentifier struct{}

// Identify implements Identifier.
func (TLSIdentifier) Identify(r *http.Request) (string, string, error) {
	id, ok := pki.PeerHospital(r)
	if !ok || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", "", errf(http.StatusUnauthorized, CodeUnauthenticated, "Unauthenticated", "a verified hospital client certificate is required")
	}
	sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
	return id, hex.EncodeToString(sum[:]), nil
}

// Auditor records audit events; *audit.Log implements it.
type Auditor interface {
	Append(ctx context.Context, ev audit.Event) (int64, error)
}

func remoteIP(r *http.Request) net.IP {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return net.ParseIP(host)
}

func inNetworks(ip net.IP, cidrs []string) bool {
	if ip == nil {
		return false
	}
	for _, c := range cidrs {
		if _, n, err := net.ParseCIDR(c); err == nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// PeerSNISuffix ends the TLS server name a hospital client may send to say
// which hospital it connects as ("hospital-a.peers.phix").
const PeerSNISuffix = ".peers.phix"

// ClaimedPeerFromSNI is a pki.ServerConfig.ClaimedPeer: a client that names a
// hospital in its SNI must present exactly that hospital's certificate, so a
// gateway configured for one hospital can never act under another's
// certificate by mistake.
func ClaimedPeerFromSNI(cs tls.ConnectionState) (pki.Principal, bool) {
	id, ok := strings.CutSuffix(cs.ServerName, PeerSNISuffix)
	if !ok || pki.ValidateID(id) != nil {
		return pki.Principal{}, false
	}
	return pki.Hospital(id), true
}
