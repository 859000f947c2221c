package dlp

import (
	"fmt"
	"slices"
	"testing"
)

// found renders the findings of text as "TYPE:value" for assertions (test
// data is synthetic).
func found(sc *Scanner, text string) []string {
	rs := []rune(text)
	var out []string
	for _, f := range sc.ScanText(text) {
		out = append(out, fmt.Sprintf("%s:%s", f.Type, string(rs[f.Start:f.End])))
	}
	return out
}

type detCase struct {
	text string
	want []string // exact set of findings, in order
}

func runCases(t *testing.T, cases []detCase) {
	t.Helper()
	for _, c := range cases {
		got := found(Default(), c.text)
		if !slices.Equal(got, c.want) {
			t.Errorf("%q:\n got  %q\n want %q", c.text, got, c.want)
		}
	}
}

func TestValidCNResidentID(t *testing.T) {
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"11010519491231002X", true},
		{"11010519491231002x", true},
		{"440305198711246389", true},
		{"440305198711246388", false}, // wrong check digit
		{"990305198711246381", false}, // unknown province
		{"440305198713246385", false}, // month 13
		{"110105490229001", false},    // 1949-02-29 is not a date
		{"110105480229001", true},     // 15-digit, 1948-02-29
		{"1101051949123100", false},
		{"110105218001010011", false}, // born in 2180: valid date, check digit right, not plausible
		{"110105187912310016", false}, // before 1880
		{"", false},
	} {
		if got := ValidCNResidentID(c.id); got != c.ok {
			t.Errorf("ValidCNResidentID(%s) = %v, want %v", c.id, got, c.ok)
		}
	}
}

func TestCNResidentID(t *testing.T) {
	runCases(t, []detCase{
		{"身份证号440305198711246389。", []string{"CN_RESIDENT_ID:440305198711246389"}},
		{"ID 11010519491231002X ok", []string{"CN_RESIDENT_ID:11010519491231002X"}},
		{"检验单号440305198711246388，", nil}, // bad check digit: a decoy
		{"单号4403051987112463891", nil},   // 19 digits
		{"身份证110105480229001。", []string{"CN_RESIDENT_ID:110105480229001"}},
		{"ID No. 110105480229001", []string{"CN_RESIDENT_ID:110105480229001"}},
		{"SNOMED 442961000124107", nil}, // a legacy-shaped number without an id keyword
	})
}

func TestValidSSN(t *testing.T) {
	for _, c := range []struct {
		a, g, s int
		ok      bool
	}{
		{411, 14, 4767, true}, {0, 14, 4767, false}, {666, 14, 4767, false}, {900, 14, 4767, false},
		{999, 14, 4767, false}, {411, 0, 4767, false}, {411, 14, 0, false}, {78, 5, 1120, false},
		{219, 9, 9999, false}, {123, 45, 6789, false}, {899, 99, 9999, true},
	} {
		if got := ValidSSN(c.a, c.g, c.s); got != c.ok {
			t.Errorf("ValidSSN(%03d-%02d-%04d) = %v", c.a, c.g, c.s, got)
		}
	}
}

func TestSSN(t *testing.T) {
	runCases(t, []detCase{
		{"SSN 411-14-4767.", []string{"US_SSN:411-14-4767"}},
		{"SSN: 411144767", []string{"US_SSN:411144767"}},
		{"ref 411144767", nil}, // bare 9 digits without the keyword
		{"SSN 666-14-4767", nil},
		{"SSN 078-05-1120", nil},
		{"Lab accession 22-8316-48", nil},
		{"SSN:411-14-4767", []string{"US_SSN:411-14-4767"}},
	})
}

func TestTokenBoundaries(t *testing.T) {
	runCases(t, []detCase{
		{"Tel.13812345678", []string{"PHONE:13812345678"}},
		{"ID-440305198711246389", []string{"CN_RESIDENT_ID:440305198711246389"}},
		{"urn:uuid:4d3e9f9c-0755-4567-8901-abcdefabcdef", nil},
		{"ref 1.2.840.10008.13812345678", nil},
		{"x_13812345678", nil},
	})
}

