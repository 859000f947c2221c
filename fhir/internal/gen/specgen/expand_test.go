package specgen

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestExpand(t *testing.T) {
	bundle := `{"resourceType":"Bundle","entry":[
	 {"resource":{"resourceType":"CodeSystem","url":"http://cs/a","content":"complete","concept":[{"code":"a1","concept":[{"code":"a1x"}]},{"code":"a2"}]}},
	 {"resource":{"resourceType":"CodeSystem","url":"http://cs/frag","content":"fragment","concept":[{"code":"f"}]}},
	 {"resource":{"resourceType":"ValueSet","url":"http://vs/all-a","compose":{"include":[{"system":"http://cs/a"}]}}},
	 {"resource":{"resourceType":"ValueSet","url":"http://vs/explicit","compose":{"include":[{"system":"http://other","concept":[{"code":"x"},{"code":"y"}]}]}}},
	 {"resource":{"resourceType":"ValueSet","url":"http://vs/union","compose":{"include":[{"valueSet":["http://vs/all-a"]},{"system":"http://other","concept":[{"code":"x"}]}],"exclude":[{"system":"http://cs/a","concept":[{"code":"a2"}]}]}}},
	 {"resource":{"resourceType":"ValueSet","url":"http://vs/intersect","compose":{"include":[{"system":"http://cs/a","valueSet":["http://vs/only-a1"]}]}}},
	 {"resource":{"resourceType":"ValueSet","url":"http://vs/only-a1","compose":{"include":[{"system":"http://cs/a","concept":[{"code":"a1"}]}]}}},
	 {"resource":{"resourceType":"ValueSet","url":"http://vs/filter","compose":{"include":[{"system":"http://cs/a","filter":[{"property":"concept","op":"is-a","value":"a1"}]}]}}},
	 {"resource":{"resourceType":"ValueSet","url":"http://vs/fragment","compose":{"include":[{"system":"http://cs/frag"}]}}},
	 {"resource":{"resourceType":"ValueSet","url":"http://vs/external","compose":{"include":[{"system":"urn:ietf:bcp:13"}]}}}
	]}`
	path := filepath.Join(t.TempDir(), "valuesets.json")
	if err := os.WriteFile(path, []byte(bundle), 0o644); err != nil {
		t.Fatal(err)
	}
	ex, err := newExpander(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url  string
		want []string // nil: cannot be expanded
	}{
		{"http://vs/all-a|4.0.1", []string{"a1", "a1x", "a2"}},
		{"http://vs/explicit", []string{"x", "y"}},
		{"http://vs/union", []string{"a1", "a1x", "x"}},
		{"http://vs/intersect", []string{"a1"}},
		{"http://vs/filter", nil},
		{"http://vs/fragment", nil},
		{"http://vs/external", nil},
		{"http://vs/missing", nil},
	}
	for _, tc := range tests {
		got, ok := ex.expand(tc.url, 0)
		if tc.want == nil {
			if ok {
				t.Errorf("%s: expanded to %v", tc.url, got)
			}
			continue
		}
		var list []string
		for c := range got {
			list = append(list, c)
		}
		slices.Sort(list)
		if !ok || !slices.Equal(list, tc.want) {
			t.Errorf("%s: got %v %v, want %v", tc.url, list, ok, tc.want)
		}
	}
}
