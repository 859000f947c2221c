package dlp

import "strings"

// Dates more precise than a year (HIPAA Safe Harbor §164.514(b)(2)(i)(C)
// treats every element of a date but the year as an identifier). Every
// candidate is checked as a real calendar date (Gregorian, leap years) with a
// year from 1800 to 2199.

func leap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// validDate reports whether y-m-d is a real calendar date in 1800..2199.
func validDate(y, m, d int) bool {
	if y < 1800 || y > 2199 || m < 1 || m > 12 || d < 1 {
		return false
	}
	days := [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	if m == 2 && leap(y) {
		return d <= 29
	}
	return d <= days[m]
}

// monthDay reports whether m/d can be a month and day in some year.
func monthDay(m, d int) bool { return validDate(2000, m, d) }

// dateNumeric tries numeric dates at the digit run [i, j):
// YYYY-MM-DD (also '/', '.'), MM/DD/YYYY or DD/MM/YYYY (also '-', '.'),
// MM/DD/YY, YYYY年M月D日, M月D日.
func (st *state) dateNumeric(i, j int) {
	s := st.s
	n := j - i
	if j >= len(s) {
		return
	}
	sep := s[j]
	switch {
	case n == 4 && (sep == '-' || sep == '/' || sep == '.'):
		m0 := j + 1
		m1 := digitsAt(s, m0)
		if m1-m0 < 1 || m1-m0 > 2 || m1 >= len(s) || s[m1] != sep {
			return
		}
		d1 := digitsAt(s, m1+1)
		if d1-(m1+1) < 1 || d1-(m1+1) > 2 {
			return
		}
		if !validDate(atoi(s[i:j]), atoi(s[m0:m1]), atoi(s[m1+1:d1])) {
			return
		}
		end := d1
		if sep == '-' {
			end = isoTime(s, d1)
		}
		if endsNum(s, end) {
			st.add(Date, i, end, 0.9, "date-ymd")
		}
	case n == 4 && strings.HasPrefix(s[j:], "年"):
		y := atoi(s[i:j])
		m0 := j + len("年")
		m1 := digitsAt(s, m0)
		if m1-m0 < 1 || m1-m0 > 2 || !strings.HasPrefix(s[m1:], "月") {
			return
		}
		m := atoi(s[m0:m1])
		end := m1 + len("月")
		d0 := end
		d1 := digitsAt(s, d0)
		if d1-d0 >= 1 && d1-d0 <= 2 && (strings.HasPrefix(s[d1:], "日") || strings.HasPrefix(s[d1:], "号")) {
			if !validDate(y, m, atoi(s[d0:d1])) {
				return
			}
			st.add(Date, i, d1+len("日"), 0.95, "date-zh")
			return
		}
		if validDate(y, m, 1) {
			st.add(Date, i, end, 0.8, "date-zh")
		}
	case n >= 1 && n <= 2 && strings.HasPrefix(s[j:], "月"):
		d0 := j + len("月")
		d1 := digitsAt(s, d0)
		if d1-d0 >= 1 && d1-d0 <= 2 && (strings.HasPrefix(s[d1:], "日") || strings.HasPrefix(s[d1:], "号")) &&
			monthDay(atoi(s[i:j]), atoi(s[d0:d1])) {
			st.add(Date, i, d1+len("日"), 0.7, "date-zh")
		}
	case n >= 1 && n <= 2 && (sep == '/' || sep == '-' || sep == '.'):
		b0 := j + 1
		b1 := digitsAt(s, b0)
		if b1-b0 < 1 || b1-b0 > 2 || b1 >= len(s) || s[b1] != sep {
			return
		}
		y0 := b1 + 1
		y1 := digitsAt(s, y0)
		if !endsNum(s, y1) {
			return
		}
		a, b := atoi(s[i:j]), atoi(s[b0:b1])
		switch y1 - y0 {
		case 4:
			y := atoi(s[y0:y1])
			if validDate(y, a, b) || validDate(y, b, a) {
				st.add(Date, i, y1, 0.9, "date-mdy")
			}
		case 2:
			// Two-digit years only with '/', the common US form.
			if sep == '/' && (monthDay(a, b) || monthDay(b, a)) {
				st.add(Date, i, y1, 0.6, "date-mdy")
			}
		}
	}
}

// isoTime extends a date ending at p over an ISO 8601 time:
// Thh:mm[:ss[.fff]][Z|±hh:mm].
func isoTime(s string, p int) int {
	if p+6 > len(s) || (s[p] != 'T' && s[p] != ' ') || !isDigit(s[p+1]) {
		return p
	}
	h := digitsAt(s, p+1)
	if h-(p+1) != 2 || h >= len(s) || s[h] != ':' {
		return p
	}
	m := digitsAt(s, h+1)
	if m-(h+1) != 2 {
		return p
	}
	e := m
	if e < len(s) && s[e] == ':' {
		if x := digitsAt(s, e+1); x-(e+1) == 2 {
			e = x
			if e+1 < len(s) && s[e] == '.' && isDigit(s[e+1]) {
				e = digitsAt(s, e+1)
			}
		}
	}
	switch {
	case e < len(s) && s[e] == 'Z':
		e++
	case e+5 < len(s)+0 && (s[e] == '+' || s[e] == '-') && isDigit(s[e+1]) && isDigit(s[e+2]) && s[e+3] == ':':
		e += 6
	}
	return e
}

// months maps lower-case English month names and abbreviations to numbers.
var months = map[string]int{
	"january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6,
	"july": 7, "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
	"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8,
	"sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}

// dayAt parses a 1–2 digit day with an optional ordinal suffix at k.
func dayAt(s string, k int) (day, end int, ok bool) {
	e := digitsAt(s, k)
	if e-k < 1 || e-k > 2 {
		return 0, 0, false
	}
	day = atoi(s[k:e])
	for _, suf := range [...]string{"st", "nd", "rd", "th"} {
		if hasPrefixFold(s, e, suf) {
			e += 2
			break
		}
	}
	if e < len(s) && isLetter(s[e]) {
		return 0, 0, false
	}
	return day, e, true
}

// yearAt parses a 4-digit year at k.
func yearAt(s string, k int) (int, int, bool) {
	e := digitsAt(s, k)
	if e-k != 4 || !endsNum(s, e) {
		return 0, 0, false
	}
	return atoi(s[k:e]), e, true
}

// monthAt parses a month name (optional '.') at k.
func monthAt(s string, k int) (int, int, bool) {
	e := k
	for e < len(s) && isLetter(s[e]) {
		e++
	}
	if e-k < 3 || e-k > 9 {
		return 0, 0, false
	}
	m, ok := months[asciiLower(s[k:e])]
	if !ok {
		return 0, 0, false
	}
	if e < len(s) && s[e] == '.' {
		e++
	}
	return m, e, true
}

// dateMonthFirst tries "Feb 19, 1948", "February 19 1948", "Feb. 1948" with
// the month word at [i, j).
func (st *state) dateMonthFirst(i, j int) {
	s := st.s
	m, e, ok := monthAt(s, i)
	if !ok || e < j {
		return
	}
	// "may" and "mar" are ordinary words: need the capital.
	if !isUpper(s[i]) && (m == 5 || m == 3) {
		return
	}
	k := skipSpaces(s, e)
	if k == e || k >= len(s) || !isDigit(s[k]) {
		return
	}
	if y, ye, ok := yearAt(s, k); ok {
		if validDate(y, m, 1) {
			st.add(Date, i, ye, 0.6, "date-en")
		}
		return
	}
	d, de, ok := dayAt(s, k)
	if !ok {
		return
	}
	p := de
	if p < len(s) && s[p] == ',' {
		p++
	}
	p = skipSpaces(s, p)
	if y, ye, ok := yearAt(s, p); ok && p > de {
		if validDate(y, m, d) {
			st.add(Date, i, ye, 0.9, "date-en")
		}
		return
	}
	if monthDay(m, d) && isUpper(s[i]) {
		st.add(Date, i, de, 0.6, "date-en")
	}
}

// dateDayFirst tries "19 February 1948", "19th of Feb, 1948" at the digit
// run [i, j).
func (st *state) dateDayFirst(i, j int) {
	s := st.s
	if j-i > 2 || j >= len(s) {
		return
	}
	d, de, ok := dayAt(s, i)
	if !ok {
		return
	}
	k := skipSpaces(s, de)
	if k == de && de == j {
		return
	}
	if hasPrefixFold(s, k, "of ") {
		k = skipSpaces(s, k+3)
	}
	m, me, ok := monthAt(s, k)
	if !ok {
		return
	}
	p := me
	if p < len(s) && s[p] == ',' {
		p++
	}
	p = skipSpaces(s, p)
	if y, ye, ok := yearAt(s, p); ok && p > me {
		if validDate(y, m, d) {
			st.add(Date, i, ye, 0.9, "date-en")
		}
		return
	}
	if monthDay(m, d) {
		st.add(Date, i, me, 0.6, "date-en")
	}
}

// zhNumerals are the digits of dates written in Chinese numerals.
var zhNumerals = map[rune]int{'〇': 0, '零': 0, '一': 1, '二': 2, '三': 3, '四': 4, '五': 5, '六': 6, '七': 7, '八': 8, '九': 9, '十': 10}

// dateZhNumerals tries 二〇一九年二月十五日 at i.
func (st *state) dateZhNumerals(i int) {
	s := st.s
	p := i
	y := 0
	for n := 0; n < 4; n++ {
		r, w := decodeRune(s, p)
		v, ok := zhNumerals[r]
		if !ok || v == 10 {
			return
		}
		y = y*10 + v
		p += w
	}
	if !strings.HasPrefix(s[p:], "年") {
		return
	}
	p += len("年")
	m, p2, ok := zhSmallNumber(s, p)
	if !ok || !strings.HasPrefix(s[p2:], "月") {
		return
	}
	p = p2 + len("月")
	if d, p3, ok := zhSmallNumber(s, p); ok && (strings.HasPrefix(s[p3:], "日") || strings.HasPrefix(s[p3:], "号")) {
		if validDate(y, m, d) {
			st.add(Date, i, p3+len("日"), 0.95, "date-zh-numerals")
		}
		return
	}
	if validDate(y, m, 1) {
		st.add(Date, i, p, 0.8, "date-zh-numerals")
	}
}

// zhSmallNumber parses 1–31 in Chinese numerals (一, 十, 十二, 二十三, 三十一).
func zhSmallNumber(s string, p int) (int, int, bool) {
	var ds []int
	for len(ds) < 3 {
		r, w := decodeRune(s, p)
		v, ok := zhNumerals[r]
		if !ok {
			break
		}
		ds = append(ds, v)
		p += w
	}
	switch {
	case len(ds) == 1 && ds[0] > 0:
		return ds[0], p, true
	case len(ds) == 2 && ds[0] == 10 && ds[1] < 10 && ds[1] > 0:
		return 10 + ds[1], p, true
	case len(ds) == 2 && ds[1] == 10 && ds[0] > 1 && ds[0] < 10:
		return ds[0] * 10, p, true
	case len(ds) == 3 && ds[1] == 10 && ds[0] > 1 && ds[0] < 10 && ds[2] > 0 && ds[2] < 10:
		return ds[0]*10 + ds[2], p, true
	}
	return 0, 0, false
}
