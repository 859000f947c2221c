package dicom

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dcm "github.com/suyashkumar/dicom"
)

// parsed reads an output file back with the library (it is UTF-8 now).
func parsed(t testing.TB, data []byte) []*dcm.Element {
	t.Helper()
	ds, err := dcm.Parse(bytes.NewReader(data), int64(len(data)), nil, dcm.SkipPixelData())
	if err != nil {
		t.Fatalf("output does not parse: %v", err)
	}
	return ds.Elements
}

// find returns the string values of the first element with tag t at any
// depth.
func find(elems []*dcm.Element, t uint32) ([]string, bool) {
	for _, e := range elems {
		if tagOf(e) == t {
			s, _ := e.Value.GetValue().([]string)
			return s, true
		}
		if items, ok := e.Value.GetValue().([]*dcm.SequenceItemValue); ok {
			for _, it := range items {
				sub, _ := it.GetValue().([]*dcm.Element)
				if v, ok := find(sub, t); ok {
					return v, true
				}
			}
		}
	}
	return nil, false
}

func one(t testing.TB, elems []*dcm.Element, tg uint32) string {
	t.Helper()
	v, ok := find(elems, tg)
	if !ok {
		t.Fatalf("(%04X,%04X) missing from output", tg>>16, tg&0xFFFF)
	}
	return strings.Join(v, `\`)
}

func TestChineseFiles(t *testing.T) {
	origUIDs := []string{"1.2.826.0.1.3680043.9.7777.1", "1.2.826.0.1.3680043.9.7777.2", "1.2.826.0.1.3680043.9.7777.4", "1.2.826.0.1.3680043.9.7777.1.3"}
	always := []string{"张^三丰", "张三丰", "Zhang", "Sanfeng", "MRN20240315077", "ACC778899", "ST778899", "PPS778899", "19650412",
		"13912345678", "110105196504120031", "北京市朝阳区建国路88号", "赵^技师", "李^医生", "GEMS_ACQU_01", "private note"}
	cases := []struct {
		charset, profile string
		absent           []string
		kept             map[uint32]string
		dates            string // expected StudyDate: "" empty, "shift", or a literal
	}{
		{"GB18030", "basic", append([]string{"北京协和医院", "胸部CT平扫", "20240315", "20240316", "SN-CT-445566", "CT-ROOM-3"}, origUIDs...), nil, ""},
		{"ISO_IR 192", "basic", append([]string{"北京协和医院", "胸部CT平扫", "20240315"}, origUIDs...), nil, ""},
		{"GB18030", "basic,clean-descriptors,retain-institution,retain-long-modified", append([]string{"20240315", "20240316", "SN-CT-445566", "CT-ROOM-3"}, origUIDs...),
			map[uint32]string{0x00080080: "北京协和医院", 0x00081030: "胸部CT平扫", 0x0008103E: "肺窗 5mm", 0x00180015: "CHEST"}, "shift"},
		{"GB18030", "basic,retain-long-full,retain-uids,retain-patient-chars,retain-device", nil,
			map[uint32]string{0x00100040: "M", 0x00101010: "058Y", 0x00081090: "LightSpeed", 0x0020000D: "1.2.826.0.1.3680043.9.7777.1"}, "20240315"},
	}
	for _, c := range cases {
		t.Run(c.charset+"/"+c.profile, func(t *testing.T) {
			dir := t.TempDir()
			in := makeDICOM(t, dir, c.charset, "1", "NO")
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			d := newTestDeid(t, c.profile)
			res, err := d.Deidentify(raw)
			if err != nil {
				t.Fatal(err)
			}
			if res.Quarantined {
				t.Fatalf("quarantined: %s", res.Reason)
			}
			outPath := filepath.Join(dir, "out.dcm")
			if err := os.WriteFile(outPath, res.Data, 0o600); err != nil {
				t.Fatal(err)
			}
			if p := newKeys(dcmdumpProblems(t, outPath), dcmdumpProblems(t, in)); len(p) > 0 {
				t.Errorf("dcmdump problems added: %q", p)
			}
			if p := newKeys(dciodvfyErrors(t, outPath), dciodvfyErrors(t, in)); len(p) > 0 {
				t.Errorf("dciodvfy errors added: %q", p)
			}
			assertAbsent(t, "output", res.Data, append(always, c.absent...)...)
			out := parsed(t, res.Data)
			if got := one(t, out, 0x00080005); got != "ISO_IR 192" {
				t.Errorf("SpecificCharacterSet = %q", got)
			}
			for tg, want := range c.kept {
				if got := one(t, out, tg); got != want {
					t.Errorf("(%08X) = %q, want %q", tg, got, want)
				}
			}
			if got := one(t, out, 0x00120062); got != "YES" {
				t.Errorf("PatientIdentityRemoved = %q", got)
			}
			if got := one(t, out, 0x00100010); got != "" {
				t.Errorf("PatientName = %q, want empty", got)
			}
			ps := testPseudonymizer(t)
			if got, want := one(t, out, 0x00100020), ps.Pseudonym("dicom-patient-id", "MRN20240315077"); got != want {
				t.Errorf("PatientID = %q, want the keyed pseudonym", got)
			}
			if _, ok := find(out, 0x00191002); ok {
				t.Error("private element survived")
			}
			study := one(t, out, 0x00080020)
			switch c.dates {
			case "":
				if study != "" {
					t.Errorf("StudyDate = %q, want empty", study)
				}
			case "shift":
				// The FHIR engine's shift for the same patient key.
				days := ps.DateShiftDays("MRN20240315077")
				want := time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC).AddDate(0, 0, days).Format("20060102")
				if study != want || res.ShiftDays != days {
					t.Errorf("StudyDate = %q (shift %d), want %q (shift %d)", study, res.ShiftDays, want, days)
				}
				nested := time.Date(2024, 3, 16, 0, 0, 0, 0, time.UTC).AddDate(0, 0, days).Format("20060102")
				if got := one(t, out, 0x0040A121); got != nested {
					t.Errorf("nested date = %q, want %q", got, nested)
				}
				if got := one(t, out, 0x00280303); got != "MODIFIED" {
					t.Errorf("LongitudinalTemporalInformationModified = %q", got)
				}
				// Clean Descriptors redacts the finding, not the descriptor.
				if got := one(t, out, 0x00400007); !strings.HasPrefix(got, "胸部增强CT") || strings.Contains(got, "张") {
					t.Errorf("cleaned descriptor = %q", got)
				}
			default:
				if study != c.dates {
					t.Errorf("StudyDate = %q, want %q", study, c.dates)
				}
			}
			codes, _ := find(out, 0x00080100)
			if len(codes) == 0 || codes[0] != "113100" {
				t.Errorf("method code sequence starts with %q", codes)
			}
		})
	}
}

func TestUIDsConsistentAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	d := newTestDeid(t, "basic")
	var outs [][]*dcm.Element
	for _, n := range []string{"1", "2"} {
		raw, err := os.ReadFile(makeDICOM(t, dir, "GB18030", n, "NO"))
		if err != nil {
			t.Fatal(err)
		}
		res, err := d.Deidentify(raw)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, parsed(t, res.Data))
	}
	for _, tg := range []uint32{0x0020000D, 0x0020000E, 0x00200052} {
		a, b := one(t, outs[0], tg), one(t, outs[1], tg)
		if a != b || !strings.HasPrefix(a, "2.25.") || len(a) > 64 {
			t.Errorf("(%08X): %q vs %q", tg, a, b)
		}
	}
	sop1, sop2 := one(t, outs[0], 0x00080018), one(t, outs[1], 0x00080018)
	if sop1 == sop2 {
		t.Error("distinct SOP instances mapped to one UID")
	}
	// File 2 references file 1's SOP instance: the reference follows.
	if ref := one(t, outs[1], 0x00081155); ref != sop1 {
		t.Errorf("ReferencedSOPInstanceUID %q, want %q", ref, sop1)
	}
	if ms := one(t, outs[0], 0x00020003); ms != sop1 {
		t.Errorf("MediaStorageSOPInstanceUID %q, want %q", ms, sop1)
	}
	// Another key gives other UIDs.
	keys2 := newTestDeid(t, "basic")
	keys2.cfg.UIDs = uidFunc(func(u string) string { return "2.25.1" })
	raw, _ := os.ReadFile(filepath.Join(dir, "f1.dcm"))
	res, err := keys2.Deidentify(raw)
	if err != nil {
		t.Fatal(err)
	}
	if one(t, parsed(t, res.Data), 0x0020000D) == one(t, outs[0], 0x0020000D) {
		t.Error("UID map ignores the key")
	}
}

type uidFunc func(string) string

func (f uidFunc) UID(u string) string { return f(u) }

func TestQuarantine(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile(makeDICOM(t, dir, "GB18030", "1", "YES"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := newTestDeid(t, "basic").Deidentify(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Quarantined || res.Reason != ReasonBurnedIn {
		t.Fatalf("quarantined=%v reason=%q", res.Quarantined, res.Reason)
	}
	// Ultrasound without a rule is quarantined; a matching rule releases it.
	us := bytes.Replace(raw, []byte("CS\x02\x00CT"), []byte("CS\x02\x00US"), 1)
	us = bytes.Replace(us, []byte("CS\x04\x00YES "), []byte("CS\x04\x00NO  "), 1)
	if bytes.Equal(us, raw) {
		t.Fatal("test file layout changed")
	}
	d := newTestDeid(t, "basic")
	res, err = d.Deidentify(us)
	if err != nil || !res.Quarantined || res.Reason != ReasonUltrasound {
		t.Fatalf("US: %v %+v", err, res)
	}
	d.cfg.CleanPixel = []CleanPixelRule{{Modality: "US", Manufacturer: "GE MEDICAL SYSTEMS", Model: "LightSpeed", Rows: 4, Columns: 4}}
	if res, err = d.Deidentify(us); err != nil || res.Quarantined {
		t.Fatalf("US with rule: %v %+v", err, res)
	}
	d.cfg.CleanPixel[0].Rows = 512
	if res, err = d.Deidentify(us); err != nil || !res.Quarantined {
		t.Fatalf("US with non-matching rule: %v %+v", err, res)
	}
}

func TestBadInputRefused(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile(makeDICOM(t, dir, "GB18030", "1", "NO"))
	if err != nil {
		t.Fatal(err)
	}
	d := newTestDeid(t, "basic")
	cases := map[string][]byte{
		"empty":       nil,
		"garbage":     []byte(strings.Repeat("Zhang^Sanfeng MRN20240315077 ", 10)),
		"truncated":   raw[:len(raw)*2/3],
		"meta only":   raw[:300],
		"bad charset": bytes.Replace(raw, []byte("GB18030"), []byte("KLINGON"), 1),
	}
	for name, in := range cases {
		res, err := d.Deidentify(in)
		var de *Error
		if err == nil || !errors.As(err, &de) || de.Code != CodeDeidFailed {
			t.Errorf("%s: got %v, %v; want PHI-6008", name, res, err)
			continue
		}
		for _, s := range []string{"Zhang", "MRN", "三丰"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q leaks PHI", name, err)
			}
		}
	}
}

func TestProfileParsing(t *testing.T) {
	for _, s := range []string{"basic", "", "basic,retain-uids", "retain-long-modified,clean-descriptors"} {
		if _, err := ParseProfile(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"basic,nope", "retain-long-full,retain-long-modified"} {
		if _, err := ParseProfile(s); err == nil {
			t.Errorf("%q: accepted", s)
		}
	}
}

func TestResolveCompound(t *testing.T) {
	cases := []struct {
		a    action
		tag  uint32
		want action
	}{
		{actXZ, 0x00080022, actZ},  // Type 2
		{actXD, 0x00080012, actX},  // Type 3
		{actXZD, 0x00080080, actX}, // Type 3
		{actXZD, 0x0008002A, actD}, // Type 1
		{actXZD, 0x00081111, actZ}, // Type 2
		{actXZU, 0x00081140, actU}, // Type 1C
		{actZD, 0x00080023, actD},  // Type 1
		{actZD, 0x00100020, actZ},  // Type 2
		{actXZD, 0x7777FFFF, actX}, // unknown: most protective
		{actZD, 0x7777FFFF, actZ},
	}
	for _, c := range cases {
		if got := resolveCompound(c.a, c.tag); got != c.want {
			t.Errorf("%v on %08X = %v, want %v", c.a, c.tag, got, c.want)
		}
	}
}

func TestShiftDate(t *testing.T) {
	cases := []struct {
		in, vr string
		days   int
		want   string
	}{
		{"20240315", "DA", 10, "20240325"},
		{"20241225", "DA", 10, "20250104"},
		{"20240315101010.5+0800", "DT", -15, "20240229101010.5+0800"},
		{"202403", "DT", 40, "202404"},
		{"2024", "DT", 400, "2025"},
		{"20240231", "DA", 1, ""},
		{"notadate", "DA", 1, ""},
		{"20240315", "DA", 0, "20240315"},
	}
	for _, c := range cases {
		if got := shiftDate(c.in, c.vr, c.days); got != c.want {
			t.Errorf("shiftDate(%q,%d) = %q, want %q", c.in, c.days, got, c.want)
		}
	}
}

func TestCharsetDecode(t *testing.T) {
	cases := []struct {
		cs   []string
		raw  string
		want string
	}{
		{[]string{"GB18030"}, "Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab", "Wang^XiaoDong=王^小东"},
		{[]string{"", "ISO 2022 IR 58"}, "Zhang^XiaoDong=\x1b$)A\xd5\xc5^\x1b$)A\xd0\xa1\xb6\xab=", "Zhang^XiaoDong=张^小东="},
		{[]string{"", "ISO 2022 IR 87"}, "Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B", "Yamada^Tarou=山田^太郎"},
		{[]string{"ISO_IR 100"}, "Buc^J\xe9r\xf4me", "Buc^Jérôme"},
		{[]string{"ISO 2022 IR 100"}, "Buc^J\xe9r\xf4me", "Buc^Jérôme"},
		{[]string{"ISO_IR 192"}, "Wang^XiaoDong=王^小東", "Wang^XiaoDong=王^小東"},
		{[]string{"", "ISO 2022 IR 149"}, "Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7", "Hong^Gildong=洪^吉洞"},
	}
	for _, c := range cases {
		cs, ok := newCharset(c.cs)
		if !ok {
			t.Fatalf("%q rejected", c.cs)
		}
		if got := cs.decode(c.raw, cs.initial(c.cs)); got != c.want {
			t.Errorf("%q: got %q, want %q", c.cs, got, c.want)
		}
	}
	if _, ok := newCharset([]string{"KLINGON"}); ok {
		t.Error("unknown charset accepted")
	}
}
