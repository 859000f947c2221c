package roles_test

import (
	"errors"
	"testing"

	"phix/access/roles"
)

func TestSeparationOfDuties(t *testing.T) {
	for _, a := range roles.Exclusive {
		for _, b := range roles.Exclusive {
			rs, err := roles.Assign([]roles.Role{a}, b)
			if a == b {
				if err != nil || len(rs) != 1 {
					t.Fatalf("re-assigning %s: %v", a, err)
				}
				continue
			}
			if !errors.Is(err, roles.ErrSeparationOfDuty) {
				t.Fatalf("%s + %s: %v, want separation-of-duty refusal", a, b, err)
			}
			if _, err := roles.Parse([]string{string(a), string(b)}); !errors.Is(err, roles.ErrSeparationOfDuty) {
				t.Fatalf("token with %s and %s accepted", a, b)
			}
		}
	}
	// Non-exclusive combinations are fine.
	for _, ok := range [][]string{{"clinician", "nurse"}, {"auditor", "key-custodian"}, {"system-admin", "clinician"}, {}} {
		if _, err := roles.Parse(ok); err != nil {
			t.Fatalf("%v: %v", ok, err)
		}
	}
	if _, err := roles.Parse([]string{"superuser"}); !errors.Is(err, roles.ErrUnknownRole) {
		t.Fatalf("unknown role accepted: %v", err)
	}
}
