package fhir

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gen "phix/fhir/internal/gen/specgen"
	"phix/internal/testenv"
)

func TestResourceTypes(t *testing.T) {
	rts := ResourceTypes()
	if len(rts) != 146 || !slices.IsSorted(rts) {
		t.Fatalf("%d resource types, sorted %v", len(rts), slices.IsSorted(rts))
	}
	for _, n := range []string{"Patient", "Observation", "Bundle", "Parameters", "Binary", "ExplanationOfBenefit"} {
		if !IsResourceType(n) {
			t.Errorf("%s not a resource type", n)
		}
	}
	for _, n := range []string{"Resource", "DomainResource", "HumanName", "string", "SubscriptionStatus", "MetadataResource", ""} {
		if IsResourceType(n) {
			t.Errorf("%s is a resource type", n)
		}
	}
	rts[0] = "x"
	if ResourceTypes()[0] == "x" {
		t.Error("ResourceTypes shares its slice")
	}
}

func TestTypes(t *testing.T) {
	for _, n := range []string{"string", "code", "id", "dateTime", "xhtml", "positiveInt", "base64Binary"} {
		if !IsPrimitiveType(n) {
			t.Errorf("%s not primitive", n)
		}
	}
	for _, n := range []string{"HumanName", "Patient", "Quantity", "nope"} {
		if IsPrimitiveType(n) {
			t.Errorf("%s primitive", n)
		}
	}
	for in, want := range map[string]string{
		"Age": "Quantity", "Patient": "DomainResource", "DomainResource": "Resource", "Resource": "",
		"code": "string", "positiveInt": "integer", "HumanName": "Element", "Element": "", "Dosage": "BackboneElement",
		"SimpleQuantity": "Quantity", "nope": "",
	} {
		if got := BaseType(in); got != want {
			t.Errorf("BaseType(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestLookupElement(t *testing.T) {
	tests := []struct {
		parent, name string
		path         string
		concrete     string
		min, max     int
		choice       bool
		binding, ref string
	}{
		{"Patient", "name", "Patient.name", "HumanName", 0, -1, false, "", ""},
		{"Patient", "id", "Patient.id", "id", 0, 1, false, "", ""},
		{"Patient", "gender", "Patient.gender", "code", 0, 1, false, "http://hl7.org/fhir/ValueSet/administrative-gender", ""},
		{"HumanName", "family", "HumanName.family", "string", 0, 1, false, "", ""},
		{"Observation", "valueQuantity", "Observation.value[x]", "Quantity", 0, 1, true, "", ""},
		{"Observation", "value[x]", "Observation.value[x]", "", 0, 1, true, "", ""},
		{"Observation", "status", "Observation.status", "code", 1, 1, false, "http://hl7.org/fhir/ValueSet/observation-status", ""},
		{"Bundle.entry", "resource", "Bundle.entry.resource", "Resource", 0, 1, false, "", ""},
		{"Bundle", "entry", "Bundle.entry", "Bundle.entry", 0, -1, false, "", ""},
		{"Questionnaire.item", "item", "Questionnaire.item.item", "Questionnaire.item", 0, -1, false, "", "#Questionnaire.item"},
		{"Questionnaire.item.item", "linkId", "Questionnaire.item.linkId", "string", 1, 1, false, "", ""},
		{"Patient.contact.name", "family", "HumanName.family", "string", 0, 1, false, "", ""},
		{"Extension", "valueString", "Extension.value[x]", "string", 0, 1, true, "", ""},
		{"MedicationRequest.dispenseRequest", "quantity", "MedicationRequest.dispenseRequest.quantity", "Quantity", 0, 1, false, "", ""},
		{"SimpleQuantity", "comparator", "SimpleQuantity.comparator", "code", 0, 0, false, "http://hl7.org/fhir/ValueSet/quantity-comparator", ""},
		{"Age", "value", "Age.value", "decimal", 0, 1, false, "", ""},
	}
	for _, tc := range tests {
		info, ct, ok := LookupElement(tc.parent, tc.name)
		if !ok {
			t.Errorf("%s / %s: not found", tc.parent, tc.name)
			continue
		}
		if info.Path != tc.path || ct != tc.concrete || info.Min != tc.min || info.Max != tc.max || info.Choice != tc.choice || info.Binding != tc.binding || info.ContentReference != tc.ref {
			t.Errorf("%s / %s: got %+v %q", tc.parent, tc.name, *info, ct)
		}
	}
	info, _, _ := LookupElement("Observation", "valueQuantity")
	if len(info.Types) != 11 || info.Types[0] != "Quantity" {
		t.Errorf("Observation.value[x] types %v", info.Types)
	}
	for _, bad := range [][2]string{{"Patient", "nope"}, {"Nope", "id"}, {"Patient.nope", "x"}, {"Observation", "valueFoo"}, {"", ""}} {
		if _, _, ok := LookupElement(bad[0], bad[1]); ok {
			t.Errorf("%v found", bad)
		}
	}
}

// TestPrimitiveRegexes checks the hand-written format checks against the
// regexes the specification publishes, on values near every edge.
func TestPrimitiveRegexes(t *testing.T) {
	samples := map[string][]string{
		"id":          {"a", "A-1.b", strings.Repeat("x", 64), strings.Repeat("x", 65), "a_b", "a b", "é"},
		"code":        {"a", "a b", "a  b", " a", "a ", "a\tb", "a\nb"},
		"uri":         {"http://x", "a b", "urn:x", "\u00e9"},
		"oid":         {"urn:oid:1.2.3", "urn:oid:1", "urn:oid:3.1", "urn:oid:1.02", "urn:oid:1.0", "urn:oid:2.16.840.1.113883", "urn:oid:1..2", "urn:oid:1.2."},
		"uuid":        {"urn:uuid:0f2a3c4e-1b2d-4c5e-8f9a-0b1c2d3e4f5a", "urn:uuid:0F2A3C4E-1b2d-4c5e-8f9a-0b1c2d3e4f5a", "urn:uuid:0f2a3c4e1b2d-4c5e-8f9a-0b1c2d3e4f5a", "0f2a3c4e-1b2d-4c5e-8f9a-0b1c2d3e4f5a"},
		"date":        {"2001", "2001-02", "2001-02-03", "0000", "0001", "2001-13", "2001-00", "2001-02-32", "2001-2-3", "20010203", "2001-02-03T00:00:00Z"},
		"dateTime":    {"2001", "2001-02-03T04:05:06Z", "2001-02-03T04:05:06.123+14:00", "2001-02-03T04:05:06+14:01", "2001-02-03T04:05:06-13:59", "2001-02-03T04:05Z", "2001-02-03T24:00:00Z", "2001-02-03T23:59:60Z", "2001-02T04:05:06Z", "2001-02-03T04:05:06.Z"},
		"instant":     {"2001-02-03T04:05:06Z", "2001-02-03T04:05:06.1+08:00", "2001-02-03", "2001-02-03T04:05:06"},
		"time":        {"00:00:00", "23:59:60", "24:00:00", "12:00", "12:00:00.5", "12:00:00Z", "1:00:00"},
		"string":      {"a", " a ", "a\tb\r\nc", "a\u0001b", "\u00e9"},
		"markdown":    {"# x", "a\u0000"},
		"integer":     {"0", "-1", "2147483647"},
		"positiveInt": {"1", "2147483647"},
		"unsignedInt": {"0", "1"},
	}
	// Deliberate differences: the Go checks also reject impossible calendar
	// dates (tested below) and control characters other than tab, CR and LF
	// in strings, which the R4 prose says strings SHOULD NOT contain and
	// which PostgreSQL jsonb cannot store (\u0000); the regex [ \r\n\t\S]+
	// lets them through.
	stricter := map[string]bool{"a\u0001b": true, "a\u0000": true}
	m := spec()
	for typ, vals := range samples {
		rx := m.types[typ].regex
		if rx == "" {
			t.Fatalf("%s: no regex in tables", typ)
		}
		re := regexp.MustCompile(`^(?:` + rx + `)$`)
		k := m.types[typ].prim
		for _, v := range vals {
			var val any = v
			if k == primInteger || k == primPositiveInt || k == primUnsignedInt {
				val = jsonNumber(v)
			}
			got := checkPrimitive(k, val) == ""
			if stricter[v] {
				if got || !re.MatchString(v) {
					t.Errorf("%s %q: want rejected by the check only", typ, v)
				}
				continue
			}
			if got != re.MatchString(v) {
				t.Errorf("%s %q: check says valid=%v, spec regex says %v", typ, v, got, !got)
			}
		}
	}
	for _, v := range []string{"2001-02-29", "2100-02-29", "2001-04-31"} {
		if checkPrimitive(primDate, v) == "" {
			t.Errorf("impossible date %s accepted", v)
		}
	}
	if checkPrimitive(primDate, "2000-02-29") != "" || checkPrimitive(primDate, "2024-02-29") != "" {
		t.Error("leap day rejected")
	}
}

func TestLoadTime(t *testing.T) {
	start := time.Now()
	m, err := loadModel(specGz)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tables loaded in %v (%d types, %d value sets; not enforced: %v)", time.Since(start), len(m.types), len(m.valueSets), m.unexpanded)
	if len(specGz) > 2<<20 {
		t.Errorf("embedded tables are %d bytes", len(specGz))
	}
}

// TestGeneratedCurrent regenerates the tables from ../shared/fhir-r4 and
// compares them with the committed file.
func TestGeneratedCurrent(t *testing.T) {
	dir := testenv.Shared(t, "fhir-r4")
	want, err := gen.Tables(dir)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(specGz))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("spec_r4.json.gz is stale: run go generate ./fhir")
	}
	// Tables writes maps through encoding/json (sorted keys) and sorts
	// every list, so equal input gives equal bytes; the comparison above
	// would fail on any nondeterminism.
	onDisk, err := os.ReadFile("spec_r4.json.gz")
	if err != nil || !bytes.Equal(onDisk, specGz) {
		t.Fatal("embedded tables differ from the file")
	}
}

func jsonNumber(s string) any { return json.Number(s) }
