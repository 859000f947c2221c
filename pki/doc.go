// Package pki is the phix network PKI: a certificate authority for hospital
// and coordinator certificates, short lifetimes with live renewal, X.509 CRLs,
// SPKI pinning, CA-signed bindings of suite signing keys, and the mutual TLS
// verification that coordinator and gateways use.
//
// Trust is narrow on purpose. A peer is accepted only if its certificate
// chains to the network CA (never the system roots), is within its validity,
// is not on a fresh CA-signed CRL, carries exactly one phix identity URI
// (urn:phix:hospital:<id> or urn:phix:coordinator:<id>), is the identity the
// caller expects, and its SPKI hash is pinned for that identity in a PinStore.
// Each failure has its own stable code (see Code).
//
// TLS keys are ECDSA P-256: every TLS 1.3 stack in a hospital accepts it and
// Go's implementation is constant time and fast; Ed25519 certificates are
// accepted by Issue for peers that bring their own key. See docs/pki.md.
package pki
