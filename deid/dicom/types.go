package dicom

// iodType is the strictest Type (1, 2 or 3) an attribute with a compound
// action has in the standard composite IODs as far as we know: Type 1
// somewhere resolves to D (or U), Type 2 to Z, Type 3 everywhere to X.
// An attribute missing here resolves to the most protective choice, X (Z
// for Z/D). Because the IOD of a file is not looked up, the strictest type
// keeps every IOD conformant at the price of keeping an empty or dummy
// attribute where a lenient IOD would allow removal.
var iodType = map[uint32]uint8{
	0x00080012: 3, // Instance Creation Date (SOP Common)
	0x00080013: 3, // Instance Creation Time
	0x00080021: 3, // Series Date
	0x00080022: 2, // Acquisition Date
	0x00080023: 1, // Content Date (Type 1 in SR and enhanced IODs)
	0x0008002A: 1, // Acquisition DateTime (Type 1C in enhanced IODs)
	0x00080031: 3, // Series Time
	0x00080032: 2, // Acquisition Time
	0x00080033: 1, // Content Time
	0x00080080: 3, // Institution Name
	0x00080082: 3, // Institution Code Sequence
	0x00081010: 3, // Station Name
	0x00081070: 2, // Operators' Name (Type 2 in RT Series)
	0x00081072: 3, // Operator Identification Sequence
	0x00081110: 2, // Referenced Study Sequence
	0x00081111: 2, // Referenced Performed Procedure Step Sequence
	0x00081140: 1, // Referenced Image Sequence (Type 1C in localizer/RT use)
	0x00082112: 1, // Source Image Sequence (Type 1C in derived images)
	0x00100020: 2, // Patient ID
	0x00102203: 2, // Patient's Sex Neutered (Type 2C)
	0x00180010: 2, // Contrast/Bolus Agent
	0x00181000: 1, // Device Serial Number (Type 1 in Enhanced General Equipment)
	0x00181030: 3, // Protocol Name
	0x00181400: 3, // Acquisition Device Processing Description
	0x0018700A: 3, // Detector ID
	0x0018700C: 3, // Date of Last Detector Calibration
	0x0018700E: 3, // Time of Last Detector Calibration
	0x00189516: 1, // Start Acquisition DateTime (Type 1C)
	0x00189517: 1, // End Acquisition DateTime (Type 1C)
	0x00189919: 1, // Instruction Performed DateTime
	0x00321060: 2, // Requested Procedure Description
	0x00400555: 2, // Acquisition Context Sequence
	0x0040A032: 1, // Observation DateTime (Type 1C in SR content items)
	0x00700084: 2, // Content Creator's Name
	0x22000002: 2, // Label Text
	0x22000005: 2, // Barcode Value
	0x30080054: 3, // First Treatment Date
	0x30080056: 3, // Most Recent Treatment Date
	0x30080105: 2, // Source Serial Number
	0x30080250: 1, // Treatment Date
	0x30080251: 1, // Treatment Time
	0x300A0006: 1, // RT Plan Date
	0x300A0007: 1, // RT Plan Time
	0x300A00B2: 2, // Treatment Machine Name
	0x300E0008: 2, // Reviewer Name
	0x3010004C: 1, // Intended Phase Start Date
	0x3010004D: 1, // Intended Phase End Date
	0x30100056: 1, // RT Treatment Approach Label
	0x30100077: 1, // Treatment Site
}

// resolveCompound turns X/Z, X/D, X/Z/D, X/Z/U* and Z/D into one action.
func resolveCompound(a action, t uint32) action {
	ty, known := iodType[t]
	switch a {
	case actXZ:
		if known && ty <= 2 {
			return actZ
		}
		return actX
	case actXD:
		if known && ty <= 2 {
			return actD
		}
		return actX
	case actXZD:
		switch {
		case known && ty == 1:
			return actD
		case known && ty == 2:
			return actZ
		}
		return actX
	case actXZU:
		switch {
		case known && ty == 1:
			return actU
		case known && ty == 2:
			return actZ
		}
		return actX
	case actZD:
		if known && ty == 1 {
			return actD
		}
		return actZ
	}
	return a
}

// uidClassTags hold UIDs of classes, syntaxes and schemes, not of
// instances: they identify nothing and are kept.
var uidClassTags = map[uint32]bool{
	0x00020002: true, 0x00020010: true, 0x00020012: true, // meta
	0x00080016: true, // SOP Class UID
	0x00081150: true, // Referenced SOP Class UID
	0x0008010C: true, // Coding Scheme UID
	0x00080062: true, // SOP Classes in Study
	0x0008001A: true, // Related General SOP Class UID
	0x0008001B: true, // Original Specialized SOP Class UID
	0x00041510: true, // Referenced SOP Class UID in File
	0x00041512: true, // Referenced Transfer Syntax UID in File
	0x0040DB0C: true, // Template Extension Organization UID
	0x0008010D: true, // Context Group Extension Creator UID
	0x00080117: true, // Context UID
}
