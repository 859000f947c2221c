package dlp

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Email addresses (RFC 5322 dot-atom local part, ASCII; a domain of at least
// two labels with an alphabetic top-level label), URLs (http, https, ftp and
// www.), and IP addresses validated with net/netip.

func isLocalPart(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c == '\''
}

// email is called at the '@' at i.
func (st *state) email(i int) {
	s := st.s
	b := i
	for b > 0 && isLocalPart(s[b-1]) && i-b < 64 {
		b--
	}
	for b < i && s[b] == '.' {
		b++
	}
	if b == i || s[i-1] == '.' {
		return
	}
	// Domain: labels of letters, digits and '-', at least one dot.
	e, dots, lastLabel := i+1, 0, i+1
	for e < len(s) {
		c := s[e]
		if isAlnum(c) || c == '-' {
			e++
			continue
		}
		if c == '.' && e+1 < len(s) && isAlnum(s[e+1]) && s[e-1] != '.' && s[e-1] != '@' {
			dots++
			e++
			lastLabel = e
			continue
		}
		break
	}
	if dots == 0 || e-lastLabel < 2 {
		return
	}
	for k := lastLabel; k < e; k++ {
		if !isLetter(s[k]) {
			return
		}
	}
	st.add(Email, b, e, 0.95, "email")
}

// url is called at a word "http", "https", "ftp" or "www" at [i, j).
func (st *state) url(i, j int) {
	s := st.s
	w := asciiLower(s[i:j])
	switch {
	case (w == "http" || w == "https" || w == "ftp") && j+3 < len(s) && s[j:j+3] == "://":
	case w == "www" && j+1 < len(s) && s[j] == '.' && isAlnum(s[j+1]):
	default:
		return
	}
	if i < st.urlEnd {
		return // "http://http://…": inside a URL already found
	}
	e := j
	for e < len(s) {
		c := s[e]
		if c <= ' ' || c == '"' || c == '<' || c == '>' || c == '\'' || c == '`' || c >= utf8.RuneSelf {
			break
		}
		e++
	}
	// Trailing punctuation belongs to the sentence.
	for e > j && (s[e-1] == '.' || s[e-1] == ',' || s[e-1] == ';' || s[e-1] == ':' || s[e-1] == '!' || s[e-1] == '?' || s[e-1] == ')') {
		e--
	}
	st.urlEnd = e
	if e-j > 3 {
		st.add(URL, i, e, 0.9, "url")
	}
}

// ipv4 tries a dotted quad at the digit run [i, j). Leading zeros and parts
// of longer dotted numbers (DICOM UIDs, OIDs, versions) are refused.
func (st *state) ipv4(i, j int) {
	s := st.s
	if i > 0 && (s[i-1] == '.' || isDigit(s[i-1])) {
		return
	}
	p := i
	for n := 0; n < 4; n++ {
		e := digitsAt(s, p)
		if e-p < 1 || e-p > 3 || (e-p > 1 && s[p] == '0') || atoi(s[p:e]) > 255 {
			return
		}
		p = e
		if n < 3 {
			if p >= len(s) || s[p] != '.' {
				return
			}
			p++
		}
	}
	if p < len(s) && (isAlnum(s[p]) || (s[p] == '.' && p+1 < len(s) && isDigit(s[p+1]))) {
		return
	}
	e := p
	// CIDR suffix or port stays part of the address.
	if e+1 < len(s) && (s[e] == '/' || s[e] == ':') && isDigit(s[e+1]) {
		e = digitsAt(s, e+1)
	}
	if versionBefore(s, i) {
		return
	}
	if _, err := netip.ParseAddr(s[i:p]); err == nil {
		st.add(IPAddress, i, e, 0.85, "ipv4")
	}
}

func isHex(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

// ipv6 tries an IPv6 address starting at i (a hex digit at a token start).
func (st *state) ipv6(i int) {
	s := st.s
	e, colons := i, 0
	for e < len(s) && e-i < 45 && (isHex(s[e]) || s[e] == ':' || s[e] == '.') {
		if s[e] == ':' {
			colons++
		}
		e++
	}
	for e > i && s[e-1] == '.' {
		e--
	}
	if colons < 2 || (e < len(s) && isAlnum(s[e])) {
		return
	}
	a, err := netip.ParseAddr(s[i:e])
	if err != nil || !a.Is6() {
		// Maybe a trailing ':' of the sentence ("… fe80::1:").
		if e-1 > i && s[e-1] == ':' {
			if a, err = netip.ParseAddr(s[i : e-1]); err == nil && a.Is6() {
				st.add(IPAddress, i, e-1, 0.85, "ipv6")
			}
		}
		return
	}
	st.add(IPAddress, i, e, 0.85, "ipv6")
}

// passport tries a mainland passport number at the letter run [i, j):
// E or G and 8 digits, or E, a letter and 7 digits (the 2012 ePassport
// series).
func (st *state) passport(i, j int) {
	s := st.s
	var want int
	switch {
	case j-i == 1 && (s[i] == 'E' || s[i] == 'G'):
		want = 8
	case j-i == 2 && s[i] == 'E' && isUpper(s[i+1]) && s[i+1] != 'I' && s[i+1] != 'O':
		want = 7
	default:
		return
	}
	e := digitsAt(s, j)
	if e-j != want || !endsClean(s, e) {
		return
	}
	score := 0.7
	if i <= st.passportCtx {
		score = 0.9
	}
	st.add(CNPassport, i, e, score, "cn-passport")
}

// versionBefore reports a version or section label right before i
// ("version 2.4.10.1", "v2.4.10.1", "Section 7.3.1.9", "版本1.2.3.4"):
// dotted quads there are not addresses.
func versionBefore(s string, i int) bool {
	k := i
	for k > 0 && (s[k-1] == ' ' || s[k-1] == ':' || s[k-1] == '.') && i-k < 3 {
		k--
	}
	if strings.HasSuffix(s[:k], "版本") || strings.HasSuffix(s[:k], "章节") || strings.HasSuffix(s[:k], "第") {
		return true
	}
	b := k
	for b > 0 && isLetter(s[b-1]) {
		b--
	}
	switch asciiLower(s[b:k]) {
	case "v", "ver", "version", "release", "build", "firmware", "software",
		"section", "sec", "chapter", "clause", "item", "figure", "fig", "table", "step", "para", "paragraph":
		return true
	}
	return false
}
