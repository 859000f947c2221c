package dlp

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// DICOM text values. deid/dicom calls ScanDICOM for each text element it
// keeps. Person names (PN) are names whole; dates (DA, DT) are dates whole
// when they are real calendar dates; times (TM) alone are not identifying
// (HIPAA Safe Harbor lists dates, not times) and give nothing; the text VRs
// (AE, LO, SH, LT, ST, UT, UC) are scanned as text, and a few attributes
// that PS3.15 Annex E lists as identifying are reported whole.

// Tags (group<<16 | element) reported whole by meaning.
var dicomWhole = map[uint32]Type{
	0x00100020: MRN,        // Patient ID
	0x00101000: MRN,        // Other Patient IDs
	0x00101090: MRN,        // Medical Record Locator
	0x00100021: Identifier, // Issuer of Patient ID
	0x00080050: Identifier, // Accession Number
	0x00200010: Identifier, // Study ID
	0x00101040: Address,    // Patient's Address
	0x00102154: Phone,      // Patient's Telephone Numbers
	0x00101060: Name,       // Patient's Mother's Birth Name (PN)
	0x00101001: Name,       // Other Patient Names (PN)
}

// ScanDICOM scans one DICOM element value with the default scanner.
func ScanDICOM(tag uint32, vr, value string) []Finding {
	return defaultScanner.ScanDICOM(tag, vr, value)
}

// ScanDICOM scans one DICOM element value: tag is group<<16|element, vr the
// two-letter value representation, value the decoded string (multiple values
// separated by '\'). Offsets count code points of value.
func (sc *Scanner) ScanDICOM(tag uint32, vr, value string) []Finding {
	if strings.TrimRight(value, " \x00") == "" {
		return nil
	}
	loc := fmt.Sprintf("(%04X,%04X)", tag>>16, tag&0xFFFF)
	n := utf8.RuneCountInString(value)
	whole := func(t Type, det string) []Finding {
		return []Finding{{Type: t, Start: 0, End: n, Score: 0.95, Detector: det, Location: loc}}
	}
	if t, ok := dicomWhole[tag]; ok {
		return whole(t, "dicom-tag")
	}
	switch strings.ToUpper(vr) {
	case "PN":
		return whole(Name, "dicom-pn")
	case "DA":
		for _, v := range strings.FieldsFunc(value, func(r rune) bool { return r == '\\' || r == '-' }) {
			v = strings.TrimSpace(v)
			if len(v) == 8 && allDigits(v) && validDate(atoi(v[:4]), atoi(v[4:6]), atoi(v[6:8])) {
				return whole(Date, "dicom-da")
			}
		}
		return nil
	case "DT":
		for _, v := range strings.Split(value, "\\") {
			v = strings.TrimSpace(v)
			if len(v) >= 8 && allDigits(v[:8]) && validDate(atoi(v[:4]), atoi(v[4:6]), atoi(v[6:8])) {
				return whole(Date, "dicom-dt")
			}
		}
		return nil
	case "AE", "LO", "SH", "LT", "ST", "UT", "UC":
		fs := sc.ScanText(value)
		for i := range fs {
			fs[i].Location = loc
		}
		return fs
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}
