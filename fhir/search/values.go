package search

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxTime is the open upper end of a date range (a Period without end).
var MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)

// MinTime is the open lower end of a date range (a Period without start). It
// is the zero time.Time, so Lo.IsZero() also means "no lower bound".
var MinTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)

// DateRange returns the instants a FHIR date, dateTime or instant covers at
// its precision, both ends inclusive: "2024" is the whole year, "2024-03-01"
// the whole day, "2024-03-01T10:00+08:00" that minute. A value with a time but
// no timezone is taken as UTC. ok is false for anything else.
func DateRange(s string) (lo, hi time.Time, ok bool) {
	n := len(s)
	if n < 4 {
		return lo, hi, false
	}
	year, ok := digits(s, 0, 4)
	if !ok {
		return lo, hi, false
	}
	month, day := 1, 1
	switch {
	case n == 4:
		lo = time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
		return lo, lo.AddDate(1, 0, 0).Add(-1), true
	case n == 7:
		if s[4] != '-' {
			return lo, hi, false
		}
		if month, ok = digits(s, 5, 2); !ok || month < 1 || month > 12 {
			return lo, hi, false
		}
		lo = time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
		return lo, lo.AddDate(0, 1, 0).Add(-1), true
	case n < 10:
		return lo, hi, false
	}
	if s[4] != '-' || s[7] != '-' {
		return lo, hi, false
	}
	if month, ok = digits(s, 5, 2); !ok || month < 1 || month > 12 {
		return lo, hi, false
	}
	if day, ok = digits(s, 8, 2); !ok || day < 1 || day > daysIn(year, month) {
		return lo, hi, false
	}
	if n == 10 {
		lo = time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
		return lo, lo.AddDate(0, 0, 1).Add(-1), true
	}
	if s[10] != 'T' || n < 16 || s[13] != ':' {
		return lo, hi, false
	}
	hour, ok1 := digits(s, 11, 2)
	minute, ok2 := digits(s, 14, 2)
	if !ok1 || !ok2 || hour > 23 || minute > 59 {
		return lo, hi, false
	}
	rest := s[16:]
	sec, nsec := 0, 0
	step := time.Minute
	if len(rest) > 0 && rest[0] == ':' {
		if sec, ok = digits(rest, 1, 2); !ok || sec > 59 {
			return lo, hi, false
		}
		step = time.Second
		rest = rest[3:]
		if len(rest) > 0 && rest[0] == '.' {
			i := 1
			for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
				i++
			}
			frac := rest[1:i]
			if len(frac) == 0 || len(frac) > 9 {
				return lo, hi, false
			}
			f, _ := strconv.Atoi(frac)
			step = time.Duration(math.Pow10(9 - len(frac)))
			nsec = f * int(step)
			rest = rest[i:]
		}
	}
	loc := time.UTC
	switch {
	case rest == "" || rest == "Z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		th, ok1 := digits(rest, 1, 2)
		tm, ok2 := digits(rest, 4, 2)
		if !ok1 || !ok2 || th > 14 || tm > 59 {
			return lo, hi, false
		}
		off := th*3600 + tm*60
		if rest[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	default:
		return lo, hi, false
	}
	lo = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc).UTC()
	return lo, lo.Add(step - 1), true
}

func digits(s string, at, n int) (int, bool) {
	if at+n > len(s) {
		return 0, false
	}
	v := 0
	for i := at; i < at+n; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// NumberRange parses a FHIR decimal (or a search number, which may have an
// exponent) and returns its value and the half-open range [lo, hi) its
// precision implies: half a unit of the last significant digit either side.
// "100" is [99.5, 100.5), "100.00" is [99.995, 100.005), "1e2" (one
// significant figure) is [50, 150), "1.0e2" is [95, 105).
func NumberRange(s string) (v, lo, hi float64, ok bool) {
	if s == "" || len(s) > 64 {
		return 0, 0, 0, false
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 308 || e < -308 {
			return 0, 0, 0, false
		}
		mant, exp = s[:i], e
	}
	m := strings.TrimLeft(mant, "+-")
	if len(mant)-len(m) > 1 || m == "" || m == "." {
		return 0, 0, 0, false
	}
	decimals := 0
	if dot := strings.IndexByte(m, '.'); dot >= 0 {
		decimals = len(m) - dot - 1
		if strings.IndexByte(m[dot+1:], '.') >= 0 {
			return 0, 0, 0, false
		}
	}
	for i := 0; i < len(m); i++ {
		if (m[i] < '0' || m[i] > '9') && m[i] != '.' {
			return 0, 0, 0, false
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, 0, 0, false
	}
	half := math.Pow10(exp-decimals) / 2
	return v, v - half, v + half, true
}
