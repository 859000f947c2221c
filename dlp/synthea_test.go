package dlp

import (
	"encoding/json"
	"strings"
	"testing"

	"phix/internal/testenv"
)

// TestSyntheaBundles scans Synthea FHIR bundles: every Patient name part and
// the birth date must be reported at its path, and free-text detectors may
// report nothing but dates (codes, displays, references and amounts are not
// PHI). Hints built from the Patient find the patient in a note.
func TestSyntheaBundles(t *testing.T) {
	bundles := testenv.SyntheaBundles(t)
	if len(bundles) > 6 {
		bundles = bundles[:6] // bounded: each bundle is megabytes
	}
	for _, bundle := range bundles {
		data := bundle.Data
		fs, err := ScanJSON(data)
		if err != nil {
			t.Fatalf("%s: %v", bundle.Name, err)
		}
		at := map[string][]Type{}
		for _, f := range fs {
			at[f.Location] = append(at[f.Location], f.Type)
			if !strings.HasPrefix(f.Detector, "fhir-") && f.Type != Date {
				t.Errorf("%s: free-text %s finding at %s (%s)", bundle.Name, f.Type, f.Location, f.Detector)
			}
		}
		for i, res := range bundle.Entries(t) {
			var p struct {
				ResourceType string `json:"resourceType"`
				Name         []struct {
					Family string   `json:"family"`
					Given  []string `json:"given"`
				} `json:"name"`
				BirthDate string `json:"birthDate"`
				Telecom   []struct {
					Value string `json:"value"`
				} `json:"telecom"`
				Address []struct {
					Line []string `json:"line"`
				} `json:"address"`
			}
			if err := json.Unmarshal(res, &p); err != nil || p.ResourceType != "Patient" {
				continue
			}
			base := "Bundle.entry[" + itoa(i) + "].resource"
			has := func(loc string, t Type) bool {
				for _, x := range at[loc] {
					if x == t {
						return true
					}
				}
				return false
			}
			for n, name := range p.Name {
				nb := base + ".name[" + itoa(n) + "]"
				if name.Family != "" && !has(nb+".family", Name) {
					t.Errorf("%s: %s.family not reported", bundle.Name, nb)
				}
				for g := range name.Given {
					if !has(nb+".given["+itoa(g)+"]", Name) {
						t.Errorf("%s: %s.given[%d] not reported", bundle.Name, nb, g)
					}
				}
			}
			if p.BirthDate != "" && !has(base+".birthDate", Date) {
				t.Errorf("%s: birthDate not reported", bundle.Name)
			}
			// Hints from the record find the patient in free text.
			if len(p.Name) == 0 || len(p.Name[0].Given) == 0 || len(p.Telecom) == 0 {
				continue
			}
			h := Hints{Names: NameHints(p.Name[0].Family, p.Name[0].Given...), Phones: []string{p.Telecom[0].Value}}
			if len(p.Address) > 0 {
				h.Addresses = p.Address[0].Line
			}
			note := "follow-up: " + strings.ToLower(p.Name[0].Given[0]) + " " + p.Name[0].Family + " called from " + p.Telecom[0].Value + "."
			kinds := map[Type]bool{}
			for _, f := range Default().WithHints(h).ScanText(note) {
				kinds[f.Type] = true
			}
			if !kinds[Name] || !kinds[Phone] {
				t.Errorf("%s: hints missed the patient in a note: %v", bundle.Name, kinds)
			}
		}
	}
}
