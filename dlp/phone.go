package dlp

import "strings"

// Telephone numbers.
//
// Mainland China (MIIT numbering plan): mobile numbers are 11 digits
// 1[3-9]xxxxxxxxx, written whole or 3-4-4; landlines are a trunk prefix 0 and
// an area code (010, 02x, or 0 and three digits starting 3–9) and a 7–8 digit
// local number that does not start with 0 or 1, with an optional extension.
// International forms use +86 or 0086 and drop the trunk 0.
//
// US (NANP): NPA-NXX-XXXX where the area code (NPA) and the exchange (NXX)
// start with 2–9 and are not N11 service codes; written (NPA) NXX-XXXX,
// NPA-NXX-XXXX, NPA.NXX.XXXX, NPA NXX XXXX, with an optional +1 or 1-.
//
// Other E.164 numbers are taken only with a leading '+': a country code and
// 8–15 digits in all, in groups separated by blanks, '-' or '.'.

// cnMobileAt matches a mainland mobile number whose digits start at k.
func cnMobileAt(s string, k int) (int, bool) {
	j := digitsAt(s, k)
	if k+1 >= len(s) || s[k] != '1' || s[k+1] < '3' || s[k+1] > '9' {
		return 0, false
	}
	switch j - k {
	case 11:
		return j, endsNum(s, j)
	case 3:
		if j >= len(s) || (s[j] != '-' && s[j] != ' ') {
			return 0, false
		}
		sep := s[j]
		a := digitsAt(s, j+1)
		if a-(j+1) != 4 || a >= len(s) || s[a] != sep {
			return 0, false
		}
		b := digitsAt(s, a+1)
		if b-(a+1) != 4 {
			return 0, false
		}
		return b, endsNum(s, b)
	}
	return 0, false
}

// cnAreaLen returns the length of a valid area code (without the trunk 0)
// at the start of digits d, or 0.
func cnAreaLen(d string) int {
	if len(d) < 2 {
		return 0
	}
	switch {
	case d[0] == '1' && d[1] == '0':
		return 2
	case d[0] == '2':
		return 2
	case d[0] >= '3' && d[0] <= '9' && len(d) >= 3:
		return 3
	}
	return 0
}

// cnLocalAt matches a 7–8 digit local number at k (optionally split 3/4-4
// by one blank or '-') and an optional extension. Local numbers start with
// 2–9; loose also admits 1 (for the separated 0AA-LLLLLLLL layout, which is
// unambiguous even when the number is not a valid one).
func cnLocalAt(s string, k int, loose bool) (int, bool) {
	if k >= len(s) || s[k] < '1' || s[k] > '9' || (s[k] == '1' && !loose) {
		return 0, false
	}
	j := digitsAt(s, k)
	n := j - k
	if (n == 3 || n == 4) && j+1 < len(s) && (s[j] == ' ' || s[j] == '-') {
		if e := digitsAt(s, j+1); e-(j+1) == 4 {
			j, n = e, n+4
		}
	}
	if n < 7 || n > 8 {
		return 0, false
	}
	// Extension: "-123", "转123", " ext 123".
	switch {
	case j+1 < len(s) && s[j] == '-' && isDigit(s[j+1]):
		if e := digitsAt(s, j+1); e-(j+1) <= 5 {
			j = e
		}
	case strings.HasPrefix(s[j:], "转") && j+3 < len(s) && isDigit(s[j+3]):
		if e := digitsAt(s, j+3); e-(j+3) <= 5 {
			j = e
		}
	}
	return j, endsNum(s, j)
}

