package dlp

// Word flags: one map lookup per ASCII word decides which parsers to try.
const (
	wName     uint16 = 1 << iota // context word before a name: "Patient", "Contact"
	wTitle                       // honorific before a name: "Mr", "Dr"
	wMRN                         // "MRN"
	wMRNLead                     // first word of a multi-word MRN keyword: "Medical", "Chart"
	wSSN                         // "SSN", "Social"
	wPassport                    // "Passport"
	wURL                         // "http", "https", "ftp", "www"
	wMonth                       // month names
	wGiven                       // common given names
	wSurname                     // common surnames
	wStop                        // capitalised words that are not names
	wStreet                      // street suffixes (USPS Publication 28)
	wID                          // "ID": a legacy resident id may follow
)

var words = func() map[string]uint16 {
	m := map[string]uint16{}
	set := func(f uint16, ws ...string) {
		for _, w := range ws {
			m[w] |= f
		}
	}
	set(wName, "patient", "pt", "contact", "name", "mother", "father", "wife", "husband", "son",
		"daughter", "spouse", "guardian", "sister", "brother", "nurse", "physician", "attending", "surgeon", "provider")
	set(wTitle, "mr", "mrs", "ms", "miss", "dr", "doctor", "prof", "professor")
	set(wMRN, "mrn")
	set(wMRNLead, "medical", "chart", "patient", "hospital", "record", "mr", "med")
	set(wSSN, "ssn", "social")
	set(wPassport, "passport")
	set(wID, "id", "identity")
	set(wURL, "http", "https", "ftp", "www")
	for k := range months {
		m[k] |= wMonth | wStop
	}
	set(wGiven, givenNames...)
	set(wSurname, surnamesEN...)
	set(wStop, stopWords...)
	set(wStreet, streetSuffixes...)
	return m
}()

// wordPairs holds the (first, second) letter pairs of the words in the
// table: most words of a text fail this test and skip the map lookup.
var wordPairs = func() (t [26][26]bool) {
	for w := range words {
		if len(w) >= 2 && isLower(w[0]) && isLower(w[1]) {
			t[w[0]-'a'][w[1]-'a'] = true
		}
	}
	return t
}()

// lookupWord returns the flags of the ASCII word s[i:j].
func lookupWord(s string, i, j int) uint16 {
	if j-i > 12 || j-i < 2 || !isLetter(s[i]) || !isLetter(s[i+1]) || !wordPairs[(s[i]|0x20)-'a'][(s[i+1]|0x20)-'a'] {
		return 0
	}
	var buf [12]byte
	for k := i; k < j; k++ {
		c := s[k]
		if isUpper(c) {
			c |= 0x20
		}
		buf[k-i] = c
	}
	return words[string(buf[:j-i])]
}

// numeric tries every number-led detector on the digit run [i, j).
func (st *state) numeric(i, j int) {
	s := st.s
	n := j - i
	if n >= 15 {
		st.cnID(i, j)
		return
	}
	st.phones(i, j)
	st.ssn(i, j)
	st.dateNumeric(i, j)
	if j >= len(s) {
		return
	}
	switch c := s[j]; {
	case c == '.' && n <= 3:
		st.ipv4(i, j)
	case c == ':' && n <= 4:
		st.ipv6(i)
	case c == ' ' && n <= 6:
		st.usAddress(i, j)
	}
	if n <= 2 {
		st.dateDayFirst(i, j)
	}
}

// word tries every word-led detector on the letter run [i, j).
func (st *state) word(i, j int) {
	s := st.s
	if j < len(s) {
		if (s[j] == ':' || isDigit(s[j])) && isHex(s[i]) && j-i <= 4 {
			st.ipv6(i)
		}
		if isDigit(s[j]) && j-i <= 2 {
			st.passport(i, j)
		}
	}
	for _, kw := range st.sc.mrnKW {
		if hasPrefixFold(s, i, kw) {
			st.mrnAfter(i + len(kw))
		}
	}
	f := lookupWord(s, i, j)
	if f == 0 {
		return
	}
	if f&wMRN != 0 {
		st.mrnAfter(j)
	}
	if f&wMRNLead != 0 {
		if e, ok := mrnPhrase(s, i, j); ok {
			st.mrnAfter(e)
		}
	}
	if f&wSSN != 0 {
		st.ssnCtx = j + 24
	}
	if f&wPassport != 0 {
		st.passportCtx = j + 24
	}
	if f&wID != 0 {
		st.idCtx = j + 24
	}
	if f&wURL != 0 {
		st.url(i, j)
	}
	if f&wMonth != 0 {
		st.dateMonthFirst(i, j)
	}
	if f&(wName|wTitle) != 0 {
		st.nameAfterEN(i, j, f&wTitle != 0)
	}
	if f&wGiven != 0 && isUpper(s[i]) {
		st.nameGivenEN(i, j)
	}
}
