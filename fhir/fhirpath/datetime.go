package fhirpath

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Temporal kinds.
const (
	kindDate     = 1
	kindDateTime = 2
	kindTime     = 3
)

// Precisions, coarsest first. Seconds and milliseconds compare as one
// precision (the specification treats them together).
const (
	precYear = iota + 1
	precMonth
	precDay
	precHour
	precMinute
	precSecond
	precMillis
)

// DateTime is a FHIRPath Date, DateTime or Time with partial precision.
type DateTime struct {
	kind   uint8
	prec   uint8
	hasTZ  bool
	year   int
	month  int
	day    int
	hour   int
	minute int
	second int
	millis int
	tzMin  int // offset east of UTC, minutes
}

var errBadDateTime = errors.New("invalid date/time")

// IsDate, IsDateTime and IsTime report the kind.
func (d DateTime) IsDate() bool     { return d.kind == kindDate }
func (d DateTime) IsDateTime() bool { return d.kind == kindDateTime }
func (d DateTime) IsTime() bool     { return d.kind == kindTime }

func atoiN(s string) (int, bool) {
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, s != ""
}

// parseDateTimeLiteral parses the text after '@'.
func parseDateTimeLiteral(s string) (DateTime, error) {
	if strings.HasPrefix(s, "T") {
		return parseTime(s[1:], false)
	}
	if i := strings.IndexByte(s, 'T'); i >= 0 {
		d, err := parseDate(s[:i])
		if err != nil {
			return d, err
		}
		d.kind = kindDateTime
		if i == len(s)-1 {
			return d, nil // @2015T
		}
		return parseTimeInto(d, s[i+1:], true)
	}
	return parseDate(s)
}

