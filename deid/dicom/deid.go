package dicom

import (
	"bytes"
	"sort"
	"strings"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"golang.org/x/text/encoding/charmap"

	"phix/deid"
	"phix/dlp"
)

// DateShifter gives the day offset of a patient. *deid.Pseudonymizer
// implements it, so DICOM files and FHIR resources of one transfer share
// the shift of the same patient key.
type DateShifter interface {
	DateShiftDays(patientKey string) int
}

// UIDMapper maps a UID to its keyed 2.25 replacement. *deid.Pseudonymizer
// implements it.
type UIDMapper interface {
	UID(uid string) string
}

// TextScanner finds PHI in one DICOM text value (tag is group<<16|element).
// dlp.Scanner implements it; the Clean actions redact only its findings.
type TextScanner interface {
	ScanDICOM(tag uint32, vr, value string) []dlp.Finding
}

// dlpDefault adapts dlp's package-level scanner.
type dlpDefault struct{}

func (dlpDefault) ScanDICOM(t uint32, vr, v string) []dlp.Finding { return dlp.ScanDICOM(t, vr, v) }

// Config configures a Deidentifier.
type Config struct {
	// Profile is the Basic Profile and its options; nil is Basic alone.
	Profile *Profile
	// Keys derive UID remapping and the date shift (usually one
	// *deid.Pseudonymizer per project, shared with the FHIR engine).
	UIDs   UIDMapper
	Shifts DateShifter
	// Pseudonyms, when set, gives PatientID a keyed pseudonym instead of
	// emptying it, so a patient's files stay linkable.
	Pseudonyms interface {
		Pseudonym(namespace, value string) string
	}
	// PatientKey maps the file's PatientID and IssuerOfPatientID to the key
	// the FHIR engine shifts dates under (the FHIR Patient.id). Nil uses
	// PatientID itself.
	PatientKey func(patientID, issuer string) string
	// Scanner cleans descriptors; nil uses dlp's default scanner.
	Scanner TextScanner
	// CleanPixel lists the image kinds certified free of burned-in text;
	// US and SC images match none by default and are quarantined.
	CleanPixel []CleanPixelRule
	// SafePrivate overrides the built-in safe private attributes of the
	// Retain Safe Private option; nil uses SafePrivateDefault.
	SafePrivate []SafePrivateTag
	// MaxFileSize bounds one input file (bytes); 0 is DefaultMaxFileSize.
	// Larger files are refused with PHI-6008 before they are read.
	MaxFileSize int64
}

// DefaultMaxFileSize is the input bound when Config.MaxFileSize is 0.
const DefaultMaxFileSize = 2 << 30

// NewConfig builds a Config from a profile string and a deid.Pseudonymizer.
func NewConfig(profile string, ps *deid.Pseudonymizer) (Config, error) {
	p, err := ParseProfile(profile)
	if err != nil {
		return Config{}, err
	}
	if ps == nil {
		return Config{}, &Error{Code: CodeBadOption, Stage: "options", Msg: "no pseudonymizer (keys)"}
	}
	return Config{Profile: p, UIDs: ps, Shifts: ps, Pseudonyms: ps}, nil
}

// Deidentifier applies one Config to many files; it is safe for
// concurrent use.
type Deidentifier struct {
	cfg  Config
	prof *Profile
	safe map[safeKey]bool
}

