package fhirserver

import (
	"net/url"
	"testing"
)

func TestSearchEngineComposites(t *testing.T) {
	forEachBackend(t, testSearchEngineComposites)
}

// testSearchEngineComposites: the composites the fast path cannot express
// (%resource components, extracted by the FHIRPath engine) and
// DocumentReference-relationship (R4 component expressions corrected) are
// searchable over HTTP.
func testSearchEngineComposites(t *testing.T, e *env) {
	e.do("POST", "/MolecularSequence", map[string]any{
		"resourceType": "MolecularSequence", "type": "dna", "coordinateSystem": 0,
		"referenceSeq": map[string]any{"genomeBuild": "GRCh38", "chromosome": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/chromosome-human", "code": "1"}}}},
		"variant":      []any{map[string]any{"start": 22125500, "end": 22125510}},
	}).want(t, 201)
	e.do("POST", "/DocumentReference", map[string]any{
		"resourceType": "DocumentReference", "status": "current",
		"content":   []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain"}}},
		"relatesTo": []any{map[string]any{"code": "replaces", "target": map[string]any{"reference": "DocumentReference/old"}}},
	}).want(t, 201)
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/MolecularSequence?chromosome-variant-coordinate=" + url.QueryEscape("1$ge22125000$lt22126000"), 1},
		{"/MolecularSequence?chromosome-variant-coordinate=" + url.QueryEscape("2$ge22125000$lt22126000"), 0},
		{"/MolecularSequence?chromosome-variant-coordinate=" + url.QueryEscape("1$ge22126000$lt22127000"), 0},
		{"/DocumentReference?relationship=" + url.QueryEscape("DocumentReference/old$replaces"), 1},
		{"/DocumentReference?relationship=" + url.QueryEscape("DocumentReference/old$transforms"), 0},
	} {
		r := e.do("GET", tc.path, nil, "Prefer", "handling=strict").want(t, 200)
		if r.total() != tc.want {
			t.Errorf("%s: total %d, want %d", tc.path, r.total(), tc.want)
		}
	}
}
