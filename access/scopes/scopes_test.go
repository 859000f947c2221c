package scopes

import (
	"errors"
	"strings"
	"testing"

	"phix/fhir"
)

const labScope = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

func TestParseSpecExamples(t *testing.T) {
	tests := []struct {
		in   string
		want string // canonical String of the set
	}{
		{"patient/Observation.rs", "patient/Observation.rs"},
		{"patient/Observation.read", "patient/Observation.rs"},
		{"user/*.write", "user/*.cud"},
		{"system/*.*", "system/*.cruds"},
		{"user/*.cruds", "user/*.cruds"},
		{"patient/*.rs", "patient/*.rs"},
		{"user/Encounter.c", "user/Encounter.c"},
		{"user/Patient.d", "user/Patient.d"},
		{"patient/Condition.u", "patient/Condition.u"},
		{"launch/patient openid fhirUser offline_access patient/MedicationRequest.rs",
			"fhirUser launch/patient offline_access openid patient/MedicationRequest.rs"},
		{"launch online_access launch/encounter", "launch launch/encounter online_access"},
		{labScope, "patient/Observation.rs?category=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Claboratory"},
		{"patient/Patient.rs?family:exact=Smith", "patient/Patient.rs?family%3Aexact=Smith"},
	}
	for _, tc := range tests {
		s, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := s.String(); got != tc.want {
			t.Errorf("Parse(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseRefused(t *testing.T) {
	tests := []struct {
		in, code string
	}{
		{"", CodeEmpty},
		{"patient/Observation.rcs", CodeBadPermission},
		{"patient/Observation.rrs", CodeBadPermission},
		{"patient/Observation.sr", CodeBadPermission},
		{"patient/Observation.x", CodeBadPermission},
		{"patient/Observation.", CodeBadPermission},
		{"patient/Observation.r*", CodeWildcard},
		{"admin/Observation.rs", CodeUnknownContext},
		{"*/Observation.rs", CodeWildcard},
		{"patient/Obs*.rs", CodeWildcard},
		{"patient/Foo.rs", CodeUnknownType},
		{"patient/Observation", CodeMalformed},
		{"superuser", CodeUnknownScope},
		{"patient/Observation.read?category=laboratory", CodeRestriction},
		{"patient/*.rs?category=laboratory", CodeRestriction},
		{"patient/Observation.rs?", CodeRestriction},
		{"patient/Observation.rs?nosuch=1", CodeRestriction},
		{"patient/Observation.rs?date=gt2020", CodeRestriction},
		{"patient/Observation.rs?_count=5", CodeRestriction},
		{"patient/Observation.rs?code:not=1234", CodeRestriction},
		{"patient/Observation.rs?subject=Patient/1", CodeRestriction},
		{"openid " + strings.Repeat("x", MaxScopeLength+1), CodeMalformed},
	}
	for _, tc := range tests {
		_, err := Parse(tc.in)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Parse(%q) = %v, want *Error %s", tc.in, err, tc.code)
			continue
		}
		if e.Code != tc.code {
			t.Errorf("Parse(%q) code %s, want %s", tc.in, e.Code, tc.code)
		}
		if len(tc.in) > 3 && strings.Contains(e.Error(), tc.in) {
			t.Errorf("error echoes the scope: %v", e)
		}
	}
}

func TestAllows(t *testing.T) {
	s, err := Parse("patient/Observation.rs user/*.cu system/Patient.d")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   Interaction
		typ  string
		ctx  Context
		want bool
	}{
		{Read, "Observation", Patient, true},
		{Search, "Observation", Patient, true},
		{Create, "Observation", Patient, false},
		{Read, "Condition", Patient, false},
		{Read, "Observation", User, false},
		{Create, "Condition", User, true},
		{Update, "Patient", User, true},
		{Delete, "Patient", User, false},
		{Delete, "Patient", System, true},
		{Interaction("patch"), "Patient", System, false},
	}
	for _, tc := range tests {
		if got := s.Allows(tc.in, tc.typ, tc.ctx); got != tc.want {
			t.Errorf("Allows(%s,%s,%s) = %v, want %v", tc.in, tc.typ, tc.ctx, got, tc.want)
		}
	}
}

func obs(t *testing.T, category string) *fhir.Resource {
	t.Helper()
	r, err := fhir.Parse([]byte(`{"resourceType":"Observation","id":"o1","status":"final",
	 "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"`+category+`"}]}],
	 "code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},"subject":{"reference":"Patient/p1"}}`), fhir.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestFilterAndMatches(t *testing.T) {
	s, err := Parse(labScope + " patient/Observation.rs?code=http://loinc.org|8867-4")
	if err != nil {
		t.Fatal(err)
	}
	f := s.Filter("Observation", Patient)
	if !f.Allowed || len(f.Alternatives) != 2 {
		t.Fatalf("Filter = %+v", f)
	}
	if got := f.Alternatives[0].Values.Get("category"); !strings.HasSuffix(got, "|laboratory") {
		t.Errorf("restriction values %q", got)
	}
	if f := s.Filter("Condition", Patient); f.Allowed {
		t.Errorf("Condition filter allowed")
	}
	if !s.Matches(Read, Patient, obs(t, "laboratory")) {
		t.Errorf("lab observation refused")
	}
	if s.Matches(Read, Patient, obs(t, "vital-signs")) {
		t.Errorf("vital-signs observation allowed by a lab-only scope")
	}
	if s.Matches(Update, Patient, obs(t, "laboratory")) {
		t.Errorf("update allowed by a read scope")
	}
	wide, _ := Parse(labScope + " patient/Observation.s")
	if f := wide.Filter("Observation", Patient); !f.Allowed || len(f.Alternatives) != 0 {
		t.Errorf("unrestricted scope should win: %+v", f)
	}
	sys, _ := Parse("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|")
	if !sys.Matches(Read, Patient, obs(t, "vital-signs")) {
		t.Errorf("system| should match any code of the system")
	}
	name, _ := Parse("patient/Patient.rs?family=smi")
	p, _ := fhir.Parse([]byte(`{"resourceType":"Patient","id":"p","name":[{"family":"Smith"}]}`), fhir.ParseOptions{})
	if !name.Matches(Read, Patient, p) {
		t.Errorf("string prefix restriction")
	}
	exact, _ := Parse("patient/Patient.rs?family:exact=Smi")
	if exact.Matches(Read, Patient, p) {
		t.Errorf(":exact matched a prefix")
	}
}

func TestCovers(t *testing.T) {
	granted, err := Parse("openid fhirUser patient/Observation.rs patient/Observation.c " + labScope + " user/*.r")
	if err != nil {
		t.Fatal(err)
	}
	g2, _ := Parse("openid " + labScope)
	tests := []struct {
		granted *Set
		req     string
		want    bool
	}{
		{granted, "patient/Observation.rs", true},
		{granted, "patient/Observation.crs", true}, // from two granted scopes
		{granted, "patient/Observation.read", true},
		{granted, "patient/Observation.cruds", false},
		{granted, "patient/Observation.write", false},
		{granted, "patient/*.rs", false},
		{granted, "user/Condition.r", true},
		{granted, "user/Condition.rs", false},
		{granted, "system/Observation.r", false},
		{granted, "openid fhirUser", true},
		{granted, "offline_access", false},
		{g2, labScope, true},
		{g2, "patient/Observation.rs", false},
		{g2, labScope + "&code=http://loinc.org|1234-5", true},
		{g2, "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs", false},
		{g2, "patient/Observation.rs?code=http://loinc.org|1234-5", false},
	}
	for _, tc := range tests {
		req, err := Parse(tc.req)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.req, err)
		}
		if got := tc.granted.Covers(req); got != tc.want {
			t.Errorf("Covers(%q) = %v, want %v", tc.req, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"patient/Observation.rs", "user/*.write", "system/*.*", labScope,
		"openid fhirUser launch/patient", "patient/Observation.rcs", "x/y.z?a=b", "patient/Patient.rs?name=a,b&gender=male"} {
		f.Add(s)
	}
	o, _ := fhir.Parse([]byte(`{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"}}`), fhir.ParseOptions{})
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		// The canonical form must parse back to an equivalent set.
		back, err := Parse(s.String())
		if err != nil {
			t.Fatalf("canonical form does not parse: %v", err)
		}
		if !s.Covers(back) || !back.Covers(s) {
			t.Fatalf("canonical form changes meaning")
		}
		s.Matches(Read, Patient, o)
		s.Filter("Observation", User)
	})
}
