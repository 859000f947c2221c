package dlp

// US Social Security numbers under the SSA rules (SSA Program Operations
// Manual RM 10201.035; randomization since 2011): area 001–899 except 666,
// group 01–99, serial 0001–9999, and numbers the SSA has voided because they
// were published (078-05-1120 "Woolworth", 219-09-9999, 457-55-5462) or are
// used in advertising and examples (123-45-6789, 987-65-4320..4329).

// ValidSSN reports whether area, group and serial form an issuable SSN.
func ValidSSN(area, group, serial int) bool {
	if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
		return false
	}
	switch {
	case area == 78 && group == 5 && serial == 1120,
		area == 219 && group == 9 && serial == 9999,
		area == 457 && group == 55 && serial == 5462,
		area == 123 && group == 45 && serial == 6789,
		area == 987 && group == 65 && serial >= 4320 && serial <= 4329:
		return false
	}
	return true
}

// ssn tries ddd-dd-dddd (or blanks) at the 3-digit run [i, j); a bare
// 9-digit run counts only after an "SSN" keyword.
func (st *state) ssn(i, j int) {
	s := st.s
	if j-i == 9 && i <= st.ssnCtx && endsNum(s, j) {
		if ValidSSN(atoi(s[i:i+3]), atoi(s[i+3:i+5]), atoi(s[i+5:j])) {
			st.add(USSSN, i, j, 0.8, "us-ssn")
		}
		return
	}
	if j-i != 3 || j >= len(s) || (s[j] != '-' && s[j] != ' ') {
		return
	}
	sep := s[j]
	g := j + 1
	ge := digitsAt(s, g)
	if ge-g != 2 || ge >= len(s) || s[ge] != sep {
		return
	}
	se := digitsAt(s, ge+1)
	if se-(ge+1) != 4 || !endsNum(s, se) {
		return
	}
	if !ValidSSN(atoi(s[i:j]), atoi(s[g:ge]), atoi(s[ge+1:se])) {
		return
	}
	score := 0.9
	if sep == ' ' {
		score = 0.6
		if i <= st.ssnCtx {
			score = 0.85
		}
	}
	st.add(USSSN, i, se, score, "us-ssn")
}
