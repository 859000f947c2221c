package fhir

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// primKind is a primitive datatype, as validation handles it.
type primKind uint8

// Primitive datatypes of R4.
const (
	primNone primKind = iota
	primBase64Binary
	primBoolean
	primCanonical
	primCode
	primDate
	primDateTime
	primDecimal
	primID
	primInstant
	primInteger
	primMarkdown
	primOID
	primPositiveInt
	primString
	primTime
	primUnsignedInt
	primURI
	primURL
	primUUID
	primXHTML
)

var primKinds = map[string]primKind{
	"base64Binary": primBase64Binary, "boolean": primBoolean, "canonical": primCanonical,
	"code": primCode, "date": primDate, "dateTime": primDateTime, "decimal": primDecimal,
	"id": primID, "instant": primInstant, "integer": primInteger, "markdown": primMarkdown,
	"oid": primOID, "positiveInt": primPositiveInt, "string": primString, "time": primTime,
	"unsignedInt": primUnsignedInt, "uri": primURI, "url": primURL, "uuid": primUUID,
	"xhtml": primXHTML,
}

func primKindOf(name string) primKind { return primKinds[name] }

// MaxStringBytes is the longest string value accepted (FHIR: 1 MiB).
const MaxStringBytes = 1 << 20

const msgTooLong = "string longer than 1 MiB"

// checkPrimitive checks one primitive JSON value against its datatype. It
// returns "" when valid, else a description of the rule broken that never
// contains the value.
func checkPrimitive(k primKind, v any) string {
	switch k {
	case primBoolean:
		if _, ok := v.(bool); !ok {
			return "expected a JSON boolean"
		}
		return ""
	case primDecimal, primInteger, primPositiveInt, primUnsignedInt:
		n, ok := v.(json.Number)
		if !ok {
			return "expected a JSON number"
		}
		return checkNumber(k, string(n))
	}
	s, ok := v.(string)
	if !ok {
		return "expected a JSON string"
	}
	if s == "" {
		return "empty string is not a valid value"
	}
	if len(s) > MaxStringBytes {
		return msgTooLong
	}
	switch k {
	case primString, primMarkdown:
		if !validText(s) {
			return "string contains control characters"
		}
	case primXHTML:
		if !strings.HasPrefix(s, "<div") {
			return "narrative must be an xhtml div element"
		}
	case primCode:
		if !validCode(s) {
			return "code has leading, trailing or repeated whitespace"
		}
	case primID:
		if !validID(s) {
			return "id must be 1-64 characters of A-Z a-z 0-9 - ."
		}
	case primURI, primURL, primCanonical:
		if hasSpace(s) {
			return "uri contains whitespace"
		}
	case primOID:
		if !validOID(s) {
			return "not a valid urn:oid"
		}
	case primUUID:
		if !validUUID(s) {
			return "not a valid urn:uuid (lowercase hex)"
		}
	case primDate:
		if !validDate(s) {
			return "not a valid date (YYYY, YYYY-MM or YYYY-MM-DD)"
		}
	case primDateTime:
		if !validDateTime(s, false) {
			return "not a valid dateTime"
		}
	case primInstant:
		if !validDateTime(s, true) {
			return "not a valid instant (full date, time to the second and zone required)"
		}
	case primTime:
		if !validTime(s) {
			return "not a valid time (hh:mm:ss)"
		}
	case primBase64Binary:
		if !validBase64(s) {
			return "not valid base64"
		}
	}
	return ""
}

func checkNumber(k primKind, n string) string {
	if k == primDecimal {
		return "" // the parser accepts only JSON numbers, which are decimals
	}
	if strings.ContainsAny(n, ".eE") {
		return "expected an integer"
	}
	i, err := strconv.ParseInt(n, 10, 32)
	if err != nil {
		return "integer outside the 32-bit range"
	}
	switch {
	case k == primPositiveInt && i < 1:
		return "positiveInt must be at least 1"
	case k == primUnsignedInt && i < 0:
		return "unsignedInt must not be negative"
	}
	return ""
}

