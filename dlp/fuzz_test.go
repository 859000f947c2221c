package dlp

import (
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