// cnLandlineAt matches 0AA(A)-LLLLLLLL at k (s[k] == '0').
func cnLandlineAt(s string, k int) (int, float64, bool) {
	j := digitsAt(s, k)
	d := s[k+1 : j]
	al := cnAreaLen(d)
	if al == 0 {
		return 0, 0, false
	}
	if len(d) == al {
		// Separated area code.
		if j+1 < len(s) && (s[j] == '-' || s[j] == ' ') {
			if e, ok := cnLocalAt(s, j+1, true); ok {
				if s[j+1] == '1' {
					return e, 0.75, true
				}
				return e, 0.85, true
			}
		}
		return 0, 0, false
	}
	// Area and local number run together: lower confidence.
	if n := len(d) - al; n == 7 || n == 8 {
		if e, ok := cnLocalAt(s, k+1+al, false); ok && e >= j {
			return e, 0.6, true
		}
	}
	return 0, 0, false
}

// nanpOK checks an area code and exchange (three digits each): both start
// with 2–9 and neither is an N11 service code.
func nanpOK(npa, nxx string) bool {
	return nanpLoose(npa, nxx) && !n11(npa) && !n11(nxx)
}

// nanpLoose admits N11 codes, which are not assignable but are still written
// as telephone numbers (mistyped or fictitious ones).
func nanpLoose(npa, nxx string) bool {
	return npa[0] >= '2' && npa[0] <= '9' && nxx[0] >= '2' && nxx[0] <= '9'
}

func n11(x string) bool { return x[1] == '1' && x[2] == '1' }

// usRestAt matches NXX<sep>XXXX at k for area code npa, and returns the end
// and the score: N11 codes are admitted with a lower score in the dashed and
// parenthesised layouts only.
func usRestAt(s string, k int, npa string, sep byte) (int, float64, bool) {
	x := digitsAt(s, k)
	if x-k != 3 || x >= len(s) {
		return 0, 0, false
	}
	if s[x] != sep && !(sep == 0 && s[x] == '-') {
		return 0, 0, false
	}
	e := digitsAt(s, x+1)
	if e-(x+1) != 4 || !endsNum(s, e) {
		return 0, 0, false
	}
	nxx := s[k:x]
	switch {
	case nanpOK(npa, nxx):
		return e, 0.85, true
	case (sep == 0 || sep == '-') && nanpLoose(npa, nxx):
		return e, 0.7, true
	}
	return 0, 0, false
}

// usPhoneAt matches NPA-NXX-XXXX (or '.', ' ') at digit run k.
func usPhoneAt(s string, k int) (int, float64, bool) {
	j := digitsAt(s, k)
	if j-k != 3 || j+1 >= len(s) {
		return 0, 0, false
	}
	sep := s[j]
	if sep != '-' && sep != '.' && sep != ' ' {
		return 0, 0, false
	}
	e, score, ok := usRestAt(s, j+1, s[k:j], sep)
	if !ok {
		return 0, 0, false
	}
	switch sep {
	case '.':
		score = 0.7
	case ' ':
		score = 0.6
	}
	return e, score, true
}

// phones tries every phone form on the digit run [i, j).
func (st *state) phones(i, j int) {
	s := st.s
	if e, ok := cnMobileAt(s, i); ok {
		st.add(Phone, i, e, 0.85, "cn-mobile")
		return
	}
	if s[i] == '0' {
		if s[i:j] == "0086" {
			k := j
			if k < len(s) && (s[k] == ' ' || s[k] == '-') {
				k++
			}
			if e, sc, ok := st.afterCC86(k); ok {
				st.add(Phone, i, e, sc, "cn-phone-intl")
			}
			return
		}
		if e, sc, ok := cnLandlineAt(s, i); ok {
			st.add(Phone, i, e, sc, "cn-landline")
		}
		return
	}
	if e, sc, ok := usPhoneAt(s, i); ok {
		st.add(Phone, i, e, sc, "us-nanp")
		return
	}
	// 1-NPA-NXX-XXXX.
	if j-i == 1 && s[i] == '1' && j < len(s) && (s[j] == '-' || s[j] == ' ' || s[j] == '.') {
		if e, sc, ok := usPhoneAt(s, j+1); ok {
			st.add(Phone, i, e, sc, "us-nanp")
		}
	}
}

