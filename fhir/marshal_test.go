package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

func TestMarshalOrder(t *testing.T) {
	r := mustParse(t, `{"name":[{"given":["b","a"],"family":"X"}],"meta":{"versionId":"1"},"id":"p1","resourceType":"Patient",
		"contained":[{"zeta":1,"resourceType":"Organization","id":"o"}],"active":true,"text":{"div":"<div>é\u2028</div>","status":"generated"}}`)
	got, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"},"active":true,"contained":[{"resourceType":"Organization","id":"o","zeta":1}],"name":[{"family":"X","given":["b","a"]}],"text":{"div":"<div>é\u2028</div>","status":"generated"}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestCanonical(t *testing.T) {
	r := mustParse(t, `{"resourceType":"Patient","id":"p1","meta":{"versionId":"3","lastUpdated":"2025-01-01T00:00:00Z","security":[{"code":"R","system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality"}],"tag":[{"code":"t"}]},
		"name":[{"family":"张\u00e9😀","given":["a\u007fb\tc"]}],"multipleBirthInteger":2,"extension":[{"valueDecimal":1.50,"url":"u"}]}`)
	got, err := Canonical(r)
	if err != nil {
		t.Fatal(err)
	}
	// Python: json.dumps(obj, sort_keys=True, separators=(',',':'), ensure_ascii=True)
	want := `{"extension":[{"url":"u","valueDecimal":1.50}],"id":"p1","meta":{"security":[{"code":"R","system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality"}]},"multipleBirthInteger":2,"name":[{"family":"\u5f20\u00e9\ud83d\ude00","given":["a\u007fb\tc"]}],"resourceType":"Patient"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if _, ok := r.Object["meta"].(map[string]any)["tag"]; !ok {
		t.Fatal("Canonical modified the resource")
	}
	// meta without security disappears.
	got, _ = Canonical(mustParse(t, `{"resourceType":"Patient","meta":{"versionId":"1"}}`))
	if string(got) != `{"resourceType":"Patient"}` {
		t.Fatalf("got %s", got)
	}
	// Contained resources keep their meta: only the top level is cleaned.
	got, _ = Canonical(mustParse(t, `{"resourceType":"Patient","contained":[{"resourceType":"Basic","meta":{"tag":[{"code":"x"}]}}]}`))
	if string(got) != `{"contained":[{"meta":{"tag":[{"code":"x"}]},"resourceType":"Basic"}],"resourceType":"Patient"}` {
		t.Fatalf("got %s", got)
	}
}

func TestMarshalErrors(t *testing.T) {
	tests := []struct {
		name string
		obj  map[string]any
		want error
	}{
		{"unsupported", map[string]any{"resourceType": "Patient", "a": struct{}{}}, ErrUnsupported},
		{"bad number", map[string]any{"resourceType": "Patient", "a": json.Number("1x")}, ErrInvalidNumber},
		{"bad utf8", map[string]any{"resourceType": "Patient", "a": "\xff"}, ErrInvalidUTF8},
	}
	for _, tc := range tests {
		for _, f := range []func(*Resource) ([]byte, error){Marshal, Canonical} {
			if _, err := f(&Resource{Object: tc.obj}); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
	}
	if _, err := Marshal(nil); !errors.Is(err, ErrNilResource) {
		t.Error(err)
	}
}

// TestMarshalRoundTrip: Marshal output parses back to the same object, and
// Marshal/Canonical are stable under a round trip.
func TestMarshalRoundTrip(t *testing.T) {
	for _, f := range exampleFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Parse(data, ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m1, err := Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := Parse(m1, ParseOptions{})
		if err != nil {
			t.Fatalf("%s: reparse: %v", f, err)
		}
		m2, _ := Marshal(r2)
		c1, _ := Canonical(r)
		c2, _ := Canonical(r2)
		if !bytes.Equal(m1, m2) || !bytes.Equal(c1, c2) {
			t.Fatalf("%s: not stable", f)
		}
		var a, b any
		_ = json.Unmarshal(data, &a)
		_ = json.Unmarshal(m1, &b)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("%s: content changed", f)
		}
	}
}
