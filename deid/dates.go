package deid

import (
	"strconv"
	"time"
)

func (e *Engine) now() time.Time {
	if e.opts.Now != nil {
		return e.opts.Now()
	}
	return time.Now()
}

// splitDate parses the date part of a FHIR date/dateTime/instant: year,
// month (0 if absent), day (0 if absent), and the rest (time and zone).
func splitDate(s string) (y, m, d int, rest string, ok bool) {
	if len(s) < 4 {
		return 0, 0, 0, "", false
	}
	var err error
	if y, err = strconv.Atoi(s[:4]); err != nil || s[0] == '-' || s[0] == '+' {
		return 0, 0, 0, "", false
	}
	if len(s) == 4 {
		return y, 0, 0, "", true
	}
	if len(s) < 7 || s[4] != '-' {
		return 0, 0, 0, "", false
	}
	if m, err = strconv.Atoi(s[5:7]); err != nil || m < 1 || m > 12 {
		return 0, 0, 0, "", false
	}
	if len(s) == 7 {
		return y, m, 0, "", true
	}
	if len(s) < 10 || s[7] != '-' {
		return 0, 0, 0, "", false
	}
	if d, err = strconv.Atoi(s[8:10]); err != nil || d < 1 || d > 31 {
		return 0, 0, 0, "", false
	}
	return y, m, d, s[10:], true
}

// shiftDate moves a FHIR date, dateTime or instant by days, keeping its
// precision: a year stays a year (the mid-year day is shifted), a month
// stays a month (its 15th is shifted), and a time and zone stay as written.
func shiftDate(s string, days int) (string, bool) {
	y, m, d, rest, ok := splitDate(s)
	if !ok {
		return "", false
	}
	switch {
	case m == 0:
		t := time.Date(y, 7, 2, 0, 0, 0, 0, time.UTC).AddDate(0, 0, days)
		return pad4(t.Year()), true
	case d == 0:
		t := time.Date(y, time.Month(m), 15, 0, 0, 0, 0, time.UTC).AddDate(0, 0, days)
		return pad4(t.Year()) + "-" + pad2(int(t.Month())), true
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).AddDate(0, 0, days)
	return pad4(t.Year()) + "-" + pad2(int(t.Month())) + "-" + pad2(t.Day()) + rest, true
}

// truncateDate keeps the year (or year and month). An instant must keep
// full precision, so it becomes the first instant of that year or month.
func truncateDate(s string, month, instant bool) (string, bool) {
	y, m, _, _, ok := splitDate(s)
	if !ok {
		return "", false
	}
	out := pad4(y)
	if month && m > 0 {
		out += "-" + pad2(m)
	}
	if instant {
		switch {
		case month && m > 0:
			out += "-01T00:00:00Z"
		default:
			out += "-01-01T00:00:00Z"
		}
	}
	return out, true
}

func pad2(i int) string {
	if i < 10 {
		return "0" + strconv.Itoa(i)
	}
	return strconv.Itoa(i)
}

func pad4(i int) string {
	s := strconv.Itoa(i)
	for len(s) < 4 {
		s = "0" + s
	}
	return s
}