// afterCC86 matches a mainland number after the country code: a mobile, or
// an area code without the trunk 0 and a local number.
func (st *state) afterCC86(k int) (int, float64, bool) {
	s := st.s
	if k >= len(s) || !isDigit(s[k]) {
		return 0, 0, false
	}
	if e, ok := cnMobileAt(s, k); ok {
		return e, 0.9, true
	}
	j := digitsAt(s, k)
	al := cnAreaLen(s[k:j])
	if al == 0 {
		return 0, 0, false
	}
	if j-k == al && j+1 < len(s) && (s[j] == ' ' || s[j] == '-') {
		if e, ok := cnLocalAt(s, j+1, true); ok {
			return e, 0.85, true
		}
	}
	if e, ok := cnLocalAt(s, k+al, false); ok && e >= j {
		return e, 0.7, true
	}
	return 0, 0, false
}

// plus handles numbers written with a leading '+'.
func (st *state) plus(i int) {
	s := st.s
	if i > 0 && isAlnum(s[i-1]) {
		return
	}
	k := i + 1
	j := digitsAt(s, k)
	if j == k {
		return
	}
	// Separator after the country code.
	next := func(p int) int {
		if p < len(s) && (s[p] == ' ' || s[p] == '-' || s[p] == '.') {
			return p + 1
		}
		return p
	}
	switch {
	case s[k:j] == "86":
		if e, sc, ok := st.afterCC86(next(j)); ok {
			st.add(Phone, i, e, sc, "cn-phone-intl")
			return
		}
	case s[k:j] == "1":
		p := next(j)
		if p < len(s) && s[p] == '(' {
			if e, _, ok := st.parenUS(p); ok {
				st.add(Phone, i, e, 0.9, "us-nanp")
				return
			}
		}
		if e, _, ok := usPhoneAt(s, p); ok {
			st.add(Phone, i, e, 0.9, "us-nanp")
			return
		}
		if e := digitsAt(s, p); e-p == 10 && endsNum(s, e) && nanpOK(s[p:p+3], s[p+3:p+6]) {
			st.add(Phone, i, e, 0.85, "us-nanp")
			return
		}
	}
	// Generic E.164: groups of digits, 8–15 digits in all.
	digits, e := 0, k
	for p := k; p < len(s); {
		q := digitsAt(s, p)
		if q == p {
			break
		}
		digits += q - p
		e = q
		if q+1 < len(s) && (s[q] == ' ' || s[q] == '-' || s[q] == '.') && isDigit(s[q+1]) {
			p = q + 1
			continue
		}
		break
	}
	if digits >= 8 && digits <= 15 && s[k] != '0' && endsNum(s, e) {
		st.add(Phone, i, e, 0.7, "e164")
	}
}

// parenUS matches "(NPA) NXX-XXXX" at the '(' at p.
func (st *state) parenUS(p int) (int, float64, bool) {
	s := st.s
	a := digitsAt(s, p+1)
	if a-(p+1) != 3 || a >= len(s) || s[a] != ')' {
		return 0, 0, false
	}
	k := a + 1
	if k < len(s) && s[k] == ' ' {
		k++
	}
	return usRestAt(s, k, s[p+1:a], 0)
}

// paren handles "(555) 123-4567" and "(021) 8793 8498" / "(021)87938498".
func (st *state) paren(i int) {
	s := st.s
	if i+1 >= len(s) || !isDigit(s[i+1]) {
		return
	}
	if e, sc, ok := st.parenUS(i); ok {
		st.add(Phone, i, e, sc, "us-nanp")
		return
	}
	a := digitsAt(s, i+1)
	if s[i+1] == '0' && a < len(s) && s[a] == ')' {
		if al := cnAreaLen(s[i+2 : a]); al > 0 && al == a-(i+2) {
			k := a + 1
			if k < len(s) && (s[k] == ' ' || s[k] == '-') {
				k++
			}
			if e, ok := cnLocalAt(s, k, true); ok {
				st.add(Phone, i, e, 0.85, "cn-landline")
			}
		}
	}
}
