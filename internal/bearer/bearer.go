// Package bearer reads RFC 6750 bearer tokens from requests, for the FHIR
// server's authenticators and the authorization server's userinfo.
package bearer

import (
	"net/http"
	"strings"
)

// Token extracts the token of an "Authorization: Bearer" header (the
// scheme is case-insensitive); ok is false without one.
func Token(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	t := strings.TrimSpace(h[len(prefix):])
	return t, t != ""
}
