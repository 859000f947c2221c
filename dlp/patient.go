package dlp

import (
	"encoding/json"
	"strings"
)

// HintsFromPatient builds Hints from a FHIR R4 Patient (or RelatedPerson,
// Practitioner) in JSON: every HumanName (family with given, and the text),
// identifier values, telecom values (phones and emails) and address lines,
// cities and texts. A document that is not such a resource is an *Error
// with CodeInvalidJSON.
func HintsFromPatient(data []byte) (Hints, error) {
	var p struct {
		ResourceType string `json:"resourceType"`
		Name         []struct {
			Text   string   `json:"text"`
			Family string   `json:"family"`
			Given  []string `json:"given"`
		} `json:"name"`
		Identifier []struct {
			Value string `json:"value"`
		} `json:"identifier"`
		Telecom []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"telecom"`
		Address []struct {
			Text string   `json:"text"`
			Line []string `json:"line"`
			City string   `json:"city"`
		} `json:"address"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return Hints{}, errorf(CodeInvalidJSON, "%s", jsonErrMsg(err))
	}
	if p.ResourceType == "" {
		return Hints{}, errorf(CodeInvalidJSON, "not a FHIR resource (no resourceType)")
	}
	var h Hints
	for _, n := range p.Name {
		h.Names = append(h.Names, NameHints(n.Family, n.Given...)...)
		if strings.TrimSpace(n.Text) != "" {
			h.Names = append(h.Names, n.Text)
		}
	}
	for _, id := range p.Identifier {
		if strings.TrimSpace(id.Value) != "" {
			h.Identifiers = append(h.Identifiers, id.Value)
		}
	}
	for _, t := range p.Telecom {
		switch {
		case t.System == "email" || strings.Contains(t.Value, "@"):
			h.Emails = append(h.Emails, t.Value)
		case t.System == "phone" || t.System == "fax" || t.System == "sms" || t.System == "":
			h.Phones = append(h.Phones, t.Value)
		}
	}
	for _, a := range p.Address {
		h.Addresses = append(h.Addresses, a.Line...)
		if a.Text != "" {
			h.Addresses = append(h.Addresses, a.Text)
		}
		// A city alone is too common to be a hint; it counts with a line.
	}
	return h, nil
}
