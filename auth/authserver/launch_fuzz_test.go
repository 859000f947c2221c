package authserver

import (
	"slices"
	"strings"
	"testing"
)

// FuzzLaunchPatient: whatever the user types, the launch context is a
// well-formed FHIR id, one of the user's allowed patients when the user
// has a list, and the user's own record for a patient user.
func FuzzLaunchPatient(f *testing.F) {
	f.Add("p1", "p1,p2", "")
	f.Add("", "p1", "")
	f.Add("../x", "", "")
	f.Add("p9", "p1", "Patient/p7")
	f.Fuzz(func(t *testing.T, typed, list, fhirUser string) {
		var allowed []string
		if list != "" {
			allowed = strings.Split(list, ",")
		}
		u := &User{Patients: allowed, FHIRUser: fhirUser}
		p, ok := launchPatient(u, typed)
		if !ok {
			return
		}
		own, isPatient := strings.CutPrefix(fhirUser, "Patient/")
		switch {
		case isPatient && p != own:
			t.Fatalf("patient user got %q", p)
		case !isPatient && len(allowed) > 0 && !slices.Contains(allowed, p):
			t.Fatalf("%q outside the allowed list", p)
		case !validID(p):
			t.Fatalf("malformed id %q", p)
		}
	})
}