func TestPhones(t *testing.T) {
	runCases(t, []detCase{
		{"联系电话13033907579。", []string{"PHONE:13033907579"}},
		{"手机 138 1234 5678", []string{"PHONE:138 1234 5678"}},
		{"手机+86 138-1234-5678", []string{"PHONE:+86 138-1234-5678"}},
		{"tel 0086 13812345678", []string{"PHONE:0086 13812345678"}},
		{"座机021-87938498转123", []string{"PHONE:021-87938498转123"}},
		{"座机(0755)8793 8498", []string{"PHONE:(0755)8793 8498"}},
		{"+86 10 6552 9988", []string{"PHONE:+86 10 6552 9988"}},
		{"call (415) 854-9333 now", []string{"PHONE:(415) 854-9333"}},
		{"call 415-854-9333", []string{"PHONE:415-854-9333"}},
		{"call +1 415 854 9333", []string{"PHONE:+1 415 854 9333"}},
		{"call 1-415-854-9333", []string{"PHONE:1-415-854-9333"}},
		{"call +44 20 7946 0958", []string{"PHONE:+44 20 7946 0958"}},
		{"12345678901", nil},       // second digit 2: not a mobile
		{"call 015-854-9333", nil}, // area code starts with 0
		{"call 415.154.9333", nil}, // exchange starts with 1
		{"LOINC 4548-4", nil},
		{"血压120/80 mmHg", nil},
		{"编号123456789012345678", nil},
	})
}

func TestEmailURLIP(t *testing.T) {
	runCases(t, []detCase{
		{"mail li488@hospital.example.org.", []string{"EMAIL:li488@hospital.example.org"}},
		{"邮箱jsmith5@mail.example.cn。", []string{"EMAIL:jsmith5@mail.example.cn"}},
		{"not an email: a@b", nil},
		{"see https://portal.example.org/p?id=7.", []string{"URL:https://portal.example.org/p?id=7"}},
		{"login from 132.39.213.242.", []string{"IP_ADDRESS:132.39.213.242"}},
		{"login from 10.0.0.1:8080", []string{"IP_ADDRESS:10.0.0.1:8080"}},
		{"v 256.1.1.1", nil},
		{"UID 1.2.840.10008.5.1.4.1.1.2", nil},
		{"ip 01.2.3.4", nil},
		{"from 2001:db8::8a2e:370:7334 today", []string{"IP_ADDRESS:2001:db8::8a2e:370:7334"}},
		{"from fe80::1", []string{"IP_ADDRESS:fe80::1"}},
		{"at 10:30:00", nil},
		{"Version 2.4.10.1 installed", nil},
		{"版本1.2.3.4", nil},
	})
}

func TestPassport(t *testing.T) {
	runCases(t, []detCase{
		{"护照号E12345678", []string{"CN_PASSPORT:E12345678"}},
		{"passport EA1234567", []string{"CN_PASSPORT:EA1234567"}},
		{"code E123456789", nil},
		{"E11.9", nil},
	})
}

func TestMRN(t *testing.T) {
	runCases(t, []detCase{
		{"MRN MR13537283.", []string{"MRN:MR13537283"}},
		{"MRN: 00123456", []string{"MRN:00123456"}},
		{"Medical Record Number 7781234", []string{"MRN:7781234"}},
		{"住院号MR17175325，", []string{"MRN:MR17175325"}},
		{"病历号：A-2019-0042", []string{"MRN:A-2019-0042"}},
		{"Lab accession 22-8316-48", nil},
		{"样本编号42-6165-39", nil},
		{"MRN pending", nil},
		{"MRN 4548-4", nil}, // LOINC shape
	})
}

func TestMRNConfig(t *testing.T) {
	sc, err := New(Options{MRN: MRNConfig{Keywords: []string{"Case No", "档案号"}, Pattern: `^[A-Z]{2}\d{6}$`, Bare: []string{`\bHX\d{6}\b`}}})
	if err != nil {
		t.Fatal(err)
	}
	for text, want := range map[string][]string{
		"Case No AB123456":   {"MRN:AB123456"},
		"MRN 12345678":       nil, // the pattern refuses it
		"档案号XY654321。":       {"MRN:XY654321"},
		"transfer HX123456.": {"MRN:HX123456"},
	} {
		if got := found(sc, text); !slices.Equal(got, want) {
			t.Errorf("%q: got %q want %q", text, got, want)
		}
	}
	if _, err := New(Options{MRN: MRNConfig{Pattern: "("}}); err == nil {
		t.Error("bad pattern accepted")
	}
}

