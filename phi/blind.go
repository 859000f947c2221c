package phi

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"phix/errcode"
	"phix/fhir"
	"phix/fhir/search"
)

// Blinded are the search parameters whose values are replaced by blind
// tokens. Every other parameter is indexed from the sealed form, where PHI
// is absent.
var Blinded = map[string]search.Type{
	"name": search.TypeString, "family": search.TypeString, "given": search.TypeString,
	"address-city": search.TypeString, "address-postalcode": search.TypeString,
	"identifier": search.TypeToken, "telecom": search.TypeToken, "phone": search.TypeToken, "email": search.TypeToken,
	"birthdate": search.TypeDate,
}

const (
	// maxPrefixRunes bounds the prefix tokens per value.
	maxPrefixRunes = 32
	// MaxDateTokens bounds the tokens a birthdate range expands to.
	MaxDateTokens = 400
	tokenBytes    = 16
)

// minBirthYear clips open-ended birthdate ranges from below.
const minBirthYear = 1850

func (p *Protector) blindKey(ctx context.Context, typ, param string) ([]byte, error) {
	ck := typ + "\x00" + param
	if v, ok := p.blind.get(ck); ok {
		return v.([]byte), nil
	}
	dk, err := p.cfg.KMS.DeriveBlindIndexKey(ctx, p.cfg.Hospital, 0, typ, param)
	if err != nil {
		return nil, fmt.Errorf("phi: blind index key: %w", err)
	}
	p.blind.put(ck, dk.Key)
	return dk.Key, nil
}

func (p *Protector) token(key []byte, kind, v string) string {
	h := p.cfg.Suite.NewMAC(key)
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(v))
	return hex.EncodeToString(h.Sum(nil)[:tokenBytes])
}

// normToken normalises a blinded token value the same way at index and
// query time: identifiers exactly (trimmed); contact points as normContact.
func normToken(param, v string) string {
	if param == "identifier" {
		return strings.TrimSpace(v)
	}
	return normContact(v)
}

// normContact makes phone numbers digits only and e-mail addresses lower
// case; any other contact value (a URL, a pager id) is kept as given, since
// stripping it to digits would make unrelated values collide.
func normContact(v string) string {
	v = strings.TrimSpace(v)
	if strings.Contains(v, "@") {
		return strings.ToLower(v)
	}
	var b strings.Builder
	for _, c := range v {
		switch {
		case c >= '0' && c <= '9':
			b.WriteRune(c)
		case strings.ContainsRune(" +-().", c):
		default:
			return v // not a phone number
		}
	}
	if b.Len() == 0 {
		return v
	}
	return b.String()
}

