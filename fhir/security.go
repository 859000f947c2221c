package fhir

import (
	"strings"
)

// Security label code systems (R4 "All Security Labels",
// http://hl7.org/fhir/ValueSet/security-labels, the extensible binding of
// Meta.security). The value set imports ConfidentialityClassification,
// InformationSensitivityPolicy and ActUSPrivacyLaw (v3-ActCode), Compartment
// (v3-ActCode) and the security integrity and control observation values
// (v3-ObservationValue).
const (
	SystemConfidentiality   = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	SystemActCode           = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	SystemObservationValue  = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	SystemActReason         = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	SystemPurposeOfUse      = SystemActReason
	SystemDataOperation     = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
	systemConfidentialityV2 = "http://hl7.org/fhir/v3/Confidentiality" // the STU3 name of the same system
)

// Confidentiality codes of v3-Confidentiality (ConfidentialityClassification),
// from least to most restrictive.
const (
	ConfidentialityUnrestricted = "U"
	ConfidentialityLow          = "L"
	ConfidentialityModerate     = "M"
	ConfidentialityNormal       = "N"
	ConfidentialityRestricted   = "R"
	ConfidentialityVeryRestrict = "V"
)

// confidentialityRank orders the confidentiality codes (ConfidentialityClassification
// is a ladder: each level includes the protections of the ones below).
var confidentialityRank = map[string]int{"U": 0, "L": 1, "M": 2, "N": 3, "R": 4, "V": 5}

// SecurityLabel is one meta.security coding.
type SecurityLabel struct {
	System  string
	Code    string
	Display string
}

// SecurityLabels returns the resource's meta.security labels in order. It
// never fails: malformed entries (not an object, no code) are skipped, which
// ValidateSecurityLabels reports on the write path.
func SecurityLabels(r *Resource) []SecurityLabel {
	if r == nil || r.Object == nil {
		return nil
	}
	meta, _ := r.Object["meta"].(map[string]any)
	list, _ := meta["security"].([]any)
	out := make([]SecurityLabel, 0, len(list))
	for _, v := range list {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		l := SecurityLabel{}
		l.System, _ = m["system"].(string)
		l.Code, _ = m["code"].(string)
		l.Display, _ = m["display"].(string)
		if l.Code == "" {
			continue
		}
		out = append(out, l)
	}
	return out
}

// Confidentiality returns the resource's confidentiality code (U, L, M, N,
// R or V) and whether it has one. With several (which
// ValidateSecurityLabels refuses) the most restrictive wins.
func Confidentiality(r *Resource) (string, bool) {
	best, found := "", false
	for _, l := range SecurityLabels(r) {
		if !isConfidentialitySystem(l.System) {
			continue
		}
		rank, ok := confidentialityRank[l.Code]
		if !ok {
			continue
		}
		if !found || rank > confidentialityRank[best] {
			best, found = l.Code, true
		}
	}
	return best, found
}

// HasSecurityLabel reports whether r carries the label system|code.
func HasSecurityLabel(r *Resource, system, code string) bool {
	for _, l := range SecurityLabels(r) {
		if l.System == system && l.Code == code {
			return true
		}
	}
	return false
}

func isConfidentialitySystem(s string) bool {
	return s == SystemConfidentiality || s == systemConfidentialityV2
}

// ValidateSecurityLabels checks meta.security against R4's security-labels
// value set. The structure (Coding) is fhir.Validate's job; this adds:
//
//   - every label names its system and code (a bare code is ambiguous across
//     the label systems, so a policy could not act on it);
//   - a v3-Confidentiality code is one of U, L, M, N, R, V, and there is at
//     most one (the HL7 Healthcare Privacy and Security Classification System
//     allows one confidentiality per resource);
//   - codes are tokens (no whitespace) and each label appears once.
//
// Codes of the other systems of the value set (v3-ActCode sensitivity,
// privacy-law and compartment codes, v3-ObservationValue integrity and
// control codes) and of other systems are accepted as they are: the binding
// is extensible and those value sets are large and evolving. Issues carry
// the element location but never the code (a label may itself be sensitive,
// e.g. HIV).
func ValidateSecurityLabels(r *Resource) []Issue {
	if r == nil || r.Object == nil {
		return nil
	}
	meta, _ := r.Object["meta"].(map[string]any)
	list, _ := meta["security"].([]any)
	var issues []Issue
	bad := func(i int, msg string) {
		issues = append(issues, Issue{Severity: "error", Code: "code-invalid",
			Expression: []string{r.Type + ".meta.security[" + itoa(int64(i)) + "]"}, Diagnostics: msg})
	}
	conf := 0
	seen := map[string]bool{}
	for i, v := range list {
		m, ok := v.(map[string]any)
		if !ok {
			bad(i, "a security label must be a Coding")
			continue
		}
		sys, _ := m["system"].(string)
		code, _ := m["code"].(string)
		if sys == "" || code == "" {
			bad(i, "a security label needs both system and code")
			continue
		}
		if strings.ContainsAny(code, " \t\r\n") {
			bad(i, "a security label code must not contain whitespace")
			continue
		}
		if seen[sys+"|"+code] {
			bad(i, "the same security label appears twice")
			continue
		}
		seen[sys+"|"+code] = true
		if isConfidentialitySystem(sys) {
			if _, ok := confidentialityRank[code]; !ok {
				bad(i, "not a v3-Confidentiality code (U, L, M, N, R or V)")
				continue
			}
			conf++
			if conf > 1 {
				bad(i, "a resource has at most one confidentiality label")
			}
		}
	}
	return issues
}
