package oidc

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"time"
)

// MaxTokenBytes bounds a token; longer ones are refused before any decoding.
const MaxTokenBytes = 16 << 10

// Header is the protected header of a compact JWS.
type Header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ,omitempty"`
	// Crit must be absent: no critical extension is understood.
	Crit []string `json:"crit,omitempty"`
}

// Audience is the aud claim: a string or an array of strings.
type Audience []string

// UnmarshalJSON accepts both forms.
func (a *Audience) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		var s []string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = s
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*a = Audience{s}
	return nil
}

// Contains reports whether aud names v.
func (a Audience) Contains(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

// NumericDate is a JWT time: seconds since the epoch (fractions allowed).
type NumericDate float64

// Time returns the date as a time.Time (zero when absent).
func (d NumericDate) Time() time.Time {
	if d == 0 {
		return time.Time{}
	}
	sec, frac := math.Modf(float64(d))
	return time.Unix(int64(sec), int64(frac*1e9))
}

// Claims are the registered claims phix reads plus the raw claim set.
type Claims struct {
	Issuer    string      `json:"iss"`
	Subject   string      `json:"sub"`
	Audience  Audience    `json:"aud"`
	Expiry    NumericDate `json:"exp"`
	NotBefore NumericDate `json:"nbf"`
	IssuedAt  NumericDate `json:"iat"`
	ID        string      `json:"jti"`
	ClientID  string      `json:"client_id"`
	// Scope is the space-separated scope claim (RFC 9068 / SMART); a
	// provider's "scp" array is joined into it.
	Scope string   `json:"scope"`
	Scp   []string `json:"scp"`
	// Raw holds every claim, for provider-specific ones (roles, org,
	// purpose of use).
	Raw map[string]json.RawMessage `json:"-"`
}

// Strings returns a claim that is a string or an array of strings.
func (c *Claims) Strings(name string) []string {
	raw, ok := c.Raw[name]
	if !ok {
		return nil
	}
	var a Audience
	if err := a.UnmarshalJSON(raw); err != nil {
		return nil
	}
	return a
}

// String returns a string claim ("" when absent or not a string).
func (c *Claims) String(name string) string {
	raw, ok := c.Raw[name]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// Parsed is a token split and decoded, its signature not yet checked.
type Parsed struct {
	Header Header
	Claims Claims
	// SigningInput is "header.payload", what the signature covers.
	SigningInput string
	Signature    []byte
}

// Parse splits a compact JWS and decodes its header and claims without
// verifying anything but the shape. Errors never quote the token.
func Parse(raw string) (*Parsed, error) {
	if len(raw) > MaxTokenBytes {
		return nil, fail(CodeTooLong, "token longer than 16 KiB")
	}
	h, rest, ok := strings.Cut(raw, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Contains(s, ".") || h == "" || p == "" {
		return nil, fail(CodeMalformed, "not a compact JWS (three dot-separated parts)")
	}
	hb, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return nil, fail(CodeMalformed, "header is not base64url")
	}
	out := &Parsed{SigningInput: h + "." + p}
	if err := strictObject(hb, &out.Header); err != nil {
		return nil, fail(CodeMalformed, "header is not a JSON object")
	}
	if out.Header.Alg == "" {
		return nil, fail(CodeMalformed, "header has no alg")
	}
	if len(out.Header.Crit) > 0 {
		return nil, fail(CodeMalformed, "header has critical extensions")
	}
	pb, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return nil, fail(CodeMalformed, "payload is not base64url")
	}
	if err := strictObject(pb, &out.Claims); err != nil {
		return nil, fail(CodeMalformed, "payload is not a JSON claim set")
	}
	if err := json.Unmarshal(pb, &out.Claims.Raw); err != nil {
		return nil, fail(CodeMalformed, "payload is not a JSON claim set")
	}
	if len(out.Claims.Scp) > 0 && out.Claims.Scope == "" {
		out.Claims.Scope = strings.Join(out.Claims.Scp, " ")
	}
	if out.Signature, err = base64.RawURLEncoding.DecodeString(s); err != nil {
		return nil, fail(CodeMalformed, "signature is not base64url")
	}
	return out, nil
}

// strictObject decodes a JSON object, refusing anything else and duplicate
// keys at the top level (a claim given twice is ambiguous: refuse it).
func strictObject(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return errNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return errNotObject
	}
	seen := map[string]bool{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := k.(string)
		if seen[key] {
			return errNotObject
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	if dec.More() {
		return errNotObject
	}
	if _, err := dec.Token(); err == nil {
		return errNotObject // trailing data
	}
	return json.Unmarshal(b, v)
}

var errNotObject = fail(CodeMalformed, "not a JSON object")
