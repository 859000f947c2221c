package deid

import "testing"

func FuzzLoadRules(f *testing.F) {
	for _, name := range BuiltinProfiles() {
		data, _ := builtin.ReadFile("profiles/" + name + ".json")
		f.Add(data)
	}
	f.Add([]byte(`{"name":"t","rules":[{"path":"Patient.name.where(","method":"redact"}]}`))
	f.Add([]byte(`{"name":"t","rules":[{"type":"Nope","method":"keep"}]}`))
	f.Add([]byte(`{"name":`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfile(data)
		if err != nil {
			if _, ok := AsError(err); !ok {
				t.Fatalf("error without a code: %v", err)
			}
			return
		}
		if p.Name == "" {
			t.Fatal("profile without a name accepted")
		}
	})
}
