package dicom

import (
	"strings"

	dcm "github.com/suyashkumar/dicom"
)

// CleanPixelRule certifies a kind of image as free of burned-in text, so
// a US or SC image matching it is not quarantined. Empty fields match
// anything, but a rule must name at least a Manufacturer or a model.
type CleanPixelRule struct {
	Modality    string `json:"modality"`
	SOPClassUID string `json:"sopClassUID"`
	// Manufacturer and ManufacturerModelName match (0008,0070) and
	// (0008,1090) exactly (case-insensitive).
	Manufacturer string `json:"manufacturer"`
	Model        string `json:"model"`
	// Rows and Columns match the matrix when non-zero.
	Rows    int `json:"rows"`
	Columns int `json:"columns"`
}

// Quarantine reasons. They are fixed strings: no value of the file.
const (
	ReasonBurnedIn      = "BurnedInAnnotation is YES"
	ReasonUltrasound    = "ultrasound image without a clean-pixel rule"
	ReasonSecondaryCapt = "secondary capture image without a clean-pixel rule"
)

// scSOPClasses are the Secondary Capture storage SOP classes.
var scSOPClasses = map[string]bool{
	"1.2.840.10008.5.1.4.1.1.7":   true,
	"1.2.840.10008.5.1.4.1.1.7.1": true,
	"1.2.840.10008.5.1.4.1.1.7.2": true,
	"1.2.840.10008.5.1.4.1.1.7.3": true,
	"1.2.840.10008.5.1.4.1.1.7.4": true,
}

// usSOPClasses are the ultrasound image storage SOP classes (current and
// retired).
var usSOPClasses = map[string]bool{
	"1.2.840.10008.5.1.4.1.1.6.1": true,
	"1.2.840.10008.5.1.4.1.1.6.2": true,
	"1.2.840.10008.5.1.4.1.1.6":   true,
	"1.2.840.10008.5.1.4.1.1.3.1": true,
	"1.2.840.10008.5.1.4.1.1.3":   true,
}

// quarantine decides on the original (decoded) dataset whether its pixels
// may carry burned-in identifying text.
func (d *Deidentifier) quarantine(body []*dcm.Element) (bool, string) {
	if strings.EqualFold(firstString(body, 0x00280301), "YES") {
		return true, ReasonBurnedIn
	}
	hasPixels := false
	for _, e := range body {
		if t := tagOf(e); t == 0x7FE00010 || t == 0x7FE00008 || t == 0x7FE00009 {
			hasPixels = true
		}
	}
	if !hasPixels {
		return false, ""
	}
	modality := strings.ToUpper(firstString(body, 0x00080060))
	class := firstString(body, 0x00080016)
	var reason string
	switch {
	case modality == "US" || usSOPClasses[class]:
		reason = ReasonUltrasound
	case scSOPClasses[class]:
		reason = ReasonSecondaryCapt
	default:
		return false, ""
	}
	for _, r := range d.cfg.CleanPixel {
		if r.matches(body, modality, class) {
			return false, ""
		}
	}
	return true, reason
}

func (r CleanPixelRule) matches(body []*dcm.Element, modality, class string) bool {
	if r.Manufacturer == "" && r.Model == "" {
		return false
	}
	eq := func(want, got string) bool { return want == "" || strings.EqualFold(strings.TrimSpace(want), got) }
	if !eq(r.Modality, modality) || !eq(r.SOPClassUID, class) ||
		!eq(r.Manufacturer, firstString(body, 0x00080070)) || !eq(r.Model, firstString(body, 0x00081090)) {
		return false
	}
	if r.Rows != 0 && intOf(body, 0x00280010) != r.Rows {
		return false
	}
	if r.Columns != 0 && intOf(body, 0x00280011) != r.Columns {
		return false
	}
	return true
}

func intOf(body []*dcm.Element, t uint32) int {
	for _, e := range body {
		if tagOf(e) == t {
			if v, ok := e.Value.GetValue().([]int); ok && len(v) > 0 {
				return v[0]
			}
		}
	}
	return -1
}
