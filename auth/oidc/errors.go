// Package oidc verifies bearer tokens (JWS-signed JWTs) issued by OpenID
// Connect providers: discovery through .well-known/openid-configuration, the
// provider's JWKS fetched and cached with key rotation, RS256/ES256/EdDSA
// (plus the SMART RS384/ES384) accepted, everything else refused.
//
// Every refusal is an *Error with a stable Code; its text never quotes the
// token or any claim value.
package oidc

import "errors"

// Code is a stable reason a token was refused.
type Code string

// The refusal codes.
const (
	CodeMalformed       Code = "token-malformed"            // not a compact JWS with a JSON header and claims
	CodeAlgNotAllowed   Code = "token-alg-not-allowed"      // alg none, HS*, or any alg not accepted
	CodeUnknownIssuer   Code = "token-unknown-issuer"       // iss is not a configured provider
	CodeUnknownKey      Code = "token-unknown-key"          // no key of the provider's JWKS has the token's kid
	CodeKeyMismatch     Code = "token-key-mismatch"         // the key's type does not fit alg (e.g. HS256 against an RSA key)
	CodeBadSignature    Code = "token-bad-signature"        // the signature does not verify
	CodeExpired         Code = "token-expired"              // exp is past (beyond leeway), or missing
	CodeNotYetValid     Code = "token-not-yet-valid"        // nbf or iat is in the future (beyond leeway)
	CodeWrongAudience   Code = "token-wrong-audience"       // aud does not name this resource server
	CodeProviderFailure Code = "token-provider-unavailable" // discovery or JWKS could not be fetched
	CodeTooLong         Code = "token-too-long"             // over MaxTokenBytes
	CodeLifetime        Code = "token-lifetime-too-long"    // exp - iat above the provider's MaxLifetime
)

// Error is a refusal. Detail is PHI- and token-free.
type Error struct {
	Code   Code
	Detail string
	Err    error // cause (not rendered); never holds the token
}

func (e *Error) Error() string {
	s := "oidc: " + string(e.Code)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// CodeOf returns the Code in err's chain, or "".
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func fail(c Code, detail string) *Error { return &Error{Code: c, Detail: detail} }
