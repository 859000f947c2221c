package dlp

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// checkFindings asserts offsets are in range, ordered, non-overlapping and
// (when the text is valid UTF-8) on code point boundaries by construction.
func checkFindings(t *testing.T, text string, fs []Finding) {
	t.Helper()
	n := utf8.RuneCountInString(text)
	prev := 0
	for _, f := range fs {
		if f.Start < 0 || f.End > n || f.Start >= f.End {
			t.Fatalf("finding %+v out of bounds (len %d)", f, n)
		}
		if f.Start < prev {
			t.Fatalf("findings overlap or are unordered: %+v", fs)
		}
		prev = f.End
		if f.Score <= 0 || f.Score > 1 || f.Type == "" || f.Detector == "" {
			t.Fatalf("bad finding %+v", f)
		}
	}
}

var fuzzSeeds = []string{
	"患者吴丽，女，身份证号440305198711246389，于1936年9月3日因胸痛入院。联系电话13033907579。",
	"Patient John Smith, DOB 02/19/1948, SSN 411-14-4767, MRN MR13537283, (415) 854-9333.",
	"家住广州市天河区天河路385号，邮箱li488@hospital.example.org，IP 10.0.0.1, fe80::1",
	"1200 Oak Street, Springfield, IL 62704 二〇一九年二月十五日 +86 10 6552 9988 E12345678",
	"", "\xff\xfe@@((++", "姓名：", "MRN", "Dr.", "1-", "(0", "+", "2019年", "〇〇〇〇年十月",
}

func FuzzScanText(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fs := ScanText(s)
		checkFindings(t, s, fs)
		// Redaction never panics and, with every kind redacted, leaves no
		// finding of the same span behind.
		out, _, rep := Apply(s, fs, Policy{Default: Redact})
		if len(rep.Items) != len(fs) {
			t.Fatalf("report has %d items for %d findings", len(rep.Items), len(fs))
		}
		_ = out
	})
}

func FuzzScanJSON(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Patient","name":[{"family":"Smith","given":["John"]}],"telecom":[{"system":"phone","value":"415-854-9333"}],"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">John &amp; SSN 411-14-4767</div>"}}`))
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation","note":[{"text":"患者吴丽 13033907579"}]}}]}`))
	f.Add([]byte(`[1,2,{"a":["x",{"b":null}]}]`))
	f.Add([]byte(`{"a":`))
	f.Add([]byte(`"just a string 13033907579"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, err := ScanJSON(data)
		if err != nil {
			if len(fs) != 0 {
				t.Fatal("findings returned with an error")
			}
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not *Error", err)
			}
			return
		}
		for _, f := range fs {
			if f.Location == "" || f.Start < 0 || f.End <= f.Start {
				t.Fatalf("bad finding %+v", f)
			}
		}
	})
}

func FuzzScanTextHints(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, "John Smith", "415-854-9333")
	}
	f.Fuzz(func(t *testing.T, s, name, phone string) {
		sc := Default().WithHints(Hints{Names: []string{name}, Phones: []string{phone}, Identifiers: []string{name}, Addresses: []string{name}})
		checkFindings(t, s, sc.ScanText(s))
	})
}

func FuzzStripXHTML(f *testing.F) {
	f.Add(`<div xmlns="http://www.w3.org/1999/xhtml"><p>A&amp;B &#x4E2D; &#20013;</p><br/></div>`)
	f.Add(`<unterminated`)
	f.Add(`&#xFFFFFFFF; &#0; &;`)
	f.Fuzz(func(t *testing.T, div string) {
		text, orig := stripXHTML(div)
		if utf8.RuneCountInString(text) != len(orig) {
			t.Fatalf("%d runes, %d mappings", utf8.RuneCountInString(text), len(orig))
		}
		n := utf8.RuneCountInString(div)
		prev := 0
		for _, o := range orig {
			if o.start < prev || o.end <= o.start || o.end > n {
				t.Fatalf("bad mapping %+v (len %d)", o, n)
			}
			prev = o.end
		}
		for _, f := range (&Scanner{minScore: DefaultMinScore}).scanDiv(div) {
			if f.Start < 0 || f.End > n || f.Start >= f.End {
				t.Fatalf("div finding %+v out of bounds", f)
			}
		}
	})
}

func FuzzScanCSV(f *testing.F) {
	f.Add("name,phone\nJohn Smith,415-854-9333\n")
	f.Add("a,\"b\nc\"\n1,2,3\n")
	f.Add("\"unterminated")
	f.Fuzz(func(t *testing.T, in string) {
		fs, err := ScanCSV(strings.NewReader(in))
		if err != nil {
			if _, ok := err.(*Error); !ok || fs != nil {
				t.Fatalf("error %v with %d findings", err, len(fs))
			}
			return
		}
		for _, f := range fs {
			if f.Location == "" || f.Start < 0 || f.End <= f.Start {
				t.Fatalf("bad finding %+v", f)
			}
		}
	})
}

func FuzzScanDICOM(f *testing.F) {
	f.Add(uint32(0x00100010), "PN", "Smith^John")
	f.Add(uint32(0x00100030), "DA", "19480219-19490101")
	f.Add(uint32(0x00080020), "DT", "2023")
	f.Add(uint32(0x00104000), "LT", "call 13033907579")
	f.Fuzz(func(t *testing.T, tag uint32, vr, value string) {
		n := utf8.RuneCountInString(value)
		for _, f := range ScanDICOM(tag, vr, value) {
			if f.Start < 0 || f.End > n || f.Start >= f.End || f.Location == "" {
				t.Fatalf("bad finding %+v", f)
			}
		}
	})
}

func FuzzParsePolicy(f *testing.F) {
	f.Add("default=redact,US_SSN=block,DATE=warn")
	f.Add("=,,=x")
	f.Fuzz(func(t *testing.T, spec string) {
		p, err := ParsePolicy(spec)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T", err)
			}
			return
		}
		for _, typ := range Types {
			switch p.Action(typ) {
			case Block, Redact, Warn, Allow:
			default:
				t.Fatalf("action %q", p.Action(typ))
			}
		}
	})
}