func TestDates(t *testing.T) {
	runCases(t, []detCase{
		{"于2019年2月15日入院", []string{"DATE:2019年2月15日"}},
		{"出生日期2019-02-15。", []string{"DATE:2019-02-15"}},
		{"二〇一九年二月十五日", []string{"DATE:二〇一九年二月十五日"}},
		{"二〇二〇年十二月三十一日", []string{"DATE:二〇二〇年十二月三十一日"}},
		{"2019年2月", []string{"DATE:2019年2月"}},
		{"2019年", nil},
		{"DOB 11/20/1958", []string{"DATE:11/20/1958"}},
		{"DOB 20.11.1958", []string{"DATE:20.11.1958"}},
		{"on Feb 19, 1948.", []string{"DATE:Feb 19, 1948"}},
		{"on 19 February 1948", []string{"DATE:19 February 1948"}},
		{"on 1948-02-19T10:30:00+08:00", []string{"DATE:1948-02-19T10:30:00+08:00"}},
		{"on February 1948", []string{"DATE:February 1948"}},
		{"2019-02-30", nil},
		{"02/30/2019", nil},
		{"1900-02-29", nil},
		{"2000-02-29", []string{"DATE:2000-02-29"}},
		{"you may 2 go", nil},
		{"in 1948", nil},
	})
}

func TestNamesEN(t *testing.T) {
	runCases(t, []detCase{
		{"Patient John Smith, DOB", []string{"NAME:John Smith"}},
		{"Seen by Dr. Robert Garcia on", []string{"NAME:Robert Garcia"}},
		{"Contact Barbara Brown at", []string{"NAME:Barbara Brown"}},
		{"Barbara Brown lives at", []string{"NAME:Barbara Brown"}},
		{"Mrs. O'Brien called", []string{"NAME:O'Brien"}},
		{"Patient Name: Zelda Q. Fitzgerald", []string{"NAME:Zelda Q. Fitzgerald"}},
		{"Patient is stable.", nil},
		{"Patient Portal login", nil},
		{"Contact the clinic", nil},
		{"pt james okafor, 45M", []string{"NAME:james"}},
		{"pt james smith, 45M", []string{"NAME:james smith"}},
		{"pt mary said", []string{"NAME:mary"}},
		{"patient reported pain", nil},
		{"Line Provider Payment Amount", nil},
		{"the patient. However, the", nil},
		{"see Patient Resource", nil},
		{"Patient Education Materials", nil},
		{"Patient: Okafor", []string{"NAME:Okafor"}},
		{"Patient Okafor Adebayo", []string{"NAME:Okafor Adebayo"}},
	})
}

func TestNamesZH(t *testing.T) {
	runCases(t, []detCase{
		{"患者吴丽，女", []string{"NAME:吴丽"}},
		{"报告医生周娜。", []string{"NAME:周娜"}},
		{"紧急联系人刘磊，", []string{"NAME:刘磊"}},
		{"王丽（电话", []string{"NAME:王丽"}},
		{"姓名：欧阳明华，", []string{"NAME:欧阳明华"}},
		{"请李医生会诊", []string{"NAME:李"}},
		{"患者于昨日入院", nil},
		{"今日王建国来院复查", []string{"NAME:王建国"}},
		{"今日血压平稳", nil},
		{"予杜冷丁50mg肌注", nil},
		{"，何首乌、", nil},
		{"，曹雪25mg", nil},
		{"，曹雪说", []string{"NAME:曹雪"}},
		{"王丽小姐", []string{"NAME:王丽"}},
		{"聯絡人陳大文，電話", []string{"NAME:陳大文"}},
		{"请王大夫会诊", []string{"NAME:王"}},
		{"，李老师说", []string{"NAME:李"}},
		{"，陈大文医生说", []string{"NAME:陈大文"}},
		{"患者出生日期", nil},
		{"皮肤黄疸，", nil},
		{"结果：白细胞9.9", nil},
		{"主诉头痛三天，", nil},
	})
}

