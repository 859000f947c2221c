package dlp

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func locs(fs []Finding, value func(Finding) string) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %s %s", f.Location, f.Type, value(f)))
	}
	return out
}

func TestScanJSON(t *testing.T) {
	doc := `{
  "resourceType": "Patient",
  "id": "pat-13033907579",
  "meta": {"lastUpdated": "2024-01-02T03:04:05Z"},
  "identifier": [{"system": "urn:oid:1.2.156", "value": "440305198711246389"}, {"value": "MR13537283"}],
  "name": [{"family": "吴", "given": ["丽"], "text": "吴丽"}],
  "telecom": [{"system": "phone", "value": "13033907579"}, {"system": "email", "value": "li488@hospital.example.org"}],
  "birthDate": "1987-11-24",
  "address": [{"line": ["天河路385号"], "city": "广州市", "state": "广东省"}],
  "extension": [{"url": "http://example.org/fhir/StructureDefinition/note", "valueString": "联系人刘磊 021-87938498"}],
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Patient <b>John Smith</b> &amp; SSN 411-14-4767</p></div>"}
}`
	fs, err := ScanJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	// Values are looked up from the document by location for the assertion.
	values := map[string]string{
		"Patient.identifier[0].value": "440305198711246389", "Patient.identifier[1].value": "MR13537283",
		"Patient.name[0].family": "吴", "Patient.name[0].given[0]": "丽", "Patient.name[0].text": "吴丽",
		"Patient.telecom[0].value": "13033907579", "Patient.telecom[1].value": "li488@hospital.example.org",
		"Patient.birthDate": "1987-11-24", "Patient.address[0].line[0]": "天河路385号", "Patient.address[0].city": "广州市",
		"Patient.extension[0].valueString": "联系人刘磊 021-87938498",
		"Patient.text.div":                 `<div xmlns="http://www.w3.org/1999/xhtml"><p>Patient <b>John Smith</b> &amp; SSN 411-14-4767</p></div>`,
	}
	got := locs(fs, func(f Finding) string {
		v, ok := values[f.Location]
		if !ok {
			return "?"
		}
		return string([]rune(v)[f.Start:f.End])
	})
	want := []string{
		"Patient.identifier[0].value CN_RESIDENT_ID 440305198711246389",
		"Patient.identifier[1].value IDENTIFIER MR13537283",
		"Patient.name[0].family NAME 吴",
		"Patient.name[0].given[0] NAME 丽",
		"Patient.name[0].text NAME 吴丽",
		"Patient.telecom[0].value PHONE 13033907579",
		"Patient.telecom[1].value EMAIL li488@hospital.example.org",
		"Patient.birthDate DATE 1987-11-24",
		"Patient.address[0].line[0] ADDRESS 天河路385号",
		"Patient.address[0].city ADDRESS 广州市",
		"Patient.extension[0].valueString NAME 刘磊",
		"Patient.extension[0].valueString PHONE 021-87938498",
		"Patient.text.div NAME John Smith",
		"Patient.text.div US_SSN 411-14-4767",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestScanJSONBundlePaths(t *testing.T) {
	doc := `{"resourceType":"Bundle","entry":[{"fullUrl":"http://x/Patient/1","resource":{"resourceType":"Observation","note":[{"text":"a"},{"text":"call 13033907579"}]}}]}`
	fs, err := ScanJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Location != "Bundle.entry[0].resource.note[1].text" || fs[0].Type != Phone || fs[0].Start != 5 {
		t.Fatalf("got %+v", fs)
	}
}

func TestScanJSONErrors(t *testing.T) {
	for _, doc := range []string{`{"a":`, `{"a" 1}`, `{} {}`, strings.Repeat("[", 300) + strings.Repeat("]", 300), `{"a":"13033907579"`} {
		fs, err := ScanJSON([]byte(doc))
		var e *Error
		if !errors.As(err, &e) || (e.Code != CodeInvalidJSON && e.Code != CodeTooDeep) || fs != nil {
			t.Errorf("%.20q: err %v, %d findings", doc, err, len(fs))
		}
		if err != nil && strings.Contains(err.Error(), "13033907579") {
			t.Errorf("error quotes the input: %v", err)
		}
	}
}

func TestStripXHTML(t *testing.T) {
	div := `<div><p>A&amp;B</p><br/>&#x4E2D;x&bogus;</div>`
	text, orig := stripXHTML(div)
	if text != "  A&B  中x&bogus; " {
		t.Fatalf("text %q", text)
	}
	// '中' maps back to the whole reference "&#x4E2D;".
	k := strings.Index(text, "中")
	r := []rune(text)
	idx := len([]rune(text[:k]))
	_ = r
	if got := string([]rune(div)[orig[idx].start:orig[idx].end]); got != "&#x4E2D;" {
		t.Fatalf("maps to %q", got)
	}
}

func TestScanCSV(t *testing.T) {
	in := "id,姓名,phone,note\n1,王丽,13033907579,\"seen 2019-02-15, SSN 411-14-4767\"\n2,,n/a,ok\n"
	fs, err := ScanCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	got := locs(fs, func(f Finding) string { return fmt.Sprint(f.Start, "-", f.End) })
	want := []string{
		"row 2, col 2 (姓名) NAME 0-2",
		"row 2, col 3 (phone) PHONE 0-11",
		"row 2, col 4 (note) DATE 5-15",
		"row 2, col 4 (note) US_SSN 21-32",
		"row 3, col 3 (phone) PHONE 0-3",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q", got)
	}
	if _, err := ScanCSV(strings.NewReader("a,\"b\n")); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestScanDICOM(t *testing.T) {
	cases := []struct {
		tag  uint32
		vr   string
		val  string
		want []string
	}{
		{0x00100010, "PN", "Smith^John", []string{"(0010,0010) NAME 0-10"}},
		{0x00100030, "DA", "19480219", []string{"(0010,0030) DATE 0-8"}},
		{0x00100030, "DA", "19480230", nil},
		{0x00080020, "DT", "20230817101500", []string{"(0008,0020) DATE 0-14"}},
		{0x00080030, "TM", "101500", nil},
		{0x00100020, "LO", "MR13537283", []string{"(0010,0020) MRN 0-10"}},
		{0x00104000, "LT", "call 13033907579", []string{"(0010,4000) PHONE 5-16"}},
		{0x0020000D, "UI", "1.2.840.10008.1.2", nil},
		{0x00081030, "LO", "CT CHEST", nil},
		{0x00100010, "PN", "  ", nil},
	}
	for _, c := range cases {
		got := locs(ScanDICOM(c.tag, c.vr, c.val), func(f Finding) string { return fmt.Sprint(f.Start, "-", f.End) })
		if !slices.Equal(got, c.want) {
			t.Errorf("%08X %s: got %q want %q", c.tag, c.vr, got, c.want)
		}
	}
}

func TestPolicy(t *testing.T) {
	text := "患者吴丽，电话13033907579，SSN 411-14-4767"
	fs := ScanText(text)
	p, err := ParsePolicy("default=redact, US_SSN=block, phone=warn")
	if err != nil {
		t.Fatal(err)
	}
	out, blocked, rep := Apply(text, fs, p)
	if out != "患者[NAME]，电话13033907579，SSN 411-14-4767" || !blocked || !rep.Blocked {
		t.Errorf("out %q blocked %v", out, blocked)
	}
	if rep.Counts[Phone] != 1 || rep.Actions[Warn] != 1 || rep.Actions[Block] != 1 || rep.Actions[Redact] != 1 {
		t.Errorf("report %+v", rep)
	}
	out, blocked, _ = Apply(text, fs, Policy{Default: Redact})
	if out != "患者[NAME]，电话[PHONE]，SSN [US_SSN]" || blocked {
		t.Errorf("out %q", out)
	}
	if _, blocked, _ := Apply(text, fs, Policy{}); !blocked {
		t.Error("zero policy must fail closed")
	}
	for _, bad := range []string{"US_SSN", "FOO=block", "NAME=shred"} {
		if _, err := ParsePolicy(bad); err == nil {
			t.Errorf("ParsePolicy(%q) accepted", bad)
		}
	}
}

func TestHintsFromPatient(t *testing.T) {
	h, err := HintsFromPatient([]byte(`{"resourceType":"Patient","identifier":[{"value":"H-99812"}],
	  "name":[{"family":"Nakamura","given":["Keiko"]},{"text":"中村惠子"}],
	  "telecom":[{"system":"phone","value":"+1 415 854 9333"},{"system":"email","value":"kn@example.org"}],
	  "address":[{"line":["7 Rue de la Paix"],"city":"Paris"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	got := found(Default().WithHints(h), "中村惠子 (Keiko Nakamura, H-99812) at 7 Rue de la Paix; 415-854-9333, kn@example.org.")
	want := []string{"NAME:中村惠子", "NAME:Keiko Nakamura", "IDENTIFIER:H-99812", "ADDRESS:7 Rue de la Paix", "PHONE:415-854-9333", "EMAIL:kn@example.org"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q", got)
	}
	for _, bad := range []string{`{"name":[]}`, `[`, `"x"`} {
		if _, err := HintsFromPatient([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