// New checks cfg and returns a Deidentifier.
func New(cfg Config) (*Deidentifier, error) {
	if cfg.Profile == nil {
		cfg.Profile = &Profile{}
	}
	if cfg.UIDs == nil && !cfg.Profile.on[optUIDs] {
		return nil, &Error{Code: CodeBadOption, Stage: "options", Msg: "UID remapping needs keys"}
	}
	if cfg.Shifts == nil && cfg.Profile.on[optLongModified] {
		return nil, &Error{Code: CodeBadOption, Stage: "options", Msg: "retain-long-modified needs keys"}
	}
	if cfg.Scanner == nil {
		cfg.Scanner = dlpDefault{}
	}
	if cfg.SafePrivate == nil {
		cfg.SafePrivate = SafePrivateDefault
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	d := &Deidentifier{cfg: cfg, prof: cfg.Profile, safe: map[safeKey]bool{}}
	for _, s := range cfg.SafePrivate {
		d.safe[safeKey{strings.TrimSpace(s.Creator), s.Group, s.Element}] = true
	}
	return d, nil
}

// Result is the outcome of one file.
type Result struct {
	// Data is the de-identified Part 10 file. For a quarantined file it is
	// the de-identified file too (header clean, pixels not), for review.
	Data []byte
	// Quarantined files must not be sent; Reason says why (no PHI).
	Quarantined bool
	Reason      string
	// ShiftDays is the date offset applied (0 unless retain-long-modified).
	ShiftDays int
}

// Deidentify de-identifies one DICOM Part 10 file (or a bare dataset).
// data is not modified. Any failure is a PHI-6008 *Error and no output.
func (d *Deidentifier) Deidentify(data []byte) (*Result, error) {
	return d.deidentify(data, false)
}

// deidentify is Deidentify; owned says data is ours to patch in place
// (read by this package), which saves a copy of the file.
func (d *Deidentifier) deidentify(data []byte, owned bool) (res *Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			// The panic value may quote element values: drop it.
			res, err = nil, failed("parse", "malformed DICOM (parser fault)", nil)
		}
	}()
	if int64(len(data)) > d.cfg.MaxFileSize {
		return nil, failed("io", "file too large", nil)
	}
	rf, err := prepare(data, owned)
	if err != nil {
		return nil, err
	}
	popts := []dcm.ParseOption{dcm.SkipProcessingPixelDataValue(), dcm.AllowUnknownSpecificCharacterSet(), dcm.AllowMissingMetaElementGroupLength()}
	if rf.pix.copyable() {
		// The pixel data is copied through from rf.data at write time.
		popts = append(popts, dcm.SkipPixelData())
	}
	ds, err := dcm.Parse(bytes.NewReader(rf.data), int64(len(rf.data)), nil, popts...)
	if err != nil {
		return nil, failed("parse", "malformed DICOM", err)
	}
	if len(ds.Elements) == 0 {
		return nil, failed("parse", "no elements", nil)
	}
	cs, ok := newCharset(rf.charset)
	if !ok {
		return nil, failed("charset", "unsupported specific character set", nil)
	}
	var meta, body []*dcm.Element
	for _, e := range ds.Elements {
		if e.Tag.Group == 0x0002 {
			meta = append(meta, e)
		} else {
			body = append(body, e)
		}
	}
	if len(body) == 0 {
		return nil, failed("parse", "no dataset after the file meta information", nil)
	}
	if err := decodeText(body, cs, cs.initial(rf.charset)); err != nil {
		return nil, err
	}
	run := &fileRun{d: d, secrets: collectSecrets(body)}
	pid, issuer := firstString(body, 0x00100020), firstString(body, 0x00100021)
	if d.prof.on[optLongModified] {
		key := pid
		if d.cfg.PatientKey != nil {
			key = d.cfg.PatientKey(pid, issuer)
		}
		run.shift = d.cfg.Shifts.DateShiftDays(key)
	}
	q, reason := d.quarantine(body)

	body, err = run.elements(body)
	if err != nil {
		return nil, err
	}
	body, err = d.addMethod(body)
	if err != nil {
		return nil, err
	}
	body = setCharset(body)
	meta, err = d.newMeta(meta, body, rf.ts)
	if err != nil {
		return nil, err
	}
	out, err := encode(meta, body, rf)
	if err != nil {
		return nil, err
	}
	if len(rf.owTags) > 0 {
		// Written as OB (one copy, in the file's byte order); label them
		// OW again in place.
		if err := relabelOW(out.Bytes(), rf.ts, rf.owTags); err != nil {
			return nil, err
		}
	}
	if run.leaks(out.Bytes()) {
		return nil, failed("verify", "an original identifier survived in the output", nil)
	}
	return &Result{Data: out.Bytes(), Quarantined: q, Reason: reason, ShiftDays: run.shift}, nil
}

