package dicom

// SafePrivateTag names one private attribute the Retain Safe Private
// option keeps: its private creator, group and element offset within the
// creator's block (the low byte of the element).
type SafePrivateTag struct {
	Creator string `json:"creator"`
	Group   uint16 `json:"group"`
	Element uint8  `json:"element"`
}

type safeKey struct {
	Creator string
	Group   uint16
	Element uint8
}

// SafePrivateDefault is the built-in safe list: acquisition parameters
// from PS3.15 Table E.3.10-1 that tools rely on for diffusion and mosaic
// reconstruction. Only numeric values are ever kept.
var SafePrivateDefault = []SafePrivateTag{
	{"SIEMENS MR HEADER", 0x0019, 0x0A},      // NumberOfImagesInMosaic
	{"SIEMENS MR HEADER", 0x0019, 0x0C},      // B_value
	{"SIEMENS MR HEADER", 0x0019, 0x0E},      // DiffusionGradientDirection
	{"SIEMENS MR HEADER", 0x0019, 0x27},      // B_matrix
	{"GEMS_PARM_01", 0x0043, 0x39},           // slop_int_6..9 (b-value)
	{"Philips Imaging DD 001", 0x2001, 0x03}, // Diffusion B-Factor
}
