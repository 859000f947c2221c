package dlp

import (
	"encoding/json"
	"os"
	"testing"

	"phix/internal/testenv"
)

// TestSpecTextPrecision scans every string of the FHIR R4 resource
// definitions (descriptions, comments, narrative: English prose about
// patients with no patient in it) as free text. Identifiers and phone numbers
// must not appear at all; names are bounded (the text does name its authors,
// "Dr. Jane" examples and a few real people).
func TestSpecTextPrecision(t *testing.T) {
	data, err := os.ReadFile(testenv.Shared(t, "fhir-r4", "profiles-resources.json"))
	if err != nil {
		testenv.Missing(t, "%v", err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	counts := map[Type]int{}
	strs := 0
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case string:
			strs++
			for _, f := range ScanText(x) {
				counts[f.Type]++
			}
		}
	}
	walk(v)
	t.Logf("%d strings: %v", strs, counts)
	for _, typ := range []Type{CNResidentID, USSSN, Phone, MRN, CNPassport} {
		if counts[typ] > 0 {
			t.Errorf("%d %s findings in specification text", counts[typ], typ)
		}
	}
	if counts[Name] > 30 || counts[IPAddress] > 0 {
		t.Errorf("too many NAME (%d) or IP_ADDRESS (%d) findings in specification text", counts[Name], counts[IPAddress])
	}
}