func TestAddresses(t *testing.T) {
	runCases(t, []detCase{
		{"家住广州市天河区天河路385号，主诉", []string{"ADDRESS:广州市天河区天河路385号"}},
		{"地址：北京市朝阳区建国路88号3栋2单元1201室。", []string{"ADDRESS:北京市朝阳区建国路88号3栋2单元1201室"}},
		{"来自浙江省杭州市西湖区", []string{"ADDRESS:浙江省杭州市西湖区"}},
		{"lives at 1200 Oak Street, Springfield, IL 62704; phone", []string{"ADDRESS:1200 Oak Street, Springfield, IL 62704"}},
		{"at 45 Maple Ave, Apt 4B, Columbus, OH 43215-1234.", []string{"ADDRESS:45 Maple Ave, Apt 4B, Columbus, OH 43215-1234"}},
		{"at 12 N 5th St", []string{"ADDRESS:12 N 5th St"}},
		{"地址：香港九龍旺角彌敦道580號5樓", []string{"ADDRESS:香港九龍旺角彌敦道580號5樓"}},
		{"take 500 mg bid", nil},
		{"区别不大", nil},
	})
}

func TestHints(t *testing.T) {
	sc := Default().WithHints(Hints{
		Names:       NameHints("Nakamura", "Keiko"),
		Identifiers: []string{"H-99812"},
		Phones:      []string{"+1 (415) 854-9333"},
		Emails:      []string{"KN@Example.org"},
		Addresses:   []string{"7 Rue de la Paix"},
	})
	got := found(sc, "keiko  nakamura (H-99812) lives at 7 rue de la paix, call 415.854.9333 or kn@example.org; Nakamura agreed.")
	want := []string{"NAME:keiko  nakamura", "IDENTIFIER:H-99812", "ADDRESS:7 rue de la paix", "PHONE:415.854.9333", "EMAIL:kn@example.org", "NAME:Nakamura"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	zh := Default().WithHints(Hints{Names: NameHints("司马", "相如")})
	if got := found(zh, "今日司马相如复诊"); !slices.Equal(got, []string{"NAME:司马相如"}) {
		t.Errorf("zh hint: %q", got)
	}
}

func TestOverlapResolution(t *testing.T) {
	fs := resolve([]Finding{
		{Type: URL, Start: 0, End: 30, Score: 0.9, Detector: "url"},
		{Type: IPAddress, Start: 7, End: 15, Score: 0.85, Detector: "ipv4"},
		{Type: Name, Start: 40, End: 45, Score: 0.7, Detector: "b"},
		{Type: Date, Start: 40, End: 45, Score: 0.9, Detector: "a"},
		{Type: Name, Start: 44, End: 50, Score: 0.99, Detector: "c"},
		{Type: Phone, Start: 60, End: 70, Score: 0.8, Detector: "d"},
	})
	want := []Finding{
		{Type: URL, Start: 0, End: 30, Score: 0.9, Detector: "url"},
		{Type: Name, Start: 44, End: 50, Score: 0.99, Detector: "c"},
		{Type: Phone, Start: 60, End: 70, Score: 0.8, Detector: "d"},
	}
	if !slices.Equal(fs, want) {
		t.Errorf("got %+v", fs)
	}
}

func TestCodePointOffsets(t *testing.T) {
	text := "患者吴丽，电话13033907579"
	fs := ScanText(text)
	rs := []rune(text)
	if len(fs) != 2 || string(rs[fs[1].Start:fs[1].End]) != "13033907579" || fs[1].Start != 7 {
		t.Fatalf("offsets: %+v", fs)
	}
}

// TestConcurrentScans runs one Scanner from many goroutines (run with -race).
func TestConcurrentScans(t *testing.T) {
	sc := Default().WithHints(Hints{Names: []string{"Keiko Nakamura"}})
	texts := []string{
		"患者吴丽，女，身份证号440305198711246389，联系电话13033907579。",
		"Patient John Smith, DOB 02/19/1948, SSN 411-14-4767; Keiko Nakamura called.",
	}
	want := make([][]string, len(texts))
	for i, s := range texts {
		want[i] = found(sc, s)
	}
	done := make(chan bool)
	for g := 0; g < 8; g++ {
		go func() {
			ok := true
			for k := 0; k < 200; k++ {
				i := k % len(texts)
				if !slices.Equal(found(sc, texts[i]), want[i]) {
					ok = false
				}
			}
			done <- ok
		}()
	}
	for g := 0; g < 8; g++ {
		if !<-done {
			t.Error("concurrent scans disagree")
		}
	}
}