func parseDate(s string) (DateTime, error) {
	d := DateTime{kind: kindDate}
	parts := strings.Split(s, "-")
	if len(parts) > 3 || len(parts[0]) != 4 {
		return d, errBadDateTime
	}
	var ok bool
	if d.year, ok = atoiN(parts[0]); !ok {
		return d, errBadDateTime
	}
	d.prec = precYear
	d.month, d.day = 1, 1
	if len(parts) > 1 {
		if len(parts[1]) != 2 {
			return d, errBadDateTime
		}
		if d.month, ok = atoiN(parts[1]); !ok || d.month < 1 || d.month > 12 {
			return d, errBadDateTime
		}
		d.prec = precMonth
	}
	if len(parts) > 2 {
		if len(parts[2]) != 2 {
			return d, errBadDateTime
		}
		if d.day, ok = atoiN(parts[2]); !ok || d.day < 1 || d.day > daysIn(d.year, d.month) {
			return d, errBadDateTime
		}
		d.prec = precDay
	}
	return d, nil
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func parseTime(s string, allowTZ bool) (DateTime, error) {
	return parseTimeInto(DateTime{kind: kindTime}, s, allowTZ)
}

func parseTimeInto(d DateTime, s string, allowTZ bool) (DateTime, error) {
	if allowTZ {
		if strings.HasSuffix(s, "Z") {
			d.hasTZ = true
			s = s[:len(s)-1]
		} else if n := len(s); n >= 6 && (s[n-6] == '+' || s[n-6] == '-') && s[n-3] == ':' {
			h, ok1 := atoiN(s[n-5 : n-3])
			m, ok2 := atoiN(s[n-2:])
			if !ok1 || !ok2 || h > 14 || m > 59 {
				return d, errBadDateTime
			}
			d.hasTZ = true
			d.tzMin = h*60 + m
			if s[n-6] == '-' {
				d.tzMin = -d.tzMin
			}
			s = s[:n-6]
		}
	}
	sec := ""
	parts := strings.Split(s, ":")
	if len(parts) > 3 || len(parts[0]) != 2 {
		return d, errBadDateTime
	}
	var ok bool
	if d.hour, ok = atoiN(parts[0]); !ok || d.hour > 23 {
		return d, errBadDateTime
	}
	d.prec = precHour
	if len(parts) > 1 {
		if len(parts[1]) != 2 {
			return d, errBadDateTime
		}
		if d.minute, ok = atoiN(parts[1]); !ok || d.minute > 59 {
			return d, errBadDateTime
		}
		d.prec = precMinute
	}
	if len(parts) > 2 {
		sec = parts[2]
		frac := ""
		if i := strings.IndexByte(sec, '.'); i >= 0 {
			sec, frac = sec[:i], sec[i+1:]
			if frac == "" {
				return d, errBadDateTime
			}
		}
		if len(sec) != 2 {
			return d, errBadDateTime
		}
		if d.second, ok = atoiN(sec); !ok || d.second > 59 {
			return d, errBadDateTime
		}
		d.prec = precSecond
		if frac != "" {
			if _, ok := atoiN(frac); !ok {
				return d, errBadDateTime
			}
			for len(frac) < 3 {
				frac += "0"
			}
			d.millis, _ = atoiN(frac[:3])
			d.prec = precMillis
		}
	}
	return d, nil
}

// parseFHIRDateTime parses a FHIR date, dateTime or instant string (no '@').
func parseFHIRDateTime(s string) (DateTime, error) {
	if len(s) > 64 {
		return DateTime{}, errBadDateTime
	}
	return parseDateTimeLiteral(s)
}

// parseFHIRTime parses a FHIR time string.
func parseFHIRTime(s string) (DateTime, error) {
	if len(s) > 32 {
		return DateTime{}, errBadDateTime
	}
	return parseTime(s, false)
}

// String renders the value the way FHIR writes it (without '@').
func (d DateTime) String() string {
	var b strings.Builder
	if d.kind != kindTime {
		fmt.Fprintf(&b, "%04d", d.year)
		if d.prec >= precMonth {
			fmt.Fprintf(&b, "-%02d", d.month)
		}
		if d.prec >= precDay {
			fmt.Fprintf(&b, "-%02d", d.day)
		}
		if d.kind == kindDate {
			return b.String()
		}
		if d.prec < precHour {
			return b.String()
		}
		b.WriteByte('T')
	}
	fmt.Fprintf(&b, "%02d", d.hour)
	if d.prec >= precMinute {
		fmt.Fprintf(&b, ":%02d", d.minute)
	}
	if d.prec >= precSecond {
		fmt.Fprintf(&b, ":%02d", d.second)
	}
	if d.prec >= precMillis {
		fmt.Fprintf(&b, ".%03d", d.millis)
	}
	if d.hasTZ && d.kind == kindDateTime {
		if d.tzMin == 0 {
			b.WriteByte('Z')
		} else {
			sign := '+'
			m := d.tzMin
			if m < 0 {
				sign = '-'
				m = -m
			}
			fmt.Fprintf(&b, "%c%02d:%02d", sign, m/60, m%60)
		}
	}
	return b.String()
}

// literal renders the value as a FHIRPath literal.
func (d DateTime) literal() string {
	if d.kind == kindTime {
		return "@T" + d.String()
	}
	if d.kind == kindDateTime && d.prec < precHour {
		return "@" + d.String() + "T"
	}
	return "@" + d.String()
}

// toTime converts to a time.Time with missing parts at their minimum.
func (d DateTime) toTime() time.Time {
	loc := time.UTC
	if d.hasTZ {
		loc = time.FixedZone("", d.tzMin*60)
	}
	y, mo, da := d.year, d.month, d.day
	if d.kind == kindTime {
		y, mo, da = 2000, 1, 1
	}
	if mo == 0 {
		mo = 1
	}
	if da == 0 {
		da = 1
	}
	return time.Date(y, time.Month(mo), da, d.hour, d.minute, d.second, d.millis*1e6, loc)
}

// fromTime fills the components of d from t, keeping kind, precision and
// zone presence.
func (d DateTime) fromTime(t time.Time) DateTime {
	if d.kind != kindTime {
		d.year, d.month, d.day = t.Year(), int(t.Month()), t.Day()
	}
	d.hour, d.minute, d.second = t.Hour(), t.Minute(), t.Second()
	d.millis = t.Nanosecond() / 1e6
	if d.hasTZ {
		_, off := t.Zone()
		d.tzMin = off / 60
	}
	return d
}

// utc normalises a zoned value with hour precision or finer to UTC.
func (d DateTime) utc() DateTime {
	if !d.hasTZ || d.prec < precHour || d.tzMin == 0 {
		return d
	}
	t := d.toTime().UTC()
	d = d.fromTime(t)
	d.tzMin = 0
	return d
}

// components as comparable numbers by precision level.
func (d DateTime) comp(level int) int {
	switch level {
	case precYear:
		return d.year
	case precMonth:
		return d.month
	case precDay:
		return d.day
	case precHour:
		return d.hour
	case precMinute:
		return d.minute
	}
	return d.second*1000 + d.millis
}

// compareDT compares two temporal values. ok is false when the result is
// unknown (differing precision with equal common parts, or an unzoned value
// against a zoned one at time precision). Kinds must be compatible.
func compareDT(a, b DateTime) (c int, ok bool) {
	if (a.kind == kindTime) != (b.kind == kindTime) {
		return 0, false
	}
	ap, bp := effPrec(a), effPrec(b)
	if ap >= precHour && bp >= precHour {
		if a.hasTZ != b.hasTZ {
			return 0, false
		}
		a, b = a.utc(), b.utc()
	}
	first := precYear
	if a.kind == kindTime {
		first = precHour
	}
	minP := min(ap, bp)
	for l := first; l <= minP; l++ {
		x, y := a.comp(l), b.comp(l)
		if x != y {
			if x < y {
				return -1, true
			}
			return 1, true
		}
	}
	if ap != bp {
		return 0, false
	}
	return 0, true
}

// effPrec folds milliseconds into seconds.
func effPrec(d DateTime) int {
	p := int(d.prec)
	if d.kind == kindDate && p > precDay {
		p = precDay
	}
	if p == precMillis {
		return precSecond
	}
	return p
}

// precisionDigits implements precision() for temporal values.
func (d DateTime) precisionDigits() int {
	if d.kind == kindTime {
		return [...]int{0, 0, 0, 0, 2, 4, 6, 9}[d.prec]
	}
	return [...]int{0, 4, 6, 8, 10, 12, 14, 17}[d.prec]
}

// addQuantity implements date/time + quantity. The quantity must be a
// calendar duration or an equivalent UCUM time unit ('wk', 'd', 'h', 'min',
// 's', 'ms'); years and months only as calendar durations.
func (d DateTime) addQuantity(q Quantity, sign int) (DateTime, error) {
	unit := q.calendarUnit()
	if unit == "" {
		return d, errors.New("quantity is not a time duration usable with dates")
	}
	n64, ok := bigToInt64(q.Value.truncInt())
	if !ok || n64 > 1e7 || n64 < -1e7 {
		return d, errors.New("duration out of range")
	}
	n := int(n64) * sign
	if d.kind == kindTime && (unit == "year" || unit == "month" || unit == "week" || unit == "day") {
		return d, errors.New("date units cannot be added to a time")
	}
	switch unit {
	case "year", "month":
		months := n
		if unit == "year" {
			months = n * 12
		}
		total := d.year*12 + (d.month - 1) + months
		y, m := total/12, total%12+1
		if total < 0 {
			return d, errors.New("date out of range")
		}
		d.year, d.month = y, m
		if d.prec >= precDay && d.day > daysIn(y, m) {
			d.day = daysIn(y, m)
		}
		if d.year > 9999 {
			return d, errors.New("date out of range")
		}
		return d, nil
	}
	var dur time.Duration
	days := 0
	switch unit {
	case "week":
		days = 7 * n
	case "day":
		days = n
	case "hour":
		dur = time.Duration(n) * time.Hour
	case "minute":
		dur = time.Duration(n) * time.Minute
	case "second":
		dur = time.Duration(n) * time.Second
	case "millisecond":
		dur = time.Duration(n) * time.Millisecond
	}
	t := d.toTime().AddDate(0, 0, days).Add(dur)
	if d.kind != kindTime && (t.Year() < 1 || t.Year() > 9999) {
		return d, errors.New("date out of range")
	}
	return d.fromTime(t), nil
}

// dateTimeFromTime builds a DateTime from a clock reading.
func dateTimeFromTime(t time.Time, kind uint8) DateTime {
	_, off := t.Zone()
	d := DateTime{kind: kind, hasTZ: kind == kindDateTime, tzMin: off / 60}
	d = d.fromTime(t)
	switch kind {
	case kindDate:
		d.prec = precDay
		d.hour, d.minute, d.second, d.millis, d.hasTZ = 0, 0, 0, 0, false
	default:
		d.prec = precMillis
	}
	if kind == kindTime {
		d.year, d.month, d.day = 0, 0, 0
	}
	return d
}

// boundary implements lowBoundary/highBoundary for temporal values: the
// earliest or latest value the partial value could stand for, at the asked
// number of digits of precision.
func (d DateTime) boundary(digits int, high bool) (DateTime, bool) {
	var prec uint8
	if d.kind == kindTime {
		switch digits {
		case 2:
			prec = precHour
		case 4:
			prec = precMinute
		case 6:
			prec = precSecond
		case 9:
			prec = precMillis
		default:
			return d, false
		}
	} else {
		switch digits {
		case 4:
			prec = precYear
		case 6:
			prec = precMonth
		case 8:
			prec = precDay
		case 10:
			prec = precHour
		case 12:
			prec = precMinute
		case 14:
			prec = precSecond
		case 17:
			prec = precMillis
		default:
			return d, false
		}
		if d.kind == kindDate && prec > precDay {
			return d, false
		}
	}
	r := d
	if d.kind == kindDateTime && d.prec == precHour {
		// "T08" is not a legal FHIR dateTime; it stands for 08:00.
		d.prec = precMinute
	}
	// fill the missing components
	if d.prec < precMonth && d.kind != kindTime {
		r.month = pick(high, 12, 1)
	}
	if d.prec < precDay && d.kind != kindTime {
		r.day = pick(high, daysIn(r.year, r.month), 1)
	}
	if d.prec < precHour {
		r.hour = pick(high, 23, 0)
	}
	if d.prec < precMinute {
		r.minute = pick(high, 59, 0)
	}
	if d.prec < precSecond {
		r.second = pick(high, 59, 0)
	}
	if d.prec < precMillis {
		r.millis = pick(high, 999, 0)
	}
	if d.kind == kindDateTime && !d.hasTZ && prec >= precHour {
		// An unzoned value could be in any zone: the earliest instant is at
		// +14:00, the latest at -12:00.
		r.hasTZ = true
		r.tzMin = pick(high, -12*60, 14*60)
	}
	r.prec = prec
	if d.kind == kindDateTime && prec <= precDay {
		r.kind = kindDate
		r.hasTZ = false
	}
	return r, true
}

func pick(c bool, a, b int) int {
	if c {
		return a
	}
	return b
}
