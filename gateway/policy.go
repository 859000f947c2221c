package gateway

import (
	"errors"
	"fmt"
	"slices"

	"phix/deid"
	"phix/dlp"
	"phix/transfer"
)

// Policy is the gateway's outbound policy: what each purpose of use sends,
// and the minimization profiles by data class.
type Policy struct {
	// Purposes maps a purpose of use (TREAT, HRESCH, ...) to its rules.
	Purposes map[string]PurposeRule `yaml:"purposes" json:"purposes"`
	// Minimize maps a profile name to what it keeps.
	Minimize map[string]MinimizeProfile `yaml:"minimize" json:"minimize"`
}

// PurposeRule is what one purpose of use sends.
type PurposeRule struct {
	// Deidentify is the default de-identification profile (a deid built-in
	// or a profile file). Empty sends identified data, which only TREAT and
	// ETREAT may do.
	Deidentify string `yaml:"deidentify" json:"deidentify"`
	// DLP is the dlp policy ("default=block,DATE=warn"): any finding whose
	// action is block stops the send.
	DLP string `yaml:"dlp" json:"dlp"`
	// DLPRecord, if set, replaces DLP for the FHIR record once it is
	// de-identified: the profile already generalized its structured dates
	// (to the year) and addresses (to state and ZIP3), which the structured
	// detectors still report, so the default warns on those two kinds and
	// blocks on every other (names, identifiers, phones, e-mails...).
	DLPRecord string `yaml:"dlp_record" json:"dlp_record"`
	// DataClass is the transfer's data class at the coordinator.
	DataClass string `yaml:"data_class" json:"data_class"`
	// Minimize names the minimization profile.
	Minimize string `yaml:"minimize" json:"minimize"`
	// ReidTable ships, with a de-identified record, the deid
	// re-identification table (originals sealed under a fresh key that
	// travels only inside the sealed transfer), so an entitled receiver can
	// restore identifiers.
	ReidTable bool `yaml:"reid_table" json:"reid_table"`
	// DICOMProfile is the deid/dicom profile for DICOM files when
	// de-identifying (default "basic").
	DICOMProfile string `yaml:"dicom_profile" json:"dicom_profile"`
}

// MinimizeProfile keeps only what a purpose needs from a FHIR bundle.
type MinimizeProfile struct {
	// ResourceTypes are kept (every other type dropped); empty keeps all.
	ResourceTypes []string `yaml:"resource_types" json:"resource_types"`
	// DropElements are removed from every resource (e.g. "text").
	DropElements []string `yaml:"drop_elements" json:"drop_elements"`
}

// identifiedPurposes may send identified data (with a valid consent).
var identifiedPurposes = []string{"TREAT", "ETREAT"}

// DefaultPolicy: treatment sends the identified clinical record; every other
// purpose sends a safe-harbor de-identified research set and blocks on any
// DLP finding.
func DefaultPolicy() Policy {
	clinical := MinimizeProfile{ResourceTypes: []string{"Patient", "AllergyIntolerance", "CarePlan", "CareTeam", "Condition",
		"Device", "DiagnosticReport", "DocumentReference", "Encounter", "Goal", "ImagingStudy", "Immunization",
		"MedicationAdministration", "MedicationRequest", "Observation", "Procedure", "ServiceRequest"}}
	research := MinimizeProfile{ResourceTypes: []string{"Patient", "Condition", "Observation", "Procedure",
		"MedicationRequest", "Immunization", "DiagnosticReport", "AllergyIntolerance"}, DropElements: []string{"text"}}
	treat := PurposeRule{DLP: "default=allow", DataClass: "clinical", Minimize: "clinical", ReidTable: true}
	other := PurposeRule{Deidentify: "safe-harbor", DLP: "default=block", DLPRecord: "default=block,DATE=warn,ADDRESS=warn",
		DataClass: "research-deidentified", Minimize: "research"}
	p := Policy{Purposes: map[string]PurposeRule{"TREAT": treat, "ETREAT": treat},
		Minimize: map[string]MinimizeProfile{"clinical": clinical, "research": research}}
	for _, k := range transfer.KnownPurposes {
		if _, ok := p.Purposes[k]; !ok {
			p.Purposes[k] = other
		}
	}
	return p
}

// Validate checks the policy: identified data only for TREAT/ETREAT, DLP
// policies that parse, profiles that exist.
func (p Policy) Validate() error {
	if len(p.Purposes) == 0 {
		return errors.New("gateway: policy lists no purposes")
	}
	for name, r := range p.Purposes {
		if r.Deidentify == "" && !slices.Contains(identifiedPurposes, name) {
			return fmt.Errorf("gateway: policy: purpose %s must de-identify (identified data goes only for TREAT/ETREAT)", name)
		}
		if r.Deidentify != "" {
			if _, err := deid.LoadProfile(r.Deidentify); err != nil {
				return fmt.Errorf("gateway: policy: purpose %s: %w", name, err)
			}
		}
		if _, err := dlp.ParsePolicy(r.DLP); err != nil {
			return fmt.Errorf("gateway: policy: purpose %s: %w", name, err)
		}
		if r.DLPRecord != "" {
			if _, err := dlp.ParsePolicy(r.DLPRecord); err != nil {
				return fmt.Errorf("gateway: policy: purpose %s: dlp_record: %w", name, err)
			}
		}
		if r.Minimize != "" {
			if _, ok := p.Minimize[r.Minimize]; !ok {
				return fmt.Errorf("gateway: policy: purpose %s: unknown minimize profile %q", name, r.Minimize)
			}
		}
		if r.DataClass == "" || !slices.Contains(transfer.KnownDataClasses, r.DataClass) {
			return fmt.Errorf("gateway: policy: purpose %s: unknown data class %q", name, r.DataClass)
		}
	}
	return nil
}