// encode writes the output file into one buffer. When the pre-check
// located the top-level Pixel Data, the library skipped it and its
// encoded bytes are copied from the input here (the output keeps the
// input's byte order and VR mode, so they need no re-encoding).
func encode(meta, body []*dcm.Element, rf *rawFile) (*bytes.Buffer, error) {
	wopts := []dcm.WriteOption{dcm.SkipVRVerification(), dcm.SkipValueTypeVerification()}
	out := bytes.NewBuffer(make([]byte, 0, len(rf.data)+1024))
	if !rf.pix.copyable() {
		if err := dcm.Write(out, dcm.Dataset{Elements: append(meta, body...)}, wopts...); err != nil {
			return nil, failed("write", "cannot encode the de-identified dataset", err)
		}
		return out, nil
	}
	// In body order, not by search: a file's tags may be out of order.
	before, after, found := body, []*dcm.Element(nil), false
	for i, e := range body {
		if tagOf(e) == 0x7FE00010 {
			before, after, found = body[:i:i], body[i+1:], true
			break
		}
	}
	if err := dcm.Write(out, dcm.Dataset{Elements: append(meta, before...)}, wopts...); err != nil {
		return nil, failed("write", "cannot encode the de-identified dataset", err)
	}
	if found {
		out.Write(rf.data[rf.pix.start:rf.pix.end])
	}
	if len(after) > 0 {
		bo, implicit, err := syntaxOf(rf.ts)
		if err != nil {
			return nil, err
		}
		w, err := dcm.NewWriter(out, wopts...)
		if err != nil {
			return nil, failed("write", "cannot encode the de-identified dataset", err)
		}
		w.SetTransferSyntax(bo, implicit)
		for _, e := range after {
			if err := w.WriteElement(e); err != nil {
				return nil, failed("write", "cannot encode the de-identified dataset", err)
			}
		}
	}
	return out, nil
}

