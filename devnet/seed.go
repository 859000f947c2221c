package devnet

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"phix/fhirserver"
)

// seedBundle is the demo data a hospital gets on its first start: two
// synthetic patients (Synthea-style, invented) with one observation each. It
// goes through the API like any client transaction.
const seedBundle = `{
  "resourceType": "Bundle", "type": "transaction",
  "entry": [
    {"fullUrl": "urn:uuid:8d6f2a4e-0000-4000-8000-000000000001",
     "resource": {"resourceType": "Patient",
       "identifier": [{"system": "urn:phix:demo:mrn", "value": "%[1]s-0001"}],
       "name": [{"use": "official", "family": "Demo", "given": ["Alex"]}],
       "gender": "female", "birthDate": "1984-03-12"},
     "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:phix:demo:mrn|%[1]s-0001"}},
    {"fullUrl": "urn:uuid:8d6f2a4e-0000-4000-8000-000000000002",
     "resource": {"resourceType": "Patient",
       "identifier": [{"system": "urn:phix:demo:mrn", "value": "%[1]s-0002"}],
       "name": [{"use": "official", "family": "Sample", "given": ["Jordan"]}],
       "gender": "male", "birthDate": "1990-11-02"},
     "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:phix:demo:mrn|%[1]s-0002"}},
    {"resource": {"resourceType": "Observation", "status": "final",
       "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2", "display": "Body Height"}]},
       "subject": {"reference": "urn:uuid:8d6f2a4e-0000-4000-8000-000000000001"},
       "effectiveDateTime": "2024-05-01T09:30:00Z",
       "valueQuantity": {"value": 171.2, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"}},
     "request": {"method": "POST", "url": "Observation"}},
    {"resource": {"resourceType": "Observation", "status": "final",
       "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"}]},
       "subject": {"reference": "urn:uuid:8d6f2a4e-0000-4000-8000-000000000002"},
       "effectiveDateTime": "2024-06-15T14:00:00Z",
       "valueQuantity": {"value": 82.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}},
     "request": {"method": "POST", "url": "Observation"}}
  ]
}`

func seed(ctx context.Context, srv *fhirserver.Server, token, hospital string) error {
	body := fmt.Sprintf(seedBundle, hospital)
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, fhirserver.BasePath, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/fhir+json")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("seeding demo data: status %d", rec.Code)
	}
	return nil
}
