package patch

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix/fhir/internal/fhirxml"
	"phix/internal/testenv"
)

// Conformance floors: the number of official cases that must pass. They
// are a ratchet: raise them when more pass, never lower them.
const (
	jsonPatchFloor      = 16
	fhirPathPatchFloor  = 33
	patchConformanceTag = "patch conformance"
)

type caseResult struct {
	name, status, reason string // status: pass, fail, skip
}

type tally struct{ pass, fail, skip int }

func (t *tally) add(r caseResult) {
	switch r.status {
	case "pass":
		t.pass++
	case "fail":
		t.fail++
	default:
		t.skip++
	}
}

// TestConformance runs the official patch test cases: RFC 6902's examples
// (json-patch-tests.json) and FHIR's FHIRPath Patch cases
// (fhir-patch-tests.xml, resources converted from FHIR XML). It prints the
// counts, appends them to $PHIX_CONFORMANCE_OUT when set (make test shows
// that file), and fails below the floors.
func TestConformance(t *testing.T) {
	dir := testenv.Shared(t, "testdata", "fhir-test-cases", "patch")
	jr := runJSONPatchCases(t, filepath.Join(dir, "json-patch-tests.json"))
	fr := runFHIRPathPatchCases(t, filepath.Join(dir, "fhir-patch-tests.xml"))
	var jt, ft tally
	for _, r := range jr {
		jt.add(r)
		if r.status != "pass" {
			t.Logf("json-patch %s %q: %s", strings.ToUpper(r.status), r.name, r.reason)
		}
	}
	for _, r := range fr {
		ft.add(r)
		if r.status != "pass" {
			t.Logf("fhirpath-patch %s %q: %s", strings.ToUpper(r.status), r.name, r.reason)
		}
	}
	line := fmt.Sprintf("%s: json-patch passed=%d failed=%d skipped=%d; fhirpath-patch passed=%d failed=%d skipped=%d",
		patchConformanceTag, jt.pass, jt.fail, jt.skip, ft.pass, ft.fail, ft.skip)
	testenv.ReportConformance(t, line)
	if jt.pass < jsonPatchFloor {
		t.Errorf("json-patch: %d passed, below the floor %d", jt.pass, jsonPatchFloor)
	}
	if ft.pass < fhirPathPatchFloor {
		t.Errorf("fhirpath-patch: %d passed, below the floor %d", ft.pass, fhirPathPatchFloor)
	}
}

type jsonCase struct {
	Comment  string          `json:"comment"`
	Doc      json.RawMessage `json:"doc"`
	Patch    json.RawMessage `json:"patch"`
	Expected json.RawMessage `json:"expected"`
	Error    string          `json:"error"`
	Disabled bool            `json:"disabled"`
}

func decodeJSON(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("test data: %v", err)
	}
	return v
}

func runJSONPatchCases(t *testing.T, path string) []caseResult {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []jsonCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	var out []caseResult
	for _, c := range cases {
		r := caseResult{name: c.Comment}
		switch {
		case c.Disabled:
			r.status, r.reason = "skip", "disabled in the suite"
		default:
			r.status, r.reason = runJSONCase(t, c)
		}
		out = append(out, r)
	}
	return out
}

func runJSONCase(t *testing.T, c jsonCase) (status, reason string) {
	doc := decodeJSON(t, c.Doc)
	p, err := ParseJSONPatch(c.Patch)
	var got any
	if err == nil {
		got, err = p.Apply(doc)
	}
	if c.Error != "" {
		if err == nil {
			return "fail", "expected an error (" + c.Error + "), the patch applied"
		}
		if _, ok := AsError(err); !ok {
			return "fail", "error is not *patch.Error"
		}
		return "pass", ""
	}
	if err != nil {
		return "fail", "unexpected error: " + err.Error()
	}
	if want := decodeJSON(t, c.Expected); !jsonEqual(got, want) {
		return "fail", "result differs from the expected document"
	}
	return "pass", ""
}

// xmlCase is one <case> of fhir-patch-tests.xml, its resources converted.
type xmlCase struct {
	name, mode  string
	input, diff map[string]any
	output      map[string]any
	errMsg      string
	hasError    bool
	convertErr  string // why the case could not be converted
}

func runFHIRPathPatchCases(t *testing.T, path string) []caseResult {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := readXMLCases(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	var out []caseResult
	for _, c := range cases {
		r := caseResult{name: c.name}
		if c.convertErr != "" {
			r.status, r.reason = "skip", "cannot convert from FHIR XML: "+c.convertErr
		} else {
			r.status, r.reason = runXMLCase(c)
		}
		out = append(out, r)
	}
	return out
}

func runXMLCase(c xmlCase) (status, reason string) {
	p, err := ParseFHIRPathPatch(c.diff)
	var got map[string]any
	if err == nil {
		got, err = p.ApplyTo(c.input)
	}
	if c.hasError {
		if err == nil {
			return "fail", "expected an error (" + c.errMsg + "), the patch applied"
		}
		if _, ok := AsError(err); !ok {
			return "fail", "error is not *patch.Error"
		}
		return "pass", ""
	}
	if err != nil {
		return "fail", "unexpected error: " + err.Error()
	}
	if c.output == nil {
		return "fail", "case has neither output nor error"
	}
	canonicalDivs(got)
	canonicalDivs(c.output)
	if !jsonEqual(got, c.output) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(c.output)
		return "fail", "result differs: got " + string(g) + " want " + string(w)
	}
	return "pass", ""
}

// canonicalDivs re-serializes narrative divs so the patch's string and the
// converted XML compare by XHTML tree, not by spelling.
func canonicalDivs(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if s, ok := x.(string); ok && k == "div" {
				if c, err := fhirxml.CanonicalXHTML(s); err == nil {
					t[k] = c
				}
				continue
			}
			canonicalDivs(x)
		}
	case []any:
		for _, x := range t {
			canonicalDivs(x)
		}
	}
}

// readXMLCases reads <tests><case name mode><input/><diff/><output/> or
// <error msg/></case>...</tests>.
func readXMLCases(data []byte) ([]xmlCase, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var cases []xmlCase
	var cur *xmlCase
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return cases, nil
		}
		if err != nil {
			return nil, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			if ee, ok := tok.(xml.EndElement); ok && ee.Name.Local == "case" && cur != nil {
				cases = append(cases, *cur)
				cur = nil
			}
			continue
		}
		switch se.Name.Local {
		case "tests":
		case "case":
			cur = &xmlCase{name: attr(se, "name"), mode: attr(se, "mode")}
		case "error":
			if cur == nil {
				return nil, fmt.Errorf("error outside a case")
			}
			cur.hasError, cur.errMsg = true, attr(se, "msg")
			if err := d.Skip(); err != nil {
				return nil, err
			}
		case "input", "diff", "output":
			if cur == nil {
				return nil, fmt.Errorf("%s outside a case", se.Name.Local)
			}
			var w struct {
				Inner []byte `xml:",innerxml"`
			}
			if err := d.DecodeElement(&w, &se); err != nil {
				return nil, err
			}
			res, err := fhirxml.Parse(w.Inner)
			if err != nil {
				if cur.convertErr == "" {
					cur.convertErr = se.Name.Local + ": " + err.Error()
				}
				continue
			}
			switch se.Name.Local {
			case "input":
				cur.input = res
			case "diff":
				cur.diff = res
			case "output":
				cur.output = res
			}
		default:
			return nil, fmt.Errorf("unexpected element %s", se.Name.Local)
		}
	}
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}
