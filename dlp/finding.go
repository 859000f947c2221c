package dlp

import (
	"cmp"
	"slices"
	"unicode/utf8"
)

// Type is the kind of PHI a finding holds. The names of the measured kinds
// match testdata/dlp/README.md.
type Type string

// Kinds of PHI.
const (
	Name         Type = "NAME"
	CNResidentID Type = "CN_RESIDENT_ID"
	Phone        Type = "PHONE"
	USSSN        Type = "US_SSN"
	Email        Type = "EMAIL"
	MRN          Type = "MRN"
	Date         Type = "DATE"
	Address      Type = "ADDRESS"
	IPAddress    Type = "IP_ADDRESS"
	URL          Type = "URL"
	CNPassport   Type = "CN_PASSPORT"
	// Identifier is an identifier known from the patient's record (Hints) or
	// from a structured field, which is not one of the kinds above.
	Identifier Type = "IDENTIFIER"
)

// Types lists every kind the engine reports, in a stable order.
var Types = []Type{Name, CNResidentID, Phone, USSSN, Email, MRN, Date, Address, IPAddress, URL, CNPassport, Identifier}

// Finding is one detected PHI span. Start and End count Unicode code points of
// the scanned string (End exclusive). The value itself is never held.
type Finding struct {
	Type  Type    `json:"type"`
	Start int     `json:"start"`
	End   int     `json:"end"`
	Score float64 `json:"score"`
	// Detector names the rule that fired, e.g. "cn-id-gb11643".
	Detector string `json:"detector"`
	// Location is where the scanned string sits in a structured input: a
	// FHIRPath-like path for FHIR JSON, "row N, col M" for CSV, the tag for
	// DICOM. Empty for plain text.
	Location string `json:"location,omitempty"`
}

// resolve removes overlaps: findings are grouped by overlap and, within a
// group, the longest finding wins, then the higher score, then the earlier
// start, then the kind and detector names (so the result never depends on
// detector order). Losers that overlap a winner are dropped. The result is
// sorted by start.
func resolve(fs []Finding) []Finding {
	if len(fs) < 2 {
		return fs
	}
	slices.SortFunc(fs, func(a, b Finding) int {
		if a.Start != b.Start {
			return cmp.Compare(a.Start, b.Start)
		}
		return cmp.Compare(b.End, a.End)
	})
	out := fs[:0]
	for lo := 0; lo < len(fs); {
		// An overlap group: a maximal run whose spans chain together.
		hi, end := lo+1, fs[lo].End
		for hi < len(fs) && fs[hi].Start < end {
			if fs[hi].End > end {
				end = fs[hi].End
			}
			hi++
		}
		if hi-lo == 1 {
			out = append(out, fs[lo])
		} else {
			// Winners are written over the group's own slots, which out
			// never overtakes (out grows by at most the group's size).
			out = append(out, pickGroup(fs[lo:hi])...)
		}
		lo = hi
	}
	slices.SortFunc(out, func(a, b Finding) int { return cmp.Compare(a.Start, b.Start) })
	return out
}

// better orders findings inside an overlap group, winner first.
func better(a, b Finding) int {
	if la, lb := a.End-a.Start, b.End-b.Start; la != lb {
		return cmp.Compare(lb, la)
	}
	if a.Score != b.Score {
		return cmp.Compare(b.Score, a.Score)
	}
	if a.Start != b.Start {
		return cmp.Compare(a.Start, b.Start)
	}
	if a.Type != b.Type {
		return cmp.Compare(a.Type, b.Type)
	}
	return cmp.Compare(a.Detector, b.Detector)
}

// pickGroup sorts g (in place) and returns the kept prefix.
func pickGroup(g []Finding) []Finding {
	slices.SortFunc(g, better)
	n := 0
	for _, f := range g {
		ok := true
		for _, k := range g[:n] {
			if f.Start < k.End && k.Start < f.End {
				ok = false
				break
			}
		}
		if ok {
			g[n] = f
			n++
		}
	}
	return g[:n]
}

// toCodePoints converts byte offsets (sorted by start, non-overlapping) to
// code point offsets of s in one pass.
func toCodePoints(s string, fs []Finding) {
	if len(fs) == 0 {
		return
	}
	// Offsets to convert in increasing order: starts and ends interleave
	// monotonically because findings do not overlap.
	b, cp := 0, 0
	advance := func(to int) int {
		for b < to {
			if s[b] < utf8.RuneSelf {
				b++
			} else {
				_, n := utf8.DecodeRuneInString(s[b:])
				b += n
			}
			cp++
		}
		return cp
	}
	for i := range fs {
		fs[i].Start = advance(fs[i].Start)
		fs[i].End = advance(fs[i].End)
	}
}