func runesPrefix(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// entries returns the index entries of a stored resource: clear entries
// of the sealed form for every parameter but the blinded ones, and blind
// tokens of the plaintext for those.
func (p *Protector) entries(ctx context.Context, plain, sealed *fhir.Resource) ([]search.Entry, error) {
	var out []search.Entry
	for _, e := range search.Extract(sealed) {
		if _, b := Blinded[e.Param]; !b {
			out = append(out, e)
		}
	}
	for _, prm := range search.Params(plain.Type) {
		if _, b := Blinded[prm.Code]; !b {
			continue
		}
		vals := search.ExtractParam(plain, prm)
		if len(vals) == 0 {
			continue
		}
		key, err := p.blindKey(ctx, plain.Type, prm.Code)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		add := func(e search.Entry) {
			k := e.Str + "|" + e.Exact + "|" + e.System + "|" + e.Code
			if !seen[k] {
				seen[k] = true
				out = append(out, e)
			}
		}
		for _, v := range vals {
			switch prm.Type {
			case search.TypeString:
				n := len([]rune(v.Str))
				if n > maxPrefixRunes {
					n = maxPrefixRunes
				}
				for i := 1; i <= n; i++ {
					e := search.Entry{Param: prm.Code, Type: search.TypeString, Str: p.token(key, "p", runesPrefix(v.Str, i))}
					if i == n {
						e.Exact = p.token(key, "x", v.Exact)
					}
					add(e)
				}
			case search.TypeToken:
				if v.Code == "" {
					continue
				}
				add(search.Entry{Param: prm.Code, Type: search.TypeToken, System: v.System, Code: p.token(key, "c", normToken(prm.Code, v.Code))})
			case search.TypeDate:
				for _, t := range dateTokens(v.Lo, v.Hi) {
					add(search.Entry{Param: prm.Code, Type: search.TypeToken, Code: p.token(key, "d", t)})
				}
			}
		}
	}
	return out, nil
}

// dateTokens gives the precision tokens of a stored date: year, month and day
// as far as the value's precision goes.
func dateTokens(lo, hi time.Time) []string {
	lo = lo.UTC()
	span := hi.Sub(lo)
	ts := []string{lo.Format("2006")}
	if span < 32*24*time.Hour {
		ts = append(ts, lo.Format("2006-01"))
	}
	if span < 2*24*time.Hour {
		ts = append(ts, lo.Format("2006-01-02"))
	}
	return ts
}

// BlindQuery rewrites q's clauses on blinded parameters into blind tokens, in
// place: a string value becomes its prefix token (an exact match on the
// prefix), :exact the exact token; token values their keyed token; a
// birthdate value an OR over the year/month/day tokens covering its range
// (at most MaxDateTokens). Modifiers that cannot run on tokens (:contains,
// :text, :above, :below, date :missing stays) are refused with PHI-6006.
func (p *Protector) BlindQuery(ctx context.Context, q *search.Query) error {
	for ci := range q.Clauses {
		c := &q.Clauses[ci]
		if c.Param == nil {
			continue
		}
		if _, b := Blinded[c.Param.Code]; !b || c.Modifier == "missing" {
			if b && c.Param.Type == search.TypeDate {
				c.Param = tokenParam(c.Param)
			}
			continue
		}
		typ := q.Type
		if typ == "" {
			return errcode.New(errcode.PHIEncryptionRequired, "parameter %s on encrypted data needs a resource type", c.Param.Code)
		}
		key, err := p.blindKey(ctx, typ, c.Param.Code)
		if err != nil {
			return err
		}
		switch c.Param.Type {
		case search.TypeString:
			if c.Modifier != "" && c.Modifier != "exact" {
				return errcode.New(errcode.PHIEncryptionRequired, "modifier :%s is not supported on encrypted parameter %s", c.Modifier, c.Param.Code)
			}
			for i := range c.Values {
				v := &c.Values[i]
				if c.Modifier == "exact" {
					v.Raw = p.token(key, "x", v.Raw)
					v.Str = v.Raw
					continue
				}
				v.Str = p.token(key, "p", runesPrefix(v.Str, maxPrefixRunes))
				v.Raw = ""
			}
		case search.TypeToken:
			if c.Modifier != "" && c.Modifier != "not" {
				return errcode.New(errcode.PHIEncryptionRequired, "modifier :%s is not supported on encrypted parameter %s", c.Modifier, c.Param.Code)
			}
			for i := range c.Values {
				v := &c.Values[i]
				if v.Code != "" {
					v.Code = p.token(key, "c", normToken(c.Param.Code, v.Code))
				}
				v.Raw = ""
			}
		case search.TypeDate:
			if c.Modifier != "" {
				return errcode.New(errcode.PHIEncryptionRequired, "modifier :%s is not supported on encrypted parameter %s", c.Modifier, c.Param.Code)
			}
			var vals []search.Value
			for _, v := range c.Values {
				ts, err := coverRange(v, p.cfg.Now())
				if err != nil {
					return err
				}
				for _, t := range ts {
					vals = append(vals, search.Value{Raw: "", Code: p.token(key, "d", t)})
				}
				if len(vals) > MaxDateTokens {
					return errcode.New(errcode.PHIEncryptionRequired, "birthdate range too wide for encrypted search (more than %d tokens)", MaxDateTokens)
				}
			}
			c.Param = tokenParam(c.Param)
			c.Values = vals
		}
	}
	return nil
}

func tokenParam(p *search.Param) *search.Param {
	c := *p
	c.Type = search.TypeToken
	return &c
}

// coverRange maps a date search value to the fewest year/month/day tokens
// whose union is the days the value selects. Open ends are clipped to
// [minBirthYear, now+1 year].
func coverRange(v search.Value, now time.Time) ([]string, error) {
	day := func(t time.Time) time.Time {
		t = t.UTC()
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	minD := time.Date(minBirthYear, 1, 1, 0, 0, 0, 0, time.UTC)
	maxD := time.Date(now.Year()+1, 12, 31, 0, 0, 0, 0, time.UTC)
	lo, hi := day(v.Lo), day(v.Hi)
	switch v.Prefix {
	case search.PrefixEq, "":
	case search.PrefixGe:
		hi = maxD
	case search.PrefixGt, search.PrefixSa:
		lo, hi = hi.AddDate(0, 0, 1), maxD
	case search.PrefixLe:
		lo = minD
	case search.PrefixLt, search.PrefixEb:
		lo, hi = minD, lo.AddDate(0, 0, -1)
	default:
		return nil, errcode.New(errcode.PHIEncryptionRequired, "prefix %s is not supported on encrypted birthdate", v.Prefix)
	}
	if lo.Before(minD) {
		lo = minD
	}
	if hi.After(maxD) {
		hi = maxD
	}
	var ts []string
	for d := lo; !d.After(hi); {
		switch {
		case d.Month() == 1 && d.Day() == 1 && !d.AddDate(1, 0, -1).After(hi):
			ts = append(ts, d.Format("2006"))
			d = d.AddDate(1, 0, 0)
		case d.Day() == 1 && !d.AddDate(0, 1, -1).After(hi):
			ts = append(ts, d.Format("2006-01"))
			d = d.AddDate(0, 1, 0)
		default:
			ts = append(ts, d.Format("2006-01-02"))
			d = d.AddDate(0, 0, 1)
		}
		if len(ts) > MaxDateTokens {
			return nil, errcode.New(errcode.PHIEncryptionRequired, "birthdate range too wide for encrypted search (more than %d tokens)", MaxDateTokens)
		}
	}
	return ts, nil
}