// decodeText turns every text value into UTF-8 under the charset in
// force: the file's, or an item's own (0008,0005).
func decodeText(elems []*dcm.Element, cs *charset, latin0 *charmap.Charmap) error {
	for _, e := range elems {
		if e.Tag.Group == 0x0008 && e.Tag.Element == 0x0005 {
			continue
		}
		switch v := e.Value.GetValue().(type) {
		case []*dcm.SequenceItemValue:
			for _, it := range v {
				items, _ := it.GetValue().([]*dcm.Element)
				ics, il := cs, latin0
				if s := stringsOf(items, 0x00080005); s != nil {
					var ok bool
					if ics, ok = newCharset(s); !ok {
						return failed("charset", "unsupported specific character set in a sequence item", nil)
					}
					il = ics.initial(s)
				}
				if err := decodeText(items, ics, il); err != nil {
					return err
				}
			}
		case []string:
			if !textVR(e.RawValueRepresentation) {
				continue
			}
			raw := strings.Join(v, `\`)
			if isASCII(raw) {
				continue
			}
			dec := cs.decode(raw, latin0)
			nv, err := dcm.NewValue(strings.Split(dec, `\`))
			if err != nil {
				return failed("charset", "cannot hold a decoded value", nil)
			}
			e.Value = nv
		}
	}
	return nil
}

func stringsOf(elems []*dcm.Element, t uint32) []string {
	for _, e := range elems {
		if tagOf(e) == t {
			if s, ok := e.Value.GetValue().([]string); ok {
				return s
			}
		}
	}
	return nil
}

func firstString(elems []*dcm.Element, t uint32) string {
	s := stringsOf(elems, t)
	if len(s) == 0 {
		return ""
	}
	return strings.TrimSpace(s[0])
}

func tagOf(e *dcm.Element) uint32 { return uint32(e.Tag.Group)<<16 | uint32(e.Tag.Element) }

// setCharset declares UTF-8 when any text is not ASCII (and whenever the
// input declared a set), in the file and in items that declared their own.
func setCharset(body []*dcm.Element) []*dcm.Element {
	nonASCII := false
	var walk func([]*dcm.Element)
	walk = func(es []*dcm.Element) {
		for _, e := range es {
			switch v := e.Value.GetValue().(type) {
			case []string:
				if tagOf(e) == 0x00080005 {
					e.Value, _ = dcm.NewValue([]string{"ISO_IR 192"})
					continue
				}
				for _, s := range v {
					if !isASCII(s) {
						nonASCII = true
					}
				}
			case []*dcm.SequenceItemValue:
				for _, it := range v {
					items, _ := it.GetValue().([]*dcm.Element)
					walk(items)
				}
			}
		}
	}
	walk(body)
	if nonASCII && stringsOf(body, 0x00080005) == nil {
		body = insertSorted(body, mustElem(0x00080005, "CS", []string{"ISO_IR 192"}))
	}
	return body
}

// newMeta rebuilds the file meta information: the instance UID follows the
// remapped SOP Instance UID and the implementation is phix's.
func (d *Deidentifier) newMeta(meta, body []*dcm.Element, ts string) ([]*dcm.Element, error) {
	if ts == "" || ts == tsDeflated {
		ts = tsExplicitLE
	}
	switch ts {
	case tsImplicitLE, tsExplicitLE, tsExplicitBE:
	default:
		// Encapsulated (compressed) syntaxes: the pixel data is passed as
		// it was read.
		if !strings.HasPrefix(ts, "1.2.840.10008.1.2.") {
			return nil, failed("write", "unknown transfer syntax", nil)
		}
	}
	sopClass := firstString(body, 0x00080016)
	sopInst := firstString(body, 0x00080018)
	if sopClass == "" {
		sopClass = firstString(meta, 0x00020002)
	}
	if sopClass == "" || sopInst == "" {
		return nil, failed("write", "missing SOP Class or SOP Instance UID", nil)
	}
	return []*dcm.Element{
		mustElemBytes(0x00020001, "OB", []byte{0, 1}),
		mustElem(0x00020002, "UI", []string{sopClass}),
		mustElem(0x00020003, "UI", []string{sopInst}),
		mustElem(0x00020010, "UI", []string{ts}),
		mustElem(0x00020012, "UI", []string{ImplementationClassUID}),
		mustElem(0x00020013, "SH", []string{"PHIX_DEID_1"}),
	}, nil
}

// ImplementationClassUID identifies phix's writer in the file meta.
const ImplementationClassUID = "2.25.229741283015347853839271498410731585231"

func mustElem(t uint32, vr string, v []string) *dcm.Element {
	val, _ := dcm.NewValue(v)
	return &dcm.Element{Tag: tag.Tag{Group: uint16(t >> 16), Element: uint16(t)}, RawValueRepresentation: vr, ValueRepresentation: tag.GetVRKind(tag.Tag{Group: uint16(t >> 16), Element: uint16(t)}, vr), Value: val}
}

func mustElemBytes(t uint32, vr string, v []byte) *dcm.Element {
	val, _ := dcm.NewValue(v)
	return &dcm.Element{Tag: tag.Tag{Group: uint16(t >> 16), Element: uint16(t)}, RawValueRepresentation: vr, ValueRepresentation: tag.VRBytes, Value: val}
}

func seqElem(t uint32, items [][]*dcm.Element) *dcm.Element {
	val, _ := dcm.NewValue(items)
	return &dcm.Element{Tag: tag.Tag{Group: uint16(t >> 16), Element: uint16(t)}, RawValueRepresentation: "SQ", ValueRepresentation: tag.VRSequence, Value: val, ValueLength: tag.VLUndefinedLength}
}

// insertSorted puts e in tag order, replacing an element of the same tag.
func insertSorted(es []*dcm.Element, e *dcm.Element) []*dcm.Element {
	t := tagOf(e)
	i := sort.Search(len(es), func(i int) bool { return tagOf(es[i]) >= t })
	if i < len(es) && tagOf(es[i]) == t {
		es[i] = e
		return es
	}
	es = append(es, nil)
	copy(es[i+1:], es[i:])
	es[i] = e
	return es
}

// addMethod records what was done: PatientIdentityRemoved, the method and
// its code sequence, and the state of longitudinal temporal information.
func (d *Deidentifier) addMethod(body []*dcm.Element) ([]*dcm.Element, error) {
	methods := []string{"PS3.15 E Basic Profile (phix)"}
	items := [][]*dcm.Element{codeItem("113100", "Basic Application Confidentiality Profile")}
	for _, o := range d.prof.list {
		info := optionInfo[o]
		methods = append(methods, string(o))
		items = append(items, codeItem(info.code, info.meaning))
	}
	body = insertSorted(body, mustElem(0x00120062, "CS", []string{"YES"}))
	body = insertSorted(body, mustElem(0x00120063, "LO", methods))
	body = insertSorted(body, seqElem(0x00120064, items))
	lt := "REMOVED"
	switch {
	case d.prof.on[optLongFull]:
		lt = "UNMODIFIED"
	case d.prof.on[optLongModified]:
		lt = "MODIFIED"
	}
	body = insertSorted(body, mustElem(0x00280303, "CS", []string{lt}))
	return body, nil
}

func codeItem(value, meaning string) []*dcm.Element {
	return []*dcm.Element{
		mustElem(0x00080100, "SH", []string{value}),
		mustElem(0x00080102, "SH", []string{"DCM"}),
		mustElem(0x00080104, "LO", []string{meaning}),
	}
}
