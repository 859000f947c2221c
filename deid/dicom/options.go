package dicom

import (
	"fmt"
	"sort"
	"strings"
)

// Option is one PS3.15 Annex E profile option.
type Option string

// The options of the Basic Application Level Confidentiality Profile, by
// their CLI names.
const (
	RetainLongFull     Option = "retain-long-full"     // Retain Longitudinal Temporal Information with Full Dates
	RetainLongModified Option = "retain-long-modified" // ... with Modified Dates (the FHIR date shift)
	RetainPatientChars Option = "retain-patient-chars" // Retain Patient Characteristics
	RetainDevice       Option = "retain-device"        // Retain Device Identity
	RetainInstitution  Option = "retain-institution"   // Retain Institution Identity
	RetainUIDs         Option = "retain-uids"          // Retain UIDs
	CleanDescriptors   Option = "clean-descriptors"    // Clean Descriptors
	RetainSafePrivate  Option = "retain-safe-private"  // Retain Safe Private
)

// optionInfo ties an option to its Table E.1-1 column and its DCM code.
var optionInfo = map[Option]struct {
	col     int
	code    string
	meaning string
}{
	RetainLongFull:     {optLongFull, "113106", "Retain Longitudinal Temporal Information Full Dates Option"},
	RetainLongModified: {optLongModified, "113107", "Retain Longitudinal Temporal Information Modified Dates Option"},
	RetainPatientChars: {optPatientChars, "113108", "Retain Patient Characteristics Option"},
	RetainDevice:       {optDevice, "113109", "Retain Device Identity Option"},
	RetainInstitution:  {optInstitution, "113112", "Retain Institution Identity Option"},
	RetainUIDs:         {optUIDs, "113110", "Retain UIDs Option"},
	CleanDescriptors:   {optCleanDesc, "113105", "Clean Descriptors Option"},
	RetainSafePrivate:  {optSafePrivate, "113111", "Retain Safe Private Option"},
}

// Profile is the Basic Profile plus a set of options.
type Profile struct {
	on [nOpts]bool
	// list is the options in a stable order, for the method attributes.
	list []Option
}

// ParseProfile parses "basic[,option...]". The Basic Profile is always on;
// "basic" may be omitted. The two longitudinal options exclude each other.
func ParseProfile(s string) (*Profile, error) {
	p := &Profile{}
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" || f == "basic" {
			continue
		}
		info, ok := optionInfo[Option(f)]
		if !ok {
			return nil, &Error{Code: CodeBadOption, Stage: "options", Msg: fmt.Sprintf("unknown option %q (known: basic, %s)", f, strings.Join(OptionNames(), ", "))}
		}
		if !p.on[info.col] {
			p.on[info.col] = true
			p.list = append(p.list, Option(f))
		}
	}
	if p.on[optLongFull] && p.on[optLongModified] {
		return nil, &Error{Code: CodeBadOption, Stage: "options", Msg: "retain-long-full and retain-long-modified exclude each other"}
	}
	sort.Slice(p.list, func(i, j int) bool { return optionInfo[p.list[i]].code < optionInfo[p.list[j]].code })
	return p, nil
}

// OptionNames lists the option names ParseProfile accepts besides "basic".
func OptionNames() []string {
	var n []string
	for o := range optionInfo {
		n = append(n, string(o))
	}
	sort.Strings(n)
	return n
}

// Has reports whether the option is on.
func (p *Profile) Has(o Option) bool {
	info, ok := optionInfo[o]
	return ok && p.on[info.col]
}

// String is the profile in ParseProfile's syntax.
func (p *Profile) String() string {
	s := "basic"
	for _, o := range p.list {
		s += "," + string(o)
	}
	return s
}

// resolve picks the action for a listed attribute: an option's K or C
// overrides the Basic Profile (K wins over C when two options disagree,
// since the user asked to retain it).
func (p *Profile) resolve(e *entry) action {
	best := actNone
	for i := 0; i < nOpts; i++ {
		if !p.on[i] {
			continue
		}
		switch e.opts[i] {
		case actK:
			return actK
		case actC:
			best = actC
		}
	}
	if best != actNone {
		return best
	}
	return e.basic
}