// validText: the R4 string regex [ \r\n\t\S]+ admits no other control characters.
func validText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' && c != '\r' && c != '\n' || c == 0x7f {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' }

func hasSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) {
			return true
		}
	}
	return false
}

// validCode: [^\s]+(\s[^\s]+)*
func validCode(s string) bool {
	if isSpace(s[0]) || isSpace(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if isSpace(s[i]) && isSpace(s[i-1]) {
			return false
		}
	}
	return utf8.ValidString(s)
}

func validID(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validOID: urn:oid:[0-2](\.(0|[1-9][0-9]*))+
func validOID(s string) bool {
	rest, ok := strings.CutPrefix(s, "urn:oid:")
	if !ok || len(rest) < 3 || rest[0] < '0' || rest[0] > '2' || rest[1] != '.' {
		return false
	}
	for _, arc := range strings.Split(rest[2:], ".") {
		if arc == "" || len(arc) > 1 && arc[0] == '0' || !digits(arc) {
			return false
		}
	}
	return true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func validUUID(s string) bool {
	rest, ok := strings.CutPrefix(s, "urn:uuid:")
	if !ok || len(rest) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := rest[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func num(s string, n int) (int, bool) {
	if len(s) < n {
		return 0, false
	}
	v := 0
	for i := 0; i < n; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// datePart validates YYYY[-MM[-DD]] at the start of s and returns the rest
// and whether a full date was present.
func datePart(s string) (rest string, full, ok bool) {
	y, ok := num(s, 4)
	if !ok || y == 0 {
		return "", false, false
	}
	s = s[4:]
	if s == "" || s[0] != '-' {
		return s, false, true
	}
	m, ok := num(s[1:], 2)
	if !ok || m < 1 || m > 12 {
		return "", false, false
	}
	s = s[3:]
	if s == "" || s[0] != '-' {
		return s, false, true
	}
	d, ok := num(s[1:], 2)
	if !ok || d < 1 || d > daysIn(y, m) {
		return "", false, false
	}
	return s[3:], true, true
}

func validDate(s string) bool {
	rest, _, ok := datePart(s)
	return ok && rest == ""
}

// timePart validates hh:mm:ss(.fff)? and returns the rest.
func timePart(s string) (string, bool) {
	h, ok1 := num(s, 2)
	if !ok1 || h > 23 || len(s) < 8 || s[2] != ':' || s[5] != ':' {
		return "", false
	}
	mi, ok2 := num(s[3:], 2)
	se, ok3 := num(s[6:], 2)
	if !ok2 || !ok3 || mi > 59 || se > 60 {
		return "", false
	}
	s = s[8:]
	if s != "" && s[0] == '.' {
		i := 1
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 1 {
			return "", false
		}
		s = s[i:]
	}
	return s, true
}

func validTime(s string) bool {
	rest, ok := timePart(s)
	return ok && rest == ""
}

// validDateTime accepts the R4 dateTime (instant when full is set: every
// part required).
func validDateTime(s string, instant bool) bool {
	rest, full, ok := datePart(s)
	if !ok {
		return false
	}
	if rest == "" {
		return !instant
	}
	if !full || rest[0] != 'T' {
		return false
	}
	rest, ok = timePart(rest[1:])
	if !ok {
		return false
	}
	// A time requires a zone.
	if rest == "Z" {
		return true
	}
	if len(rest) != 6 || rest[0] != '+' && rest[0] != '-' || rest[3] != ':' {
		return false
	}
	h, ok1 := num(rest[1:], 2)
	m, ok2 := num(rest[4:], 2)
	return ok1 && ok2 && m <= 59 && (h <= 13 || h == 14 && m == 0)
}

// validBase64 accepts standard base64 with padding; whitespace between
// groups is allowed, as the R4 regex allows it.
func validBase64(s string) bool {
	if hasSpace(s) {
		s = strings.Map(func(r rune) rune {
			if r < 0x80 && isSpace(byte(r)) {
				return -1
			}
			return r
		}, s)
	}
	if len(s)%4 != 0 {
		return false
	}
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil
}
