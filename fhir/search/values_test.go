package search_test

import (
	"testing"
	"time"

	"phix/fhir/search"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestDateRange(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi string
	}{
		{"2024", "2024-01-01T00:00:00Z", "2024-12-31T23:59:59.999999999Z"},
		{"2024-02", "2024-02-01T00:00:00Z", "2024-02-29T23:59:59.999999999Z"},
		{"2023-02", "2023-02-01T00:00:00Z", "2023-02-28T23:59:59.999999999Z"},
		{"1974-12-25", "1974-12-25T00:00:00Z", "1974-12-25T23:59:59.999999999Z"},
		{"2024-03-01T10:00", "2024-03-01T10:00:00Z", "2024-03-01T10:00:59.999999999Z"},
		{"2024-03-01T10:00+08:00", "2024-03-01T02:00:00Z", "2024-03-01T02:00:59.999999999Z"},
		{"2024-03-01T10:00:05Z", "2024-03-01T10:00:05Z", "2024-03-01T10:00:05.999999999Z"},
		{"2024-03-01T10:00:05-05:00", "2024-03-01T15:00:05Z", "2024-03-01T15:00:05.999999999Z"},
		{"2024-03-01T10:00:05.25Z", "2024-03-01T10:00:05.25Z", "2024-03-01T10:00:05.259999999Z"},
		{"2024-03-01T10:00:05.123+00:00", "2024-03-01T10:00:05.123Z", "2024-03-01T10:00:05.123999999Z"},
		{"2024-12-31T23:59:59", "2024-12-31T23:59:59Z", "2024-12-31T23:59:59.999999999Z"}, // no zone: UTC
	}
	for _, tt := range tests {
		lo, hi, ok := search.DateRange(tt.in)
		if !ok || !lo.Equal(ts(tt.lo)) || !hi.Equal(ts(tt.hi)) {
			t.Errorf("DateRange(%q) = %v, %v, %v; want %s, %s", tt.in, lo, hi, ok, tt.lo, tt.hi)
		}
	}
	for _, bad := range []string{"", "24", "2024-", "2024-13", "2024-02-30", "2024-1-01", "2024-01-01T", "2024-01-01T25:00",
		"2024-01-01T10", "2024-01-01T10:00:61", "2024-01-01T10:00+8", "2024-01-01T10:00:00.Z", "2024-01-01T10:00:00.1234567890Z",
		"2024-01-01 10:00", "abcd", "2024-01-01T10:00:00+15:00", "2024-01-01T10:00:00Zjunk"} {
		if _, _, ok := search.DateRange(bad); ok {
			t.Errorf("DateRange(%q) accepted", bad)
		}
	}
}

func TestNumberRange(t *testing.T) {
	tests := []struct {
		in        string
		v, lo, hi float64
	}{
		{"100", 100, 99.5, 100.5},
		{"100.00", 100, 99.995, 100.005},
		{"1e2", 100, 50, 150},
		{"1.0e2", 100, 95, 105},
		{"1.00E2", 100, 99.5, 100.5},
		{"-3.5", -3.5, -3.55, -3.45},
		{"0.001", 0.001, 0.0005, 0.0015},
		{"+7", 7, 6.5, 7.5},
		{"5e-1", 0.5, 0.45, 0.55},
	}
	const eps = 1e-9
	near := func(a, b float64) bool { return a-b < eps && b-a < eps }
	for _, tt := range tests {
		v, lo, hi, ok := search.NumberRange(tt.in)
		if !ok || !near(v, tt.v) || !near(lo, tt.lo) || !near(hi, tt.hi) {
			t.Errorf("NumberRange(%q) = %v [%v, %v) %v; want %v [%v, %v)", tt.in, v, lo, hi, ok, tt.v, tt.lo, tt.hi)
		}
	}
	for _, bad := range []string{"", ".", "-", "1.2.3", "abc", "1e", "1e999", "NaN", "Inf", "0x10", "--1", "1,5", "1e2.5"} {
		if _, _, _, ok := search.NumberRange(bad); ok {
			t.Errorf("NumberRange(%q) accepted", bad)
		}
	}
}

func TestNormalizeString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Chalmers", "chalmers"},
		{"chalmers", "chalmers"},
		{"Zhāng", "zhang"},
		{"ZHANG", "zhang"},
		{"Ｚｈａｎｇ", "zhang"},    // full-width Latin
		{"Straße", "strasse"}, // full case folding
		{"Ørsted Müller-Lüdenscheidt", "ørsted muller-ludenscheidt"},
		{"Renée Côté", "renee cote"},
		{"张伟", "张伟"},           // Han unchanged
		{"김민준", "김민준"},         // Hangul unchanged (NFKD would split it)
		{"やまだ ヤマダ", "やまだ ヤマダ"}, // kana unchanged
		{"王Ａｂｃ", "王abc"},       // mixed runs
		{"ΣΊΣΥΦΟΣ", "σισυφοσ"}, // Greek: accents stripped, final sigma folded
		{"", ""},
	}
	for _, tt := range tests {
		if got := search.NormalizeString(tt.in); got != tt.want {
			t.Errorf("NormalizeString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
