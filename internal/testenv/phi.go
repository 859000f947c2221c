package testenv

import (
	"encoding/json"
	"strings"
	"testing"
)

// PatientPHI is the PHI of the Patients in one Synthea bundle, for the tests
// that prove nothing leaks: Words (names and cities) are matched as whole
// words, Values (identifier values, phone numbers, address lines) as
// substrings. Never print either: they are what must not appear.
type PatientPHI struct {
	Words, Values []string
}

// SyntheaPatient is the identifying part of one Synthea Patient resource.
type SyntheaPatient struct {
	ID        string `json:"id"`
	BirthDate string `json:"birthDate"`
	Name      []struct {
		Family string   `json:"family"`
		Given  []string `json:"given"`
	} `json:"name"`
	Identifier []struct {
		Value string `json:"value"`
	} `json:"identifier"`
	Telecom []struct {
		Value string `json:"value"`
	} `json:"telecom"`
	Address []struct {
		Line []string `json:"line"`
		City string   `json:"city"`
	} `json:"address"`
}

// SyntheaPatients returns the Patients of a Synthea bundle.
func SyntheaPatients(t testing.TB, bundle []byte) []SyntheaPatient {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatalf("synthea bundle: %v", err)
	}
	var out []SyntheaPatient
	for _, e := range b.Entry {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(e.Resource, &head) != nil || head.ResourceType != "Patient" {
			continue
		}
		var r SyntheaPatient
		if err := json.Unmarshal(e.Resource, &r); err != nil {
			t.Fatalf("synthea Patient: %v", err)
		}
		out = append(out, r)
	}
	return out
}

// SyntheaPHI collects the PHI of the Patients in bundle.
func SyntheaPHI(t testing.TB, bundle []byte) PatientPHI {
	t.Helper()
	var phi PatientPHI
	for _, r := range SyntheaPatients(t, bundle) {
		for _, n := range r.Name {
			phi.Words = append(phi.Words, n.Family)
			phi.Words = append(phi.Words, n.Given...)
		}
		for _, i := range r.Identifier {
			phi.Values = append(phi.Values, i.Value)
		}
		for _, c := range r.Telecom {
			phi.Values = append(phi.Values, c.Value)
		}
		for _, a := range r.Address {
			phi.Values = append(phi.Values, a.Line...)
			phi.Words = append(phi.Words, a.City)
		}
	}
	return phi
}

// ContainsWord reports whether w occurs in s bounded on both sides by bytes
// that are not ASCII letters or digits nor part of a multi-byte UTF-8 rune.
func ContainsWord(s, w string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(w)
		if (j == 0 || !isWordByte(s[j-1])) && (end == len(s) || !isWordByte(s[end])) {
			return true
		}
		i = j + 1
	}
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
