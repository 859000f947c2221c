package policy

import "phix/fhir"

// deidentifiedCodes are HL7 v3 ObservationValue security labels that mark
// data as de-identified (anonymized or pseudonymized): such a resource is of
// data class "deidentified" whatever its type.
var deidentifiedCodes = map[string]bool{"ANONYED": true, "PSEUDED": true}

// ResourceFrom describes a FHIR resource for a decision: its type, its
// security label codes (meta.security) and its data class — "deidentified"
// when labelled ANONYED or PSEUDED, else DataClass(type). org is the owning
// organisation ("" for this node's own data).
func ResourceFrom(r *fhir.Resource, org string) Resource {
	if r == nil {
		return Resource{}
	}
	out := Resource{Type: r.Type, DataClass: DataClass(r.Type), Org: org}
	meta, _ := r.Object["meta"].(map[string]any)
	sec, _ := meta["security"].([]any)
	for _, s := range sec {
		c, _ := s.(map[string]any)
		code, _ := c["code"].(string)
		if code == "" {
			continue
		}
		out.Labels = append(out.Labels, code)
		if deidentifiedCodes[code] {
			out.DataClass = ClassDeidentified
		}
	}
	return out
}
