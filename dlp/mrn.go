package dlp

import "strings"

// Medical record numbers are hospital-specific, so they are found by context:
// an id token right after a keyword such as "MRN", "Medical Record Number",
// "病历号" or "住院号". Lab accession and specimen numbers have their own
// keywords and are not taken; ICD-10 and LOINC shapes are refused.

// DefaultMRNKeywords lists the context keywords recognised by default.
var DefaultMRNKeywords = []string{
	"MRN", "MR#", "Medical Record", "Medical Record Number", "Medical Record No", "Med Rec",
	"Chart Number", "Chart No", "Patient ID", "Hospital Number", "Hospital No",
	"病历号", "住院号", "门诊号", "病案号", "就诊号", "就诊卡号", "登记号", "住院编号", "病历编号", "患者编号", "病人编号",
}

// mrnPhrase matches a multi-word English keyword whose first word is [i, j)
// and returns where the id may start.
func mrnPhrase(s string, i, j int) (int, bool) {
	w := asciiLower(s[i:j])
	next := func(p int, want ...string) (int, bool) {
		q := skipSpaces(s, p)
		for _, x := range want {
			if hasPrefixFold(s, q, x) && endsClean(s, q+len(x)) {
				return q + len(x), true
			}
		}
		return 0, false
	}
	switch w {
	case "mr":
		if j < len(s) && s[j] == '#' {
			return j + 1, true
		}
	case "medical":
		if e, ok := next(j, "record", "records"); ok {
			return e, true
		}
	case "med":
		if e, ok := next(j, "rec"); ok {
			return e, true
		}
	case "chart", "record":
		if e, ok := next(j, "number", "no"); ok {
			return e, true
		}
	case "patient", "hospital":
		if e, ok := next(j, "id", "number", "no"); ok {
			return e, true
		}
	}
	return 0, false
}

// mrnAfter looks for an id token after a keyword ending at p.
func (st *state) mrnAfter(p int) {
	s := st.s
	q := skipSpaces(s, p)
	for _, filler := range [...]string{"number", "no.", "no", "num", "#"} {
		if hasPrefixFold(s, q, filler) && (filler == "#" || filler == "no." || endsClean(s, q+len(filler))) {
			q = skipSpaces(s, q+len(filler))
			break
		}
	}
	q = skipSep(s, q)
	if hasPrefixFold(s, q, "is ") {
		q = skipSpaces(s, q+3)
	}
	e := q
	digits := 0
	for e < len(s) && (isAlnum(s[e]) || (s[e] == '-' && e+1 < len(s) && isAlnum(s[e+1]))) {
		if isDigit(s[e]) {
			digits++
		}
		e++
	}
	n := e - q
	if n < 4 || n > 20 || digits < 3 {
		return
	}
	tok := s[q:e]
	if st.sc.mrnPattern != nil {
		if !st.sc.mrnPattern.MatchString(tok) {
			return
		}
	} else if loincShape(tok) {
		return
	}
	st.add(MRN, q, e, 0.9, "mrn-context")
}

// loincShape reports a LOINC code: 1–5 digits, '-', one check digit.
func loincShape(t string) bool {
	k := strings.IndexByte(t, '-')
	if k < 1 || k > 5 || len(t) != k+2 || !isDigit(t[k+1]) {
		return false
	}
	for i := 0; i < k; i++ {
		if !isDigit(t[i]) {
			return false
		}
	}
	return true
}
