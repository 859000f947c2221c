package dlp

import "strings"

// English names: one to three capitalised tokens after a context word
// ("Patient", "Contact", "Name:") or an honorific ("Mr.", "Dr."), or a
// common given name followed by a capitalised token.

// nameToken matches a capitalised name token at p: "Smith", "O'Brien",
// "Smith-Jones", "McDonald", or an initial "J." / "J". It returns the end.
func nameToken(s string, p int) (int, bool) {
	if p >= len(s) || !isUpper(s[p]) {
		return 0, false
	}
	e := p + 1
	lower := 0
	for e < len(s) {
		c := s[e]
		switch {
		case isLower(c):
			lower++
			e++
		case isUpper(c) && lower > 0 && e+1 < len(s) && isLower(s[e+1]): // McDonald
			e++
		case (c == '\'' || c == '-') && e+1 < len(s) && isUpper(s[e+1]):
			e += 2
		default:
			goto done
		}
	}
done:
	if lower == 0 {
		// An initial: one capital, optionally with a period.
		if e == p+1 && (e >= len(s) || !isAlnum(s[e])) {
			if e < len(s) && s[e] == '.' {
				e++
			}
			return e, true
		}
		return 0, false
	}
	if e < len(s) && isAlnum(s[e]) {
		return 0, false
	}
	return e, true
}

// nameRun reads up to three name tokens separated by single spaces from p.
// It returns the end and the flags of the first and last full tokens.
func nameRun(s string, p int) (end, tokens int, first, last uint16) {
	q := p
	for tokens < 3 {
		e, ok := nameToken(s, q)
		if !ok {
			break
		}
		f := lookupWord(s, q, e)
		if f&(wStop|wName|wTitle|wStreet) != 0 && f&(wGiven|wSurname) == 0 {
			break
		}
		if f&(wGiven|wSurname) == 0 && commonWordSuffix(s[q:e]) {
			break
		}
		initial := e-q <= 2
		if tokens == 0 {
			if initial {
				break
			}
			first = f
		}
		if !initial {
			last = f
		}
		end = e
		tokens++
		if e+1 < len(s) && s[e] == ' ' {
			q = e + 1
			continue
		}
		break
	}
	// A trailing initial is more likely the start of a sentence.
	for end > p && s[end-1] == '.' && end-2 >= p && isUpper(s[end-2]) && (end-3 < p || s[end-3] == ' ') {
		end -= 3
		tokens--
		if end <= p {
			return 0, 0, 0, 0
		}
	}
	return end, tokens, first, last
}

// nameAfterEN is called on a context word or honorific at [i, j).
func (st *state) nameAfterEN(i, j int, title bool) {
	s := st.s
	// "MR Signal", "DR" in capitals are abbreviations, not honorifics.
	if title && j-i >= 2 && isUpper(s[i+1]) {
		return
	}
	p := j
	// "Dr." and "Mr." take a period; "the patient. However" is a sentence end.
	if title && p < len(s) && s[p] == '.' {
		p++
	}
	label := p < len(s) && (s[p] == ':' || strings.HasPrefix(s[p:], "："))
	p = skipSep(s, p)
	if p == j || p >= len(s) {
		return
	}
	e, n, first, last := nameRun(s, p)
	if n == 0 {
		st.lowerNameAfter(p)
		return
	}
	listed := (first|last)&(wGiven|wSurname) != 0
	// In Title Case text ("Line Provider Payment Amount") a role word is not
	// a context: the capitals mean nothing there.
	if !title && !listed && !label && prevCapitalised(s, i) {
		return
	}
	score := 0.55
	switch {
	case title:
		score = 0.85
	case listed:
		score = 0.85
	case n == 2:
		score = 0.7
	case n >= 3 && !title && !label:
		// Three unlisted capitalised words after a role word read like a
		// heading ("Patient Safety Reasons").
		score = 0.45
	case !label:
		// One unlisted capitalised word after a role word is as often a
		// heading ("Patient Portal") as a surname: below the threshold.
		score = 0.45
	}
	st.add(Name, p, e, score, "name-context-en")
}

// nameGivenEN is called on a common given name at [i, j).
func (st *state) nameGivenEN(i, j int) {
	s := st.s
	if j+1 >= len(s) || s[j] != ' ' || !isUpper(s[j+1]) {
		return
	}
	e, n, _, last := nameRun(s, i)
	if n < 2 {
		return
	}
	score := 0.7
	if last&wSurname != 0 {
		score = 0.85
	}
	st.add(Name, i, e, score, "name-given-en")
}

// prevCapitalised reports whether the word before i (same line, one blank
// apart) starts with a capital.
func prevCapitalised(s string, i int) bool {
	k := i - 1
	if k < 1 || s[k] != ' ' {
		return false
	}
	k--
	for k > 0 && isLetter(s[k-1]) {
		k--
	}
	return isUpper(s[k]) && isLetter(s[i-2])
}

// lowerNameAfter takes a name written in lower case after a context word
// ("pt james smith"): a listed given name, and the next word when it is a
// listed surname (an unlisted lower-case surname is left out: there is no
// telling it from a verb).
func (st *state) lowerNameAfter(p int) {
	s := st.s
	e := p
	for e < len(s) && isLower(s[e]) {
		e++
	}
	if lookupWord(s, p, e)&wGiven == 0 || lookupWord(s, p, e)&wStop != 0 {
		return
	}
	end := e
	if e+1 < len(s) && s[e] == ' ' && isLower(s[e+1]) {
		k := e + 1
		for k < len(s) && isLower(s[k]) {
			k++
		}
		f := lookupWord(s, e+1, k)
		if f&wStop == 0 && f&wSurname != 0 {
			end = k
		}
	}
	st.add(Name, p, end, 0.6, "name-context-en-lower")
}

// commonWordSuffix reports English derivational endings that names rarely
// have ("Education", "Management", "Clinical"): such a word ends a name.
func commonWordSuffix(w string) bool {
	if len(w) < 5 {
		return false
	}
	lw := asciiLower(w)
	for _, suf := range [...]string{"tion", "sion", "ment", "ness", "ity", "ance", "ence", "ing", "ical", "ive", "ous", "ship", "ure", "ogy", "ics", "ies", "able", "ible", "ated", "ized", "ally"} {
		if strings.HasSuffix(lw, suf) {
			return true
		}
	}
	return false
}
