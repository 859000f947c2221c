package consent

import (
	"testing"
	"time"
)

func TestDescribeResource(t *testing.T) {
	r := parse(t, `{"resourceType":"Observation","id":"o1","status":"final",
	 "meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}],"profile":["http://example.org/p"]},
	 "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],
	 "code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},
	 "subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"},
	 "performer":[{"reference":"Practitioner/dr9"}],
	 "effectiveDateTime":"2025-03-01T00:00:00Z"}`)
	d := DescribeResource(r)
	if d.Type != "Observation" || d.ID != "o1" || len(d.SecurityLabels) != 1 || len(d.Profiles) != 1 {
		t.Fatalf("meta: %+v", d)
	}
	if !d.Date.Equal(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("date %v", d.Date)
	}
	if !contains(d.References, "Patient/p1") || !contains(d.References, "Encounter/e1") || !contains(d.Authors, "Practitioner/dr9") {
		t.Errorf("refs %v authors %v", d.References, d.Authors)
	}
	found := false
	for _, c := range d.Codes {
		found = found || c.Code == "2339-0"
	}
	if !found {
		t.Errorf("codes %v", d.Codes)
	}
	// The described resource decides the 3-deep consent: R is within the
	// label exception, so deny.
	req := baseReq()
	req.Resource = d
	if got := Evaluate([]*Consent{compileSigned(t, "c1", nested3)}, req); got.Effect != Deny {
		t.Errorf("got %+v", got)
	}
	if DescribeResource(nil).Type != "" {
		t.Error("nil")
	}
}
